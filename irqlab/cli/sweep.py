"""``irqlab sweep``: expand a scenario's sweep into runs, run them, store the results.

Thin: option parsing and printing; the work is in :mod:`irqlab.experiments.driver`.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys

import click

from irqlab.cli.main import cli
from irqlab.errors import ScenarioError

EXIT_FAIL_FAST = 3
EXIT_INTERRUPTED = 130


def _split_values(text: str) -> list[tuple[str, int]]:
    """``a,b,min(1,2)`` -> ``[('a', 0), ('b', 2), ('min(1,2)', 4)]``: the values (commas
    inside brackets stay) and where each starts in ``text``."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            part = text[start:i]
            if part.strip():
                out.append((part.strip(), start + len(part) - len(part.lstrip())))
            start = i + 1
    return out


@cli.command("sweep")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", default="irqlab-results", show_default=True,
              help="Output directory (Parquet + results.db); the same sweep into the same "
                   "directory resumes.")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
              help="Override a parameter for every run (repeatable).")
@click.option("--grid", "grids", multiple=True, metavar="PATH=V1,V2,...",
              help="Add an axis, multiplied with the scenario's sweep (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the number of runs and the first few; run nothing.")
@click.option("--launcher", type=click.Choice(["auto", "inline", "ray"]), default="auto",
              show_default=True, help="Where batches run (see docs/sweeps.md).")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="A running Ray cluster (default: $RAY_ADDRESS; none: this machine).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Ray workers on this machine (default: all cores).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed run.")
@click.option("--retry-failed", is_flag=True, help="On resume, run failed runs again too.")
@click.option("--batch-seconds", type=click.FloatRange(0.01), default=2.0, show_default=True,
              help="Target engine time of one batch.")
@click.option("--max-lanes", type=click.IntRange(1), default=4096, show_default=True,
              help="Most lanes in one batch.")
@click.option("--max-retries", type=click.IntRange(0), default=3, show_default=True,
              help="Ray: times a task is retried when its worker dies.")
@click.option("--db", "db_url", default=None, metavar="URL",
              help="SQLAlchemy URL of the database (default: sqlite in --out).")
@click.option("--by", "by", multiple=True, metavar="PATH",
              help="Group the final table by these parameters (default: every swept one).")
@click.option("--table/--no-table", default=True, help="Print the answer table at the end.")
@click.option("--progress/--no-progress", default=None,
              help="Live progress bar (default: when stderr is a terminal).")
def sweep_cmd(file, out_dir, sets, grids, dry_run, launcher, address, workers, fail_fast,
              retry_failed, batch_seconds, max_lanes, max_retries, db_url, by, table, progress):
    """Run the sweep of FILE (default: the embedded founding case) into --out."""
    from irqlab.cli.cmdline import assignments, with_command_line
    from irqlab.experiments.driver import (SweepRequest, default_scenario, parse_scenario,
                                           run_sweep, summary_text)
    from irqlab.experiments.table import answer_table, format_table

    if file is None:
        text, name = default_scenario()
    else:
        try:
            with open(file, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise click.ClickException(f"cannot read {file}: {e.strerror}") from None
        name = file
    try:
        given = assignments("--set", sets) + assignments("--grid", grids)
    except ScenarioError as e:
        raise with_command_line(e) from None
    overrides = [(a.path, a.value) for a in given if a.option == "--set"]
    spans: dict = {(a.option, a.path): (a.path_span, a.value_span) for a in given}
    axes = []
    for a in (a for a in given if a.option == "--grid"):
        values = _split_values(a.value)
        axes.append((a.path, [v for v, _ in values]))
        if a.value_span is not None:  # each value's own place, for its errors
            for i, (v, at) in enumerate(values):
                col = a.value_span.col + at
                spans[("--grid", a.path, i)] = (None, dataclasses.replace(
                    a.value_span, col=col, end_col=col + len(v)))
    req = SweepRequest(
        text=text, file=name, out_dir=out_dir, overrides=overrides, axes=axes, spans=spans,
        launcher=launcher,
        address=address, workers=workers, fail_fast=fail_fast, retry_failed=retry_failed,
        target_s=batch_seconds, max_lanes=max_lanes, max_retries=max_retries, progress=progress,
        command=shlex.join(["irqlab", *sys.argv[1:]]), db_url=db_url)
    scenario = parse_scenario(text, name)
    try:
        if dry_run:
            click.echo(dry_run_text(scenario, req))
            return
        report = run_sweep(req, scenario=scenario)
    except ScenarioError as e:
        raise with_command_line(e, {name: text}) from None
    click.echo(summary_text(report))
    if table and (report.rows or report.skipped):
        from irqlab.experiments.driver import load_rows

        rows = load_rows(report, req)
        header, cells, total = answer_table(rows, report.param_paths, list(by) or None,
                                            report.param_units, report.nested)
        click.echo("")
        click.echo(format_table(header, cells, total))
    if report.status == "failed":
        raise click.exceptions.Exit(EXIT_FAIL_FAST)
    if report.status == "interrupted":
        raise click.exceptions.Exit(EXIT_INTERRUPTED)


def written(value, unit: str) -> str:
    """A parameter value as a scenario spells it: ``1ms``, ``50kHz``, ``10``, ``lower_then_eoi``
    (a stored time is in seconds, a frequency in Hz)."""
    from irqlab.ir import Quantity, format_quantity

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if unit in ("s", "Hz"):
        return format_quantity(Quantity(float(value), unit))
    return format_quantity(Quantity(value, ""))


def dry_run_text(scenario, req, first: int = 5) -> str:
    """What ``--dry-run`` prints: counts, the swept paths and the first runs."""
    from irqlab.experiments import plan as planning

    prep = planning.prepare(scenario, req.text, req.overrides, req.axes, req.spans)
    lines = [f"sweep {prep.sweep_id} ({scenario.name}): {len(prep.points)} points x "
             f"{prep.replications} replications = {prep.planned_runs} runs",
             f"  parameters: {', '.join(prep.param_paths) or '(none)'}",
             f"  base seed {prep.base_seed}; replication r runs with spawn key (r,) at every point"]
    shown = 0
    for index, point in enumerate(prep.points):
        _, error, runs = planning.plan_point(prep, index, point)
        for r in runs:
            if shown == first:
                break
            params = ", ".join(f"{k}={written(v, prep.param_units.get(k, ''))}"
                               for k, v in r.params.items())
            lines.append(f"  run {r.run_id}  point {r.point} rep {r.replication} "
                         f"seed {r.seed} spawn_key {list(r.spawn_key)}  {params}"
                         + (f"  INVALID: {error.splitlines()[0]}" if error else ""))
            shown += 1
        if shown == first:
            break
    if prep.planned_runs > shown:
        lines.append(f"  ... {prep.planned_runs - shown} more")
    return "\n".join(lines)
