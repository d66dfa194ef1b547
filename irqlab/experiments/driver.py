"""The sweep driver: plan, launch, store, report.

    report = run_sweep(SweepRequest(text, file, out_dir=...))

The driver is the only writer of the results store. It

1. parses and prepares the sweep (:mod:`.plan`), records the sweep's
   provenance (``begin_sweep``, idempotent so a rerun resumes it) and asks
   the store which runs are already there;
2. plans the points lazily, a chunk at a time as the batches need runs
   (:class:`.plan.Planner`): it asks the store which of the chunk's runs are
   already there and compiles the others here; a point that fails becomes
   failed run rows at once; so memory depends on the batches in flight, not
   on the sweep's size;
3. cuts batches (:class:`.plan.Batcher`) and hands them to a launcher
   (:mod:`.launchers`), writing each finished batch to the store in one
   atomic ``write_batch``; so a sweep killed at any moment leaves only whole
   batches behind, and the next run of the same sweep does only what is
   missing;
4. finishes the sweep record with its end time and status
   (``done``, ``failed`` when ``--fail-fast`` stopped it, ``interrupted``,
   or ``error`` when something else stopped it, e.g. a lost cluster).

Failures are data: a lane that fails, a batch whose engine call raised, or
a task lost with its Ray worker (after ``max_retries``) become run rows with
status ``failed`` and the error, and the sweep goes on (``fail_fast`` stops
it at the first one).

Ctrl-C (or SIGTERM) once: no new batches; batches in flight on Ray are
cancelled, an inline batch already running finishes and is kept; the sweep
is marked ``interrupted``. Ctrl-C twice: stop at once (a store write in
progress still completes, so nothing partial is left).

Launcher choice (``launcher="auto"``): a cluster address (``address`` or
``RAY_ADDRESS``) means Ray on that cluster. Otherwise the sweep starts
inline; after the first (probe) batch, if the remaining work is estimated at
more than ``auto_ray_seconds`` of engine time and the machine has more than
one core, the driver starts an embedded Ray on this machine's cores and
continues there. Small sweeps never pay Ray's start-up.
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from irqlab import __version__
from irqlab.errors import ScenarioError
from irqlab.experiments import plan as planning
from irqlab.experiments.expectations import add_columns as add_expect_columns
from irqlab.experiments.launchers import InlineLauncher, Launcher, make_launcher
from irqlab.experiments.progress import Progress
from irqlab.experiments.provenance import git_state, host, now_iso

DEFAULT_SCENARIO = "default.scn"

#: runs kept in memory for the end-of-sweep table; beyond this the table is read back
ROWS_KEPT = 100_000
#: runs planned at a time while workers run (about 10-30 ms of the driver's time): a
#: worker that finishes meanwhile waits at most that long to be handed its next batch
PLAN_STEP = 256
#: metrics kept in memory per run for the end-of-sweep table
TABLE_METRICS = ("livelock", "time_to_l2_progress_ns", "time_to_progress_ns", "l2_fraction",
                 "livelock_max_ns", "events")


@dataclass
class SweepRequest:
    """Everything ``irqlab sweep`` was asked to do."""

    text: str
    file: str | None
    out_dir: str = "sweep-out"
    overrides: list[tuple[str, str]] = field(default_factory=list)
    axes: list[tuple[str, list[str]]] = field(default_factory=list)
    # where each (option, path) was typed: (path span, value span), for located errors;
    # ("--grid", path, i) -> (None, span of the i-th value)
    spans: dict[tuple, tuple[Any, Any]] = field(default_factory=dict)
    launcher: str = "auto"  # auto | inline | ray
    address: str | None = None
    workers: int | None = None
    fail_fast: bool = False
    retry_failed: bool = False
    target_s: float = 2.0
    max_lanes: int = 4096
    probe_lanes: int = 64
    max_retries: int = 3
    progress: bool | None = None
    command: str = ""
    db_url: str | None = None
    auto_ray_seconds: float = 30.0


@dataclass
class RunRow:
    """One run as the end-of-sweep table sees it."""

    point: int
    replication: int
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]


@dataclass
class SweepReport:
    """What a sweep did (printed as the summary; figures for the benchmark)."""

    sweep_id: str
    out_dir: str
    name: str
    planned: int
    points: int
    replications: int
    param_paths: tuple[str, ...]
    param_units: dict[str, str] = field(default_factory=dict)
    nested: bool = True  # some vCPU runs an L2
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    status: str = "done"
    wall_s: float = 0.0
    run_wall_s: float = 0.0  # from the first batch submitted to the last one stored
    plan_s: float = 0.0
    engine_s: float = 0.0
    lane_events: int = 0
    launcher: str = ""
    workers: int = 1
    batch_sizes: list[int] = field(default_factory=list)
    rows: list[RunRow] = field(default_factory=list)
    rows_complete: bool = True  # False: more than ROWS_KEPT runs, the table reads them back
    first_error: str | None = None


# --------------------------------------------------------------------------- helpers


def default_scenario() -> tuple[str, str]:
    """The embedded default scenario: ``(text, name)``."""
    from importlib import resources

    res = resources.files("irqlab").joinpath("data", DEFAULT_SCENARIO)
    try:
        text = res.read_text()
    except FileNotFoundError:
        raise ScenarioError(f"the embedded default scenario irqlab/data/{DEFAULT_SCENARIO} "
                            "is missing from this installation") from None
    return text, f"<irqlab>/data/{DEFAULT_SCENARIO}"


def failed_result(errors: list[str]) -> Any:
    """A BatchResult in which every lane failed with its error (metrics null/zero)."""
    from irqlab.engine.result import EXIT_REASONS, METRICS, USERSPACE_EXITS, BatchResult

    n = len(errors)
    metrics = {}
    for name, (typ, _, _) in METRICS.items():
        if typ == "float":
            metrics[name] = np.full(n, np.nan)
        elif typ == "bool":
            metrics[name] = np.zeros(n, bool)
        else:
            metrics[name] = np.zeros(n, np.int64)
    return BatchResult(
        n=n, status=["failed"] * n, error=list(errors), metrics=metrics,
        exits={r: np.zeros(n, np.int64) for r in EXIT_REASONS},
        userspace_exits={r: np.zeros(n, np.int64) for r in USERSPACE_EXITS},
        mitigation_activations={}, devices={},
    )


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 2000 else text[:2000] + " ..."


class _Stop:
    """Ctrl-C/SIGTERM handling: the first asks for a clean stop, the second raises
    KeyboardInterrupt, but never inside a store write."""

    def __init__(self) -> None:
        self.requests = 0
        self.critical = False
        self.deferred = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old = signal.signal(sig, self._handler)
                self._old.setdefault(sig, old)
            except (ValueError, OSError):
                pass

    def restore(self) -> None:
        for sig, old in self._old.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError):
                pass
        self._old.clear()

    def _handler(self, signum, frame) -> None:
        self.requests += 1
        if self.requests >= 2:
            if self.critical:
                self.deferred = True
            else:
                raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        return self.requests > 0


class _FailFast(Exception):
    pass


def warn_store(store: Any, lost: Any) -> None:
    """Tell on stderr what opening the store found: files it left alone, sweeps whose
    writer had died, shards lost since the last run (whose runs are run again)."""
    found = getattr(store, "recovered", {})
    unknown = found.get("unknown", [])
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        print(f"irqlab: warning: left in place {len(unknown)} Parquet file(s) this database does "
              f"not list: {shown} (see 'irqlab verify')", file=sys.stderr)
    for sid in getattr(store, "abandoned", []):
        print(f"irqlab: warning: sweep {sid} was left running by a process that no longer "
              f"exists; marked 'killed'", file=sys.stderr)
    for file, why, n in lost or []:
        print(f"irqlab: warning: shard {file} is {why}: its group's {n} runs are run again "
              f"(its files moved to quarantine/)", file=sys.stderr)


# --------------------------------------------------------------------------- the driver


def parse_scenario(text: str, file: str | None) -> Any:
    """Parse scenario text with the DSL (``irqlab.dsl.loads``)."""
    from irqlab import dsl

    return dsl.loads(text, file or "<scenario>")


def sweep_info(req: SweepRequest, prep: planning.Prepared, started_at: str) -> Any:
    from irqlab.experiments.identity import text_hash
    from irqlab.results.store import SweepInfo

    real_file = req.file if req.file and os.path.exists(req.file) else None
    commit, dirty = git_state(real_file)
    return SweepInfo(
        sweep_id=prep.sweep_id, name=prep.scenario.name, scenario_text=req.text,
        scenario_hash=text_hash(req.text), scenario_file=req.file,
        command=req.command or shlex.join(["irqlab", *sys.argv[1:]]),
        irqlab_version=__version__, plugin_versions={**prep.plugins, "backend": _backend_choice(prep)},
        git_commit=commit,
        git_dirty=dirty, host=host(), started_at=started_at, planned_runs=prep.planned_runs,
        param_paths=prep.param_paths, base_seed=prep.base_seed, param_units=dict(prep.param_units),
    )


def _backend_choice(prep: planning.Prepared) -> str:
    """Which executor the sweep's runs use and why (``auto``'s choice), for provenance."""
    from irqlab import engine
    from irqlab.plugins.builtin.backends import describe_choice

    try:
        return describe_choice(engine.compile(prep.base))
    except Exception as e:  # noqa: BLE001 - a point that does not compile fails on its own
        return f"unknown ({type(e).__name__})"


def run_infos(runs: list[planning.PlannedRun], wall_s: float) -> list[Any]:
    from irqlab.results.store import RunInfo

    return [RunInfo(run_id=r.run_id, point=r.point, replication=r.replication, seed=r.seed,
                    spawn_key=tuple(r.spawn_key), params=dict(r.params), wall_s=wall_s)
            for r in runs]


def stored_lookup(store: Any, sweep_id: str) -> Callable[[list[str]], dict[str, str]]:
    """``run_ids -> {run_id: status}`` of those already stored: the store's per-chunk
    query, or (a store without one) its whole list read once. A sweep the store has just
    begun (not a resume) has nothing stored but what this driver stores, and the planner
    asks about each run once, before it runs: nothing to ask (a run another writer of a
    shared database stores meanwhile is skipped by ``write_batch``)."""
    if sweep_id in getattr(store, "new_sweeps", ()):
        return lambda ids: {}
    if hasattr(store, "stored_status"):
        return lambda ids: store.stored_status(sweep_id, ids)
    done = store.completed(sweep_id)
    return lambda ids: {i: done[i] for i in ids if i in done}


def run_sweep(req: SweepRequest, *, scenario: Any = None, run_fn: Callable | None = None,
              compile_fn: Callable | None = None, store: Any = None,
              on_progress: Callable[[SweepReport], None] | None = None) -> SweepReport:
    """Run (or resume) a sweep; see the module docstring.

    ``scenario`` (an already parsed ``ir.Scenario``), ``run_fn``,
    ``compile_fn`` and ``store`` replace the DSL, ``engine.run``,
    ``engine.compile`` and the ``ResultStore`` (tests, benchmarks).
    ``on_progress`` is called after every stored batch.
    """
    t_start = time.perf_counter()
    started_at = now_iso()
    if scenario is None:
        scenario = parse_scenario(req.text, req.file)
    prep = planning.prepare(scenario, req.text, req.overrides, req.axes, req.spans)
    report = SweepReport(prep.sweep_id, req.out_dir, scenario.name, prep.planned_runs,
                         len(prep.points), prep.replications, prep.param_paths, prep.param_units,
                         any(v.innermost == "L2" for v in prep.base.vcpus))

    own_store = store is None
    if own_store:
        from irqlab.results.store import ResultStore

        os.makedirs(req.out_dir, exist_ok=True)
        store = ResultStore(req.out_dir, req.db_url)
    stop = _Stop()
    progress = Progress(prep.planned_runs, 0, req.progress)
    launcher: Launcher | None = None
    batcher: planning.Batcher | None = None
    begun = False
    try:
        lost = store.begin_sweep(sweep_info(req, prep, started_at))
        begun = True
        warn_store(store, lost)
        progress.start("planning")
        stop.install()
        planner = planning.Planner(prep, stored_lookup(store, prep.sweep_id),
                                   retry_failed=req.retry_failed, compile_fn=compile_fn)
        batcher = planning.Batcher((), target_s=req.target_s, max_lanes=req.max_lanes,
                                   probe_lanes=req.probe_lanes)

        def store_batch(runs: list[planning.PlannedRun], result: Any, wall_s: float) -> None:
            add_expect_columns(prep, runs, result)
            stop.critical = True
            try:
                already = set(store.write_batch(prep.sweep_id, run_infos(runs, wall_s), result) or ())
            finally:
                stop.critical = False
            n_ok = n_failed = 0
            events = 0
            cols = {m: result.metrics[m] for m in TABLE_METRICS if m in result.metrics}
            ev = result.metrics.get("events")
            for i, r in enumerate(runs):
                if r.run_id in already:  # stored meanwhile: already done, not run now
                    continue
                if result.status[i] == "ok":
                    n_ok += 1
                else:
                    n_failed += 1
                    if report.first_error is None:
                        report.first_error = result.error[i]
                if ev is not None and np.isfinite(ev[i]):
                    events += int(ev[i])
                if len(report.rows) < ROWS_KEPT:
                    report.rows.append(RunRow(r.point, r.replication, result.status[i], r.params,
                                              {m: c[i].item() for m, c in cols.items()}))
                else:
                    report.rows_complete = False
            report.ok += n_ok
            report.failed += n_failed
            report.skipped += len(already)
            report.lane_events += events
            progress.advance(n_ok + len(already), n_failed, events)
            if on_progress is not None:
                on_progress(report)
            if stop.deferred:
                raise KeyboardInterrupt
            if n_failed and req.fail_fast:
                raise _FailFast()

        step = PLAN_STEP  # runs per chunk; doubles while chunks are all already stored (resume)

        def plan_more(low_water: int) -> None:
            """Plan chunks of points until ``low_water`` runs are queued or all are planned."""
            nonlocal step
            while batcher.pending < low_water and not planner.exhausted and not stop.requested:
                chunk = planner.next_chunk(max(step, low_water - batcher.pending))
                if chunk is None:
                    break
                step = PLAN_STEP if chunk.todo or chunk.invalid else 2 * step
                report.skipped += chunk.skipped
                progress.advance(chunk.skipped, 0, 0)
                if chunk.invalid:
                    store_batch(chunk.invalid, failed_result([r.error or "" for r in chunk.invalid]), 0.0)
                batcher.feed(chunk.todo)
            batcher.more = not planner.exhausted
            batcher.unfed = max(0, prep.planned_runs - planner.runs_done)

        plan_more(req.probe_lanes)  # the first batch's runs only: the rest is planned as it runs
        report.plan_s = time.perf_counter() - t_start
        address = req.address
        if address is None and req.launcher in ("auto", "ray"):
            address = os.environ.get("RAY_ADDRESS") or None
        kind = req.launcher
        if kind == "auto":
            kind = "ray" if address else "inline"
        auto = req.launcher == "auto" and not address and (os.cpu_count() or 1) > 1
        if batcher.pending:
            if kind == "ray":
                progress.phase("starting ray")
            launcher = make_launcher(kind, address=address if kind == "ray" else None,
                                     workers=req.workers, max_retries=req.max_retries, run_fn=run_fn)
            launcher.start()
            stop.install()  # after Ray, which may have installed its own handlers
        if batcher.pending:  # compile (or load) the kernel once, here, before the workers need it
            from irqlab import engine
            from irqlab.plugins.builtin.backends import warm

            try:
                warm(engine.compile(prep.base), progress.phase)
            except ScenarioError:
                pass
        report.launcher = launcher.describe() if launcher else "none (nothing to run)"
        report.workers = launcher.workers if launcher else 0
        progress.phase("running")

        from irqlab.engine.program import Lane

        handles: dict[str, Any] = {}
        workers_seen: set[tuple[str, int]] = set()
        tasks: dict[int, tuple[str, list[planning.PlannedRun]]] = {}
        task_ids = itertools.count()
        t_run = time.perf_counter()
        def refill() -> None:
            while launcher.inflight < launcher.slots and not stop.requested:
                plan_more(batcher.next_size(launcher.workers))
                if not batcher.pending:
                    break
                key, runs = batcher.next_batch(launcher.workers)
                if key not in handles:
                    handles[key] = launcher.put_program(planner.programs[key])
                lanes = [Lane(seed=r.seed, spawn_key=tuple(r.spawn_key), params=dict(r.lane_params))
                         for r in runs]
                task_id = next(task_ids)
                launcher.submit(task_id, handles[key], lanes)
                tasks[task_id] = (key, runs)

        while (batcher.pending or not planner.exhausted or (launcher is not None and launcher.inflight)) \
                and launcher is not None and not stop.requested:
            refill()
            finished = []
            # planning overlaps the workers' runs: one step, then a look at what finished
            ahead = launcher.background and launcher.inflight and not planner.exhausted \
                and batcher.pending < 2 * req.max_lanes * launcher.slots and not stop.requested
            if ahead:
                plan_more(batcher.pending + 1)
            for task_id, outcome in launcher.wait(0 if ahead else 0.25):
                key, runs = tasks.pop(task_id)
                if isinstance(outcome, BaseException):
                    result, wall = failed_result([f"task lost: {_short(outcome)}"] * len(runs)), 0.0
                elif outcome.error is not None:
                    result, wall = failed_result([outcome.error] * len(runs)), outcome.engine_s / len(runs)
                    report.engine_s += outcome.engine_s
                else:
                    result, wall = outcome.result, outcome.engine_s / len(runs)
                    report.engine_s += outcome.engine_s
                    events = result.metrics.get("events")
                    worker = (outcome.host, outcome.pid)
                    batcher.observe(key, len(runs), outcome.engine_s,
                                    int(np.max(events)) if events is not None and len(events) else 0,
                                    warm_up=worker not in workers_seen)
                    workers_seen.add(worker)
                finished.append((runs, result, wall))
            if finished and auto:
                auto = False
                est = batcher.remaining_seconds()
                if isinstance(launcher, InlineLauncher) and batcher.pending and not stop.requested \
                        and est is not None and est > req.auto_ray_seconds:
                    progress.phase("starting ray")
                    progress.print(f"~{est:.0f} s of work left: moving to an embedded Ray "
                                   f"on {os.cpu_count()} cores")
                    launcher.close()
                    launcher = make_launcher("ray", workers=req.workers,
                                             max_retries=req.max_retries, run_fn=run_fn)
                    launcher.start()
                    stop.install()
                    handles.clear()
                    report.launcher = f"inline probe, then {launcher.describe()}"
                    report.workers = launcher.workers
                    progress.phase("running")
            refill()  # the freed workers get their next batch before the results are written
            for runs, result, wall in finished:
                store_batch(runs, result, wall)
        report.run_wall_s = time.perf_counter() - t_run
        if stop.requested:
            report.status = "interrupted"
    except _FailFast:
        report.status = "failed"
    except KeyboardInterrupt:
        report.status = "interrupted"
    except BaseException:
        report.status = "error"  # recorded as such, then the error goes on to the caller
        raise
    finally:
        stop.restore()
        if launcher is not None:
            if report.status != "done":
                launcher.cancel()
            launcher.close()
        progress.stop()
        report.batch_sizes = list(batcher.sizes) if batcher is not None else []
        report.wall_s = time.perf_counter() - t_start
        try:
            if begun:
                store.finish_sweep(prep.sweep_id, now_iso(), report.status)
        finally:
            if own_store:
                store.close()
    return report


def summary_text(report: SweepReport) -> str:
    """The end-of-sweep summary (a few lines)."""
    ran = report.ok + report.failed
    lines = [
        f"sweep {report.sweep_id} ({report.name}): {report.status}",
        f"  {report.planned} runs planned ({report.points} points x {report.replications} "
        f"replications); {report.skipped} already done, {ran} run now: {report.ok} ok, "
        f"{report.failed} failed",
    ]
    if ran:
        rate = ran / report.run_wall_s if report.run_wall_s > 0 else float("nan")
        ev = report.lane_events / report.run_wall_s if report.run_wall_s > 0 else float("nan")
        lines.append(f"  {report.wall_s:.1f} s wall ({report.plan_s:.1f} s planning), "
                     f"{rate:,.0f} runs/s, {ev:,.0f} lane-events/s, on {report.launcher}; "
                     f"{len(report.batch_sizes)} batches")
    if report.first_error:
        first = report.first_error.strip().splitlines()
        lines.append(f"  first failure: {first[0] if first else ''}")
    lines.append(f"  results: {report.out_dir}")
    return "\n".join(lines)


def load_rows(report: SweepReport, req: SweepRequest) -> list[RunRow]:
    """Every run of the sweep for the answer table: this invocation's from memory,
    and, after a resume, the earlier ones read back from the store."""
    if not report.skipped and report.rows_complete:
        return list(report.rows)
    from irqlab.experiments.readback import stored_rows

    return stored_rows(req.db_url or req.out_dir, report.sweep_id, report.param_paths,
                       TABLE_METRICS, fallback=report.rows)
