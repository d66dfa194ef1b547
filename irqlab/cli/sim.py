"""``irqlab run``, ``irqlab trace`` and ``irqlab compile``: the engine's commands."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack, contextmanager

import click

from irqlab.cli.cmdline import SET_HELP, fmt_ns
from irqlab.cli.main import cli, fail


def load_resolved(path: str, sets: tuple[str, ...]):
    """The scenario in ``path`` with ``--set`` overrides applied and every value resolved.

    An error in an override points at it on the command line (``<command line>:1:COL``)."""
    from irqlab.dsl import load

    return resolve_with_sets(load(path), path, sets)


def resolve_with_sets(scenario, path: str, sets: tuple[str, ...]):
    """``scenario`` (read from ``path``) resolved with ``--set`` overrides; an error in an
    override points at it on the command line."""
    from irqlab.cli.cmdline import assignments, with_command_line
    from irqlab.errors import ScenarioError
    from irqlab.resolve import resolve

    try:
        given = assignments("--set", sets)
        return resolve(scenario, {a.path: a.value for a in given},
                       spans={a.path: a.value_span for a in given if a.value_span},
                       key_spans={a.path: a.path_span for a in given if a.path_span})
    except ScenarioError as e:
        raise with_command_line(e, {path: scenario.source}) from None


MAX_RUN_REPLICATIONS = 10_000  # `irqlab run` keeps them all in one batch and one table


def lanes_for(scenario, program, replications: int | None, seed: int | None,
              only: int | None = None):
    """One lane per replication (or replication ``only`` alone), seeded as a sweep seeds
    them (SeedSequence(seed, (r,)))."""
    from irqlab.engine import Lane
    from irqlab.errors import ScenarioError

    base = scenario.run.seed if seed is None else seed
    if only is not None:
        return [Lane(base, (only,), dict(program.params))], base
    n = replications if replications is not None else scenario.run.replications
    if n > MAX_RUN_REPLICATIONS:
        raise ScenarioError(f"irqlab run runs all its replications in one batch: at most "
                            f"{MAX_RUN_REPLICATIONS:,}, not {n:,}",
                            hint="irqlab sweep runs any number, in batches, and stores them")
    return [Lane(base, (r,), dict(program.params)) for r in range(n)], base


@cli.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "sets", multiple=True, help=SET_HELP)
@click.option("-n", "--replications", type=click.IntRange(min=1), help="Runs (default: run.replications).")
@click.option("--seed", type=click.IntRange(min=0), help="Base seed (default: run.seed).")
@click.option("--backend", type=str, help="Executor backend plugin (default: the scenario's "
              "run.backend, itself 'auto' unless set: the compiled kernel when every plugin and "
              "mechanism of the scenario has kernel support, else the NumPy lockstep executor; "
              "the run says which and why; 'reference' runs the kernel's own Python, for "
              "reading; `irqlab plugins list` names them).")
@click.option("--json", "as_json", is_flag=True, help="Print every run's metrics as JSON.")
@click.option("--trace", "trace_out", type=click.Path(dir_okay=False, writable=True),
              help="Write the first run's events here, as `irqlab trace` prints them (streamed: "
              "a long trace goes to disk, not to memory).")
@click.option("--perfetto", type=click.Path(dir_okay=False, writable=True),
              help="Write the first run's Chrome/Perfetto JSON timeline here (streamed too).")
def run_cmd(file, sets, replications, seed, backend, as_json, trace_out, perfetto):
    """Run FILE's scenario (its replications; the sweep block is ignored: see `irqlab sweep`)."""
    from irqlab import engine

    scenario = load_resolved(file, sets)
    program = engine.compile(scenario)
    lanes, base = lanes_for(scenario, program, replications, seed)
    with trace_files(trace_out, perfetto) as outs:  # opened first: a bad path costs no run
        result = engine.run(program, lanes, trace_lanes=[0] if outs else [], backend=backend)
        runs = []
        for r in range(result.n):
            row = {"replication": r, "seed": base, "spawn_key": [r]}
            row.update(result.lane(r))
            runs.append(row)
        if as_json:
            json.dump({"scenario": scenario.name, "backend": result.backend or backend or scenario.run.backend,
                       "runs": runs}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print_runs(scenario, runs, program)
            print(f"backend: {result.backend or backend or scenario.run.backend}")
        sys.stdout.flush()  # the results are out before the trace is written (it may fail)
        if outs and result.status[0] == "ok":
            write_trace(result.traces[0], program, scenario.name, outs)
    if any(r["status"] != "ok" for r in runs):
        raise SystemExit(1)


def share_columns(program) -> list[tuple[str, str]]:
    """``(header, metric)`` of the time shares a scenario has: its levels, innermost first,
    and the VMM's userspace when there is a hypervisor (no ``L2`` column without an L2)."""
    cols = [(lvl, f"{lvl.lower()}_time_ns") for lvl in reversed(program.stack)]
    if not program.bare:
        cols.append(("user", "userspace_time_ns"))
    return cols


def print_runs(scenario, runs: list[dict], program) -> None:
    """The run table: per replication its seed, progress, the share of vCPU time at each
    level (of simulated time x vCPUs, so the shares of a run add up to at most 100%),
    EOIs, exits and events; then the first run's exits and devices."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 110)
    shares = share_columns(program)
    per = "" if program.n_vcpus == 1 else f" (time shares per vCPU, mean of {program.n_vcpus})"
    t = Table(title=f"{scenario.name}: {len(runs)} run(s) of {scenario.run.duration}{per}",
              title_justify="left")
    for col in ("rep", "seed", "livelock", "progress after", *(h for h, _ in shares), "EOIs",
                "exits", "events"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in runs:
        seed = f"{r['seed']} {list(r['spawn_key'])}"
        if r["status"] != "ok":
            t.add_row(str(r["replication"]), seed, "[red]failed[/red]", r["error"] or "",
                      *[""] * (len(shares) + 3))
            continue
        vcpu_time = (r["sim_time_ns"] or 1) * program.n_vcpus
        pct = lambda k: f"{100 * r[k] / vcpu_time:.1f}%"  # noqa: E731
        t.add_row(str(r["replication"]), seed, "[red]yes[/red]" if r["livelock"] else "no",
                  fmt_ns(r["time_to_l2_progress_ns"] if r["time_to_l2_progress_ns"] is not None
                         else r["time_to_progress_ns"]),
                  *(pct(k) for _, k in shares),
                  str(r["eoi_count"]), str(r["exits_total"]),
                  f"{r['events']}{' (truncated)' if r['truncated'] else ''}")
    console.print(t)
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return
    first = ok[0]
    if program.n_vcpus > 1 and first.get("vcpu_time_ns"):
        v = Table(title="time share per vCPU (first run)",
                  title_justify="left")
        for col in ("vCPU", *(h for h, _ in shares)):
            v.add_column(col, justify="right", no_wrap=True)
        span = first["sim_time_ns"] or 1
        for cpu, times in first["vcpu_time_ns"].items():
            v.add_row(cpu, *(f"{100 * times[h] / span:.1f}%" for h, _ in shares))
        console.print(v)
    if first["exits"]:
        console.print("exits: " + ", ".join(f"{k} {v}" for k, v in sorted(first["exits"].items())) +
                      ("; userspace: " + ", ".join(f"{k} {v}" for k, v in first["userspace_exits"].items())
                       if first["userspace_exits"] else ""), highlight=False)
    if first["mitigation_activations"]:
        console.print("mitigation activations: " + ", ".join(
            f"{k} {v}" for k, v in first["mitigation_activations"].items()), highlight=False)
    d = Table(title="devices (first run)", title_justify="left",
              caption="p50, p99: estimates from a histogram, 10 bins a decade; max: exact",
              caption_justify="left")
    for col in ("device", "raised", "delivered", "coalesced", "redelivered", "serviced",
                "p50 (est.)", "p99 (est.)", "max (exact)"):
        d.add_column(col, justify="right", no_wrap=True)
    for name, m in first["devices"].items():
        d.add_row(name, str(m["raised"]), str(m["delivered"]), str(m["coalesced"]), str(m["redelivered"]),
                  str(m["serviced"]),
                  fmt_ns(m["latency_p50_ns"]) if m["latency_p50_ns"] is not None else "-",
                  fmt_ns(m["latency_p99_ns"]) if m["latency_p99_ns"] is not None else "-",
                  fmt_ns(m["latency_max_ns"]) if m["latency_max_ns"] is not None else "-")
    console.print(d)


@cli.command("trace")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "sets", multiple=True, help=SET_HELP)
@click.option("-r", "--replication", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which replication's lane to trace.")
@click.option("--seed", type=click.IntRange(min=0), help="Base seed (default: run.seed).")
@click.option("-e", "--events", "event_filter", help="Only these events, comma-separated "
              "(a trailing * matches a prefix, e.g. kvm_*).")
@click.option("--limit", type=click.IntRange(min=1), help="Print at most this many records.")
@click.option("--perfetto", type=click.Path(dir_okay=False, writable=True),
              help="Also write a Chrome/Perfetto JSON trace here (open it in ui.perfetto.dev).")
@click.option("--backend", type=str, help="Executor backend plugin.")
def trace_cmd(file, sets, replication, seed, event_filter, limit, perfetto, backend):
    """Print one run's events like `trace-cmd report` prints the kvm trace events."""
    from irqlab import engine
    from irqlab.engine.trace import format_report

    scenario = load_resolved(file, sets)
    program = engine.compile(scenario)
    lanes, _ = lanes_for(scenario, program, None, seed, only=replication)
    with trace_files(None, perfetto) as outs:
        result = engine.run(program, lanes, trace_lanes=[0], backend=backend)
        if result.status[0] != "ok":
            raise fail(f"the run failed: {result.error[0]}")
        trace = result.traces[0]
        keep = [e.strip() for e in event_filter.split(",")] if event_filter else None
        for line in format_report(trace, keep, limit):
            sys.stdout.write(line + "\n")
        _note_unmatched(keep or [], {rec[3] for rec in trace.records})
        write_trace(trace, program, scenario.name, outs)


@contextmanager
def trace_files(report: str | None, perfetto: str | None):
    """Open the trace outputs given (``{"report"|"perfetto": (path, file)}``) before the run,
    so that a path that cannot be written fails at once; closed on the way out."""
    for option, path in (("--trace", report), ("--perfetto", perfetto)):
        if path is not None and not path.strip():
            raise click.BadParameter("an empty path: give the file to write", param_hint=f"'{option}'")
    with ExitStack() as stack:
        yield {kind: (path, stack.enter_context(open(path, "w", encoding="utf-8")))
               for kind, path in (("report", report), ("perfetto", perfetto)) if path is not None}


def write_trace(trace, program, title: str, outs: dict) -> None:
    """Write ``trace`` into the files of :func:`trace_files`: trace-cmd report lines and a
    Perfetto timeline, streaming (neither is built in memory)."""
    from irqlab.engine.trace import format_report, write_perfetto

    for kind, (path, fh) in outs.items():
        try:
            if kind == "report":
                fh.writelines(line + "\n" for line in format_report(trace))
            else:
                write_perfetto(trace, program.n_vcpus, fh, title)
            fh.flush()
        except OSError as e:
            where = f" ({e.filename})" if e.filename and e.filename != path else ""
            raise fail(f"cannot write {path}: {e.strerror or e}{where}") from None
        click.echo(f"wrote {path}" + (": open it in https://ui.perfetto.dev" if kind == "perfetto" else ""),
                   err=True)


def _note_unmatched(patterns: list[str], names: set[str]) -> None:
    """Say on stderr which -e patterns matched no event of the run (a typo, usually)."""
    from irqlab.errors import did_you_mean

    for k in patterns:
        if not any(n == k or (k.endswith("*") and n.startswith(k[:-1])) for n in names):
            hint = did_you_mean(k, names) or "its events: " + ", ".join(sorted(names))
            click.echo(f"note: no event of this run matches '{k}'; {hint}", err=True)


@cli.command("compile")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "sets", multiple=True, help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable form.")
def compile_cmd(file, sets, as_json):
    """Explain what the engine makes of FILE: vector groups, handler programs, plugins, lane
    parameters, and the structure key that decides which runs share a batch."""
    from irqlab import engine
    from irqlab.engine.explain import explain

    program = engine.compile(load_resolved(file, sets))
    info = explain(program)
    if as_json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    click.echo(f"scenario {info['scenario']}  (structure key {info['key']})")
    click.echo(f"  machine: {info['machine']}")
    click.echo(f"  levels: {' -> '.join(info['stack'])}; interrupts arrive at {info['receiving']}")
    for g in info["groups"]:
        click.echo(f"  vector {g['vector']:#x} ({g['trigger']}, {g['delivery']}"
                   f"{', pins ' + ','.join(map(str, g['pins'])) if g['pins'] else ''}) -> vCPU {g['dest']}: "
                   f"devices {', '.join(g['devices'])}, serviced {'here' if g['local'] else 'by L2'}")
        click.echo(f"    handler ({g['policy']}): " + " ; ".join(g["steps"]))
        flags = [k for k in ("eoi_exit", "suppress") if g[k]]
        if flags:
            click.echo(f"    {' and '.join({'eoi_exit': 'in the EOI-exit bitmap', 'suppress': 'EOI broadcast suppressed by the guest'}[k] for k in flags)}")
    for m in info["mitigations"]:
        click.echo(f"  mitigation {m['name']}: hooks {', '.join(m['hooks'])}; timers {m['timers']}")
    click.echo("  lane parameters (may differ per lane within one batch):")
    for path, value in info["params"].items():
        click.echo(f"    {path} = {value}")
