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
_T0 = __import__("time").perf_counter()
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
@click.option("--all", "study", is_flag=True,
              help="Run every scenario of FILE that has a sweep, one sweep each, and join them "
                   "in one trade-off table and plot (what the default job does).")
def sweep_cmd(file, out_dir, sets, grids, dry_run, launcher, address, workers, fail_fast,
              retry_failed, batch_seconds, max_lanes, max_retries, db_url, by, table, progress,
              study):
    """Run the sweep of FILE into --out. Without FILE: the embedded default job, the
    founding storm and a well-behaved device under each mitigation of the seed."""
    from irqlab.cli.cmdline import assignments, with_command_line
    from irqlab.experiments.driver import SweepRequest, default_scenario

    if file is None:
        text, name = default_scenario()
        study = True
    else:
        from irqlab.dsl.lowering import read_source

        text = read_source(file)
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
    try:
        if study:
            status, engine_s = _run_study(req, dry_run, table, by)
        else:
            status, engine_s = _run_one(req, dry_run, table, by)
    except ScenarioError as e:
        raise with_command_line(e, {name: text}) from None
    if not dry_run:
        click.echo(took_text(engine_s))
    if status == "failed":
        raise click.exceptions.Exit(EXIT_FAIL_FAST)
    if status == "interrupted":
        raise click.exceptions.Exit(EXIT_INTERRUPTED)


#: --dry-run counts the points of a sweep with constraints only up to this many
DRY_RUN_COUNT = 100_000


def dry_run_text(scenario, req, first: int = 5) -> str:
    """What ``--dry-run`` prints: counts, the swept paths and the first runs, planned
    lazily: constant time and memory for any sweep without constraints."""
    from irqlab.experiments import plan as planning

    prep = planning.prepare(scenario, req.text, req.overrides, req.axes, req.spans)
    if prep.points.filtered and prep.points.bound > DRY_RUN_COUNT:  # counting means planning them all
        points, runs, total = (f"at most {prep.points.bound} points (before the constraints)",
                               f"at most {prep.points.bound * prep.replications}", None)
    else:
        points, runs = f"{len(prep.points)} points", str(prep.planned_runs)
        total = prep.planned_runs
    lines = [f"sweep {prep.sweep_id} ({scenario.name}): {points} x "
             f"{prep.replications} replications = {runs} runs",
             f"  parameters: {', '.join(prep.param_paths) or '(none)'}",
             f"  base seed {prep.base_seed}; replication r runs with spawn key (r,) at every point"]
    shown = 0
    for index, point in enumerate(prep.points):
        pp = planning.resolve_point(prep, index, point)
        for r in pp.runs(0, min(prep.replications, first - shown)):
            params = ", ".join(f"{k}={written(v, prep.param_units.get(k, ''))}"
                               for k, v in r.params.items())
            lines.append(f"  run {r.run_id}  point {r.point} rep {r.replication} "
                         f"seed {r.seed} spawn_key {list(r.spawn_key)}  {params}"
                         + (f"  INVALID: {pp.error.splitlines()[0]}" if pp.error else ""))
            shown += 1
        if shown == first:
            break
    if total is None:
        lines.append("  ... more")
    elif total > shown:
        lines.append(f"  ... {total - shown} more")
    return "\n".join(lines)


def _run_one(req, dry_run: bool, table: bool, by) -> tuple[str | None, float]:
    """One sweep (the file's main scenario): its summary and answer table; its status and
    engine seconds."""
    from irqlab.experiments.driver import load_rows, parse_scenario, run_sweep, summary_text
    from irqlab.experiments.table import answer_table, format_table

    scenario = parse_scenario(req.text, req.file)
    if dry_run:
        click.echo(dry_run_text(scenario, req))
        return None, 0.0
    report = run_sweep(req, scenario=scenario)
    click.echo(summary_text(report))
    if table and (report.rows or report.skipped):
        rows = load_rows(report, req)
        header, cells, total = answer_table(rows, report.param_paths, list(by) or None,
                                            report.param_units, report.nested)
        click.echo("")
        click.echo(format_table(header, cells, total))
    return report.status, report.engine_s


def _run_study(req, dry_run: bool, table: bool, by) -> tuple[str | None, float]:
    """Every member of the file's study (:mod:`irqlab.experiments.study`), one sweep each
    into the same --out; then the trade-off table and plot. Stops at the first member that
    did not finish (interrupted, or failed with --fail-fast). Returns the status and the
    engine seconds of all members."""
    import os

    from irqlab.experiments import study
    from irqlab.experiments.driver import parse_scenario, run_sweep, summary_text
    from irqlab.experiments.readback import stored_rows

    from irqlab.experiments import plan as planning

    members = [(m, dataclasses.replace(req, text=m.text), parse_scenario(m.text, req.file))
               for m in study.members(req.text, req.file)]
    for _, sub, scenario in members:  # every member's plan is valid before any runs
        planning.prepare(scenario, sub.text, sub.overrides, sub.axes, sub.spans)
    sides, engine_s = [], 0.0
    for m, sub, scenario in members:
        if dry_run:
            click.echo(dry_run_text(scenario, sub))
            continue
        report = run_sweep(sub, scenario=scenario)
        engine_s += report.engine_s
        click.echo(summary_text(report))
        if report.status in ("failed", "interrupted"):
            return report.status, engine_s
        rows = stored_rows(req.db_url or req.out_dir, report.sweep_id, report.param_paths,
                           study.metric_paths(m), fallback=())
        sides.append(study.Side(m, tuple(report.param_paths), dict(report.param_units), rows,
                                report.nested))
    if dry_run or not table or not sides:
        return (None if dry_run else "done"), engine_s
    header, cells, n_params = study.tradeoff_table(sides)
    click.echo("")
    click.echo(study.format_tradeoff(header, cells, n_params))
    png = study.plot_tradeoff(sides, os.path.join(req.out_dir, "tradeoff.png"))
    if png:
        click.echo(f"plot: {png}")
    return "done", engine_s


def took_text(engine_s: float) -> str:
    """``took W s wall, C s CPU, E s in the engine``: this process's wall time since it
    started (its imports included), the CPU time of it and its finished children (Ray
    workers it started), and the engine's share (batches run, summed over workers)."""
    import os
    import resource
    import time

    wall = None
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            wall = float(f.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        wall = time.perf_counter() - _T0
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return (f"took {wall:.1f} s wall, {cpu:.1f} s CPU (this command, from its start); "
            f"{engine_s:.1f} s in the engine")


def written(value, unit: str) -> str:
    """A parameter value as a scenario spells it: ``1ms``, ``50kHz``, ``10``, ``lower_then_eoi``
    (a stored time is in seconds, a frequency in Hz)."""
    from irqlab.ir import Quantity, format_quantity

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if unit in ("s", "Hz"):
        return format_quantity(Quantity(float(value), unit))
    return format_quantity(Quantity(value, ""))
