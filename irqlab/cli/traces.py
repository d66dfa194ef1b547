"""``irqlab traces import|summary``, ``irqlab compare`` and ``irqlab calibrate``: real
kvm traces in (see docs/traces.md)."""

from __future__ import annotations

import os
import time

import click

from irqlab.cli.main import cli, fail
from irqlab.cli.cmdline import SET_HELP, fmt_ns

MAX_SHOWN_ERRORS = 20
RATE_MIN_LINES = 100_000  # an import this long states its rate (shorter ones: start-up dominates)
DURATION_HELP = ("Simulated time of the scenario's run in which its steady-state loop is "
                 "found (default 2ms; the scenario's own run.duration with --set run.duration=...).")


class ErrorPrinter:
    """Prints the first :data:`MAX_SHOWN_ERRORS` malformed-line diagnostics to stderr."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, diag) -> None:
        self.n += 1
        if self.n <= MAX_SHOWN_ERRORS:
            click.echo(diag.format(), err=True)

    def finish(self) -> None:
        if self.n > MAX_SHOWN_ERRORS:
            click.echo(f"... and {self.n - MAX_SHOWN_ERRORS} more malformed lines", err=True)


def _read_summary(files):
    """(Summary, ReadStats) of trace files; a user error if they hold no record."""
    from irqlab.traces.reader import ReadStats, read_records
    from irqlab.traces.summary import Summary

    stats, errors, summary = ReadStats(), ErrorPrinter(), Summary()
    for rec in read_records(files, stats, errors):
        summary.add(rec)
    errors.finish()
    _need_records(files, stats)
    return summary, stats


def _need_records(files, stats) -> None:
    if not stats.records:
        raise fail(f"no trace records in {', '.join(files)} ({stats.lines} lines, "
                   f"{stats.skipped} malformed)")


def _skips(stats) -> str:
    lost = f", {stats.lost} events lost by the tracer" if stats.lost else ""
    return f"{stats.skipped} malformed line{'s' if stats.skipped != 1 else ''} skipped{lost}"


@cli.group("traces")
def traces_group():
    """Import and summarize real kvm traces (trace-cmd report, perf script, excerpts)."""


@traces_group.command("import")
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Parquet file to write (default: the first FILE with suffix .parquet).")
def import_cmd(files, output):
    """Read trace FILEs into one Parquet table, one row per record, fields as typed columns."""
    from irqlab.traces.reader import ReadStats, check_file, read_records
    from irqlab.traces.table import TraceWriter

    out = output or os.path.splitext(files[0])[0] + ".parquet"
    for f in files:
        check_file(f)
        if os.path.abspath(f) == os.path.abspath(out):
            raise fail(f"the output {out} is also an input; name another with -o")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise fail(f"cannot write {out}: no directory {parent}")
    if os.path.isdir(out):
        raise fail(f"cannot write {out}: it is a directory")
    stats, errors = ReadStats(), ErrorPrinter()
    t0 = time.perf_counter()
    try:
        with TraceWriter(out) as w:
            for rec in read_records(files, stats, errors):
                w.add(rec)
            if not stats.records:
                errors.finish()
                _need_records(files, stats)
    except OSError as e:  # the writer's (disk full, say): the partial file is already removed
        if e.filename and e.filename in files:
            raise
        raise fail(f"cannot write {out}: {e.strerror or e}") from None
    errors.finish()
    dt = time.perf_counter() - t0
    top = ", ".join(f"{k} {v}" for k, v in stats.events.most_common(6))
    rate = f" ({stats.lines / dt:,.0f} lines/s)" if stats.lines >= RATE_MIN_LINES else ""
    click.echo(f"wrote {out}: {stats.records} records from {stats.lines} lines{rate}; {_skips(stats)}")
    click.echo(f"events: {top}{', ...' if len(stats.events) > 6 else ''}")


def _print_loop(label: str, loop) -> None:
    pct = 100 * loop.covered / max(loop.total, 1)
    click.echo(f"loop on {label}: {len(loop.keys)} records a pass, {loop.passes} whole "
               f"pass{'es' if loop.passes != 1 else ''}, {loop.covered} of {loop.total} records "
               f"in it ({pct:.0f}%)")
    if loop.period_ns:
        med, std, lo, hi = loop.period_ns
        click.echo(f"  period {fmt_ns(med)} (median; jitter {fmt_ns(std)} std, "
                   f"{fmt_ns(lo)} to {fmt_ns(hi)})")
    rips = {k: r for k, _, r in loop.rips}
    timed = any(s is not None for s in loop.steps_ns)
    for k, key in enumerate(loop.keys):
        step = f"{fmt_ns(loop.steps_ns[k]):>10}" if timed and loop.steps_ns[k] is not None else (
            f"{'-':>10}" if timed else "")
        rip = f"  rip {rips[k]:#x}" if k in rips else ""
        click.echo(f"  {k + 1:>3}  {key:<48}{step}{rip}")


@traces_group.command("summary")
@click.argument("files", nargs=-1, required=True)
@click.option("--bins", type=click.IntRange(min=1, max=1000), default=10, show_default=True,
              help="Time bins for the rates.")
def summary_cmd(files, bins):
    """Exits, injections, EOIs, userspace exits, rates, and the loop each vCPU repeats."""
    summary, stats = _read_summary(files)
    timed = summary.timed
    click.echo(f"{', '.join(files)}: {stats.records} records, {len(stats.events)} event types; "
               f"{_skips(stats)}{'' if timed else '; no timestamps'}")
    by_stream: dict[int, list] = {}
    for (sid, reason), n in summary.exits.items():
        by_stream.setdefault(sid, []).append((n, reason))
    click.echo("exits by reason:")
    for sid in sorted(by_stream):
        items = sorted(by_stream[sid], key=lambda x: (-x[0], str(x[1])))
        click.echo(f"  {summary.label(sid)}: " + ", ".join(f"{r} {n}" for n, r in items))
    if not by_stream:
        click.echo("  (no kvm_exit records)")
    if summary.vectors:
        kinds = ["MSI routed", "IOAPIC", "accepted", "injected", "reflected to L1", "EOIs",
                 "delayed EOI inj"]
        kinds = [k for k in kinds if any(c[k] for c in summary.vectors.values())]
        click.echo("per vector:  " + "".join(f"{k:>17}" for k in kinds))
        for v in sorted(summary.vectors):
            c = summary.vectors[v]
            click.echo(f"  {v:>4} ({v:#04x})" + "".join(f"{c[k]:>17}" for k in kinds))
    if summary.userspace:
        click.echo("userspace exits: " + ", ".join(f"{r} {n}" for r, n in summary.userspace.most_common()))
    rates = summary.rates(bins)
    if rates:
        edges, series = rates
        click.echo(f"rates per second, {bins} bins of {fmt_ns((edges[1] - edges[0]))} from "
                   f"t={edges[0] / 1e9:.6f} s:")
        for name, r in series.items():
            click.echo(f"  {name:<6}" + " ".join(f"{x:9.3g}" for x in r))
    for sid, loop in summary.loops().items():
        if loop is None:
            click.echo(f"no repeating loop on {summary.label(sid)}")
        else:
            _print_loop(summary.label(sid), loop)


def _model(path: str, sets: tuple[str, ...], duration: str):
    """(scenario, program, lane) of the scenario's first replication, run for ``duration``
    unless --set gives run.duration."""
    from irqlab import engine
    from irqlab.cli.sim import lanes_for, load_resolved
    from irqlab.resolve import parse_quantity

    try:
        q = parse_quantity(duration)
    except ValueError as e:
        raise fail(f"--duration: {e}") from None
    if q.dimension != "time" or q.value <= 0:
        raise fail(f"--duration takes a positive time such as 2ms, not '{duration}'")
    if not any(s.split("=", 1)[0].strip() == "run.duration" for s in sets):
        sets = sets + (f"run.duration={duration}",)
    scenario = load_resolved(path, sets)
    program = engine.compile(scenario)
    lanes, _ = lanes_for(scenario, program, None, None, only=0)
    return scenario, program, lanes[0], sets


def _trace_loop(trace_file: str):
    """(stream label, Loop, event names) of the trace's dominant loop."""
    from irqlab.traces.model import main_loop

    summary, stats = _read_summary((trace_file,))
    found = main_loop(summary)
    if found is None:
        raise fail(f"{trace_file}: no repeating loop of events: nothing to compare")
    return summary.label(found[0]), found[1], frozenset(stats.events)


def _model_loop(program, lane, what: str, events: frozenset[str]):
    """(stream id, Loop) of the model's dominant loop, of the trace's ``events`` only."""
    from irqlab.traces.model import main_loop, run_model

    found = main_loop(run_model(program, lane, events))
    if found is None:
        raise fail(f"{what}: the model's run has no repeating loop of the trace's events "
                   f"({', '.join(sorted(events))}): no steady state to compare")
    return found


@cli.command("compare")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.argument("trace")
@click.option("--set", "sets", multiple=True, help=SET_HELP)
@click.option("--duration", default="2ms", show_default=True, help=DURATION_HELP)
def compare_cmd(scenario, trace, sets, duration):
    """Align SCENARIO's steady-state loop with TRACE's: record by record, and step durations
    side by side. Only the events TRACE recorded are taken from the model. Exit status 1
    when the loops differ."""
    from irqlab.traces.compare import align

    tlabel, tloop, events = _trace_loop(trace)
    sc, program, lane, _ = _model(scenario, sets, duration)
    sid, mloop = _model_loop(program, lane, scenario, events)
    a = align(tloop, mloop)
    click.echo(f"trace {trace} ({tlabel}): {len(a.trace_keys)} records a pass, {tloop.passes} "
               f"whole pass(es); model {sc.name}: {len(a.model_keys)} records a pass")
    timed = any(s is not None for s in a.trace_steps)
    head = f"  {'step':>4}  {'trace':<52}{'model':<52}"
    if timed:
        head += f"{'trace':>10}{'model':>10}{'ratio':>7}"
    click.echo(head)
    for k in range(max(len(a.trace_keys), len(a.model_keys))):
        t = a.trace_keys[k] if k < len(a.trace_keys) else ""
        m = a.model_keys[k] if k < len(a.model_keys) else ""
        mark = " " if t == m else "*"
        line = f"{mark} {k + 1:>4}  {t:<52}{m:<52}"
        if timed:
            ts = a.trace_steps[k] if k < len(a.trace_steps) else None
            ms = a.model_steps[k] if k < len(a.model_steps) else None
            ratio = f"{ts / ms:7.2f}" if ts is not None and ms else f"{'-':>7}"
            line += (f"{fmt_ns(ts) if ts is not None else '-':>10}"
                     f"{fmt_ns(ms) if ms is not None else '-':>10}{ratio}")
        click.echo(line.rstrip())
    for k, t, m in a.field_diffs:
        click.echo(f"  step {k + 1}: same record, other fields: trace '{t}', model '{m}'")
    if a.match:
        click.echo(f"the loops match record by record ({len(a.trace_keys)} records a pass)")
        return
    i, j, how = a.first_diff
    t = a.trace_keys[i] if i < len(a.trace_keys) else "(end)"
    m = a.model_keys[j] if j < len(a.model_keys) else "(end)"
    click.echo(f"the loops differ: first at trace step {i + 1} / model step {j + 1} ({how}): "
               f"trace '{t}', model '{m}'")
    raise click.exceptions.Exit(1)


@cli.command("calibrate")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.argument("trace")
@click.option("--fit", "fit_names", help="Costs to fit, comma-separated "
              "(e.g. costs.vmexit,costs.userspace_exit; default: every cost).")
@click.option("--set", "sets", multiple=True, help=SET_HELP)
@click.option("--duration", default="2ms", show_default=True, help=DURATION_HELP)
def calibrate_cmd(scenario, trace, fit_names, sets, duration):
    """Fit SCENARIO's costs to TRACE's step durations (least squares over the aligned loop);
    print a costs { } block, the residuals, and which costs the trace determines."""
    from irqlab.errors import ScenarioError, did_you_mean
    from irqlab.ir import COSTS
    from irqlab.traces.calibrate import fit
    from irqlab.traces.model import main_loop, run_model

    free = list(COSTS)
    if fit_names:
        free = []
        for item in fit_names.split(","):
            name = item.strip().removeprefix("costs.")
            if name not in COSTS:
                raise ScenarioError(f"--fit: no cost '{item.strip()}'",
                                    hint=did_you_mean(name, COSTS) or
                                    "costs: " + ", ".join(f"costs.{c}" for c in COSTS))
            if name not in free:
                free.append(name)
    _, tloop, events = _trace_loop(trace)
    sc, program, lane, base_sets = _model(scenario, sets, duration)
    tsc = float(program.params["machine.tsc"])
    start = {c: program.params[f"costs.{c}"] * tsc / 1e12 for c in COSTS}

    def run_loop(costs: dict[str, float]):
        over = tuple(f"costs.{c}={v:.6g}cycles" for c, v in costs.items() if v != start[c])
        if over:
            _, prog, ln, _ = _model(scenario, base_sets + over, duration)
        else:
            prog, ln = program, lane
        found = main_loop(run_model(prog, ln, events))
        if found is None:
            raise ScenarioError(f"{scenario}: the model's run has no repeating loop")
        return found[1]

    result = fit(tloop, run_loop, start, free)
    click.echo(f"# {sc.name} calibrated to {trace} ({len(result.keys)} steps a pass, "
               f"{sum(s is not None for s in result.trace_ns)} with durations)")
    click.echo("costs {")
    width = max(len(c.name) for c in result.costs)
    for c in result.costs:
        note = {"fitted": "fitted" + (f", +/- {c.stderr:.2g}" if c.stderr is not None else ""),
                "fixed": "fixed (not in --fit)",
                "absent": "not determined by the trace: no step of its loop depends on it (kept)",
                "combined": "not determined by the trace: only together with "
                            + ", ".join(c.partners) + " (kept; see below)"}[c.status]
        click.echo(f"    {c.name:<{width}} {c.value:.0f} cycles  # {note}")
    click.echo("}")
    cond = f", condition number {result.cond:.3g}" if result.cond is not None else ""
    click.echo(f"rank {result.rank} of {len(free)} free costs{cond}")
    if result.combos:
        click.echo("determined only in combination (cycles; the step that fixes each):")
    for k, terms, total in result.combos:
        expr = " + ".join(n if w == 1 else f"{w:g} {n}" for n, w in terms)
        click.echo(f"  {expr} = {total:.0f}  (step {k + 1}: {result.keys[k]})")
    click.echo(f"  {'step':>4}  {'record':<52}{'trace':>10}{'before':>10}{'after':>10}{'residual':>12}")
    for k, key in enumerate(result.keys):
        t, b, a = result.trace_ns[k], result.before_ns[k], result.after_ns[k]
        res = f"{t - a:.1f} ns" if t is not None and a is not None else "-"
        click.echo(f"  {k + 1:>4}  {key:<52}{fmt_ns(t) if t is not None else '-':>10}"
                   f"{fmt_ns(b) if b is not None else '-':>10}{fmt_ns(a) if a is not None else '-':>10}"
                   f"{res:>12}")
