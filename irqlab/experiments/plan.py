"""Planning: a scenario and the command line's overrides -> runs -> batches.

1. :func:`prepare` builds the sweep (the scenario's ``sweep`` block, with the
   ``--grid`` axes multiplied in), expands it into points and computes the
   sweep's identity. Cheap: no compilation.
2. :func:`validate` resolves and compiles every point on the driver, before
   anything is shipped. A point that does not resolve or compile becomes
   failed runs carrying the error (the sweep goes on); every other run gets
   its ``run_id``, seed, ``Program.key`` and lane parameters. Runs already in
   the store are skipped without being compiled.
3. :class:`Batcher` cuts the runs of each ``Program.key`` into batches of
   lanes, sized so one task takes about ``target_s`` seconds (see its
   docstring).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from irqlab import ir
from irqlab.errors import ScenarioError
from irqlab.experiments import identity
from irqlab.experiments.expand import expand, plain, swept_spans


@dataclass
class PlannedRun:
    """One run: a (point, replication), its identity and, once validated, its lane."""

    run_id: str
    point: int
    replication: int
    seed: int
    spawn_key: tuple[int, ...]
    params: dict[str, Any]
    key: str | None = None
    lane_params: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Prepared:
    """A sweep before validation: its points and identity."""

    scenario: ir.Scenario
    text: str
    sweep: ir.Sweep | None
    overrides: dict[str, object]  # canonical path -> value (text from --set)
    cli_overrides: dict[str, str]  # as typed, canonical paths
    cli_axes: list[tuple[str, list[str]]]
    points: list[dict[str, Any]]
    param_paths: tuple[str, ...]
    base: ir.Scenario  # resolved with the overrides, no point applied
    base_seed: int
    replications: int
    sweep_id: str
    plugins: dict[str, str]
    param_units: dict[str, str]  # path -> "s" | "Hz" | "" (how a stored value reads)

    @property
    def planned_runs(self) -> int:
        return len(self.points) * self.replications


@dataclass
class Plan:
    """Validated runs: ``todo`` to execute, ``invalid`` to record as failed,
    ``skipped`` already in the store; one compiled program per ``Program.key``."""

    prepared: Prepared
    todo: list[PlannedRun]
    invalid: list[PlannedRun]
    skipped: int
    programs: dict[str, Any]


# --------------------------------------------------------------------------- prepare


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """``path=value`` -> ``(path, value)`` (a ScenarioError if there is no ``=``)."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip() or not value.strip():
        raise ScenarioError(f"{option} expects PATH=VALUE, got '{text}'")
    return path.strip(), value.strip()


def prepare(scenario: ir.Scenario, text: str, overrides: Sequence[tuple[str, str]] = (),
            axes: Sequence[tuple[str, Sequence[str]]] = ()) -> Prepared:
    """Build and expand the sweep of ``scenario`` with ``--set`` overrides and
    ``--grid`` axes (paths as the user wrote them, values as text)."""
    from irqlab import resolve

    swept = swept_spans(scenario.sweep, scenario)

    def canonical(option: str, path: str) -> str:
        try:
            return resolve.canonical_path(scenario, path)
        except ScenarioError as e:
            d = e.diagnostics[0]
            raise ScenarioError(f"{option} {path}: {d.message}", hint=d.hint) from None

    cli_set: dict[str, str] = {}
    for path, value in overrides:
        canon = canonical("--set", path)
        if canon in swept:
            raise ScenarioError(f"--set {path}: '{canon}' is swept by the scenario",
                                swept[canon], hint="remove it from the sweep block, or sweep "
                                "other values with --grid after removing it")
        cli_set[canon] = value
    cli_axes: list[tuple[str, list[str]]] = []
    for path, values in axes:
        canon = canonical("--grid", path)
        if canon in swept:
            raise ScenarioError(f"--grid {path}: '{canon}' is already swept by the scenario",
                                swept[canon], hint="edit the scenario's sweep block instead")
        if canon in cli_set:
            raise ScenarioError(f"--grid {path}: '{canon}' is also fixed by --set")
        if any(canon == p for p, _ in cli_axes):
            raise ScenarioError(f"--grid {path}: '{canon}' is given twice")
        if not values:
            raise ScenarioError(f"--grid {path}: no values")
        cli_axes.append((canon, list(values)))

    sweep = scenario.sweep
    if cli_axes:
        extra = tuple(ir.Axis(p, tuple(v)) for p, v in cli_axes)
        if sweep is None:
            sweep = ir.Sweep(root=ir.Grid(items=extra))
        elif sweep.root is None:
            sweep = dataclasses.replace(sweep, root=ir.Grid(items=extra))
        else:
            sweep = dataclasses.replace(sweep, root=ir.Grid(items=(sweep.root, *extra)))

    base_overrides: dict[str, object] = dict(cli_set)
    base = resolve.resolve(scenario, base_overrides)
    points = expand(sweep, scenario, base_overrides)

    order: dict[str, None] = dict.fromkeys(cli_set)
    for p in points:
        order.update(dict.fromkeys(p))
    param_paths = tuple(order)

    replications = base.run.replications
    if sweep is not None and sweep.replications is not None and "run.replications" not in cli_set:
        replications = sweep.replications
    if replications < 1:
        raise ScenarioError("replications must be at least 1",
                            sweep.span if sweep is not None else None)
    base_seed = int(base.run.seed)
    sid = identity.sweep_id(text, cli_set, cli_axes, base_seed)
    plugins = identity.plugin_versions(identity.plugin_uses(base))
    infos = resolve.paths(base)
    units = {p: {"time": "s", "frequency": "Hz"}.get(infos[p].kind, "")
             for p in param_paths if p in infos}
    return Prepared(scenario, text, sweep, base_overrides, cli_set, cli_axes, points, param_paths,
                    base, base_seed, replications, sid, plugins, units)


# --------------------------------------------------------------------------- validate


def _point_params(resolved: ir.Scenario, paths: Iterable[str]) -> dict[str, Any]:
    from irqlab import resolve

    infos = resolve.paths(resolved)
    tsc = resolved.machine.tsc.value
    return {p: plain(infos[p].value, tsc) if p in infos else None for p in paths}


def _fallback_params(point: Mapping[str, Any], paths: Iterable[str], tsc: float) -> dict[str, Any]:
    out = {}
    for p in paths:
        v = point.get(p)
        try:
            out[p] = None if v is None else plain(v, tsc)
        except ValueError:
            out[p] = str(v)
    return out


def _unify_numbers(runs: Sequence[PlannedRun], paths: Sequence[str]) -> None:
    """A column of numbers is all ints only if every value is whole; else all floats."""
    for p in paths:
        vals = [r.params.get(p) for r in runs]
        if any(isinstance(v, float) for v in vals):
            for r in runs:
                v = r.params.get(p)
                if isinstance(v, int) and not isinstance(v, bool):
                    r.params[p] = float(v)


def plan_point(prep: Prepared, index: int, point: Mapping[str, Any]
               ) -> tuple[ir.Scenario | None, str | None, list[PlannedRun]]:
    """Resolve one point: ``(resolved or None, error or None, its runs)`` (not compiled)."""
    from irqlab import resolve

    try:
        resolved = resolve.resolve(prep.scenario, {**prep.overrides, **point})
        error = None
    except ScenarioError as e:
        resolved, error = None, e.with_sources({s: prep.text for s in _files(e)}).format()
    if resolved is not None:
        params = _point_params(resolved, prep.param_paths)
        seed = int(resolved.run.seed)
    else:
        params = _fallback_params(point, prep.param_paths, prep.base.machine.tsc.value)
        seed = prep.base_seed
    runs = []
    for rep in range(prep.replications):
        s, key = identity.lane_seed(seed, rep)
        rid = identity.run_id(prep.sweep_id, params, index, s, key, prep.plugins)
        runs.append(PlannedRun(rid, index, rep, s, key, dict(params), error=error))
    return resolved, error, runs


def _files(e: ScenarioError) -> set[str]:
    return {d.span.file for d in e.diagnostics if d.span is not None}


def validate(prep: Prepared, done: Mapping[str, str] | None = None, *, retry_failed: bool = False,
             compile_fn: Callable | None = None,
             on_point: Callable[[int], None] | None = None) -> Plan:
    """Resolve and compile every point not already done; see the module docstring.

    ``done`` maps run_id -> status of the runs already stored; ``ok`` ones are
    skipped, ``failed`` ones too unless ``retry_failed``.
    """
    if compile_fn is None:
        from irqlab import engine

        compile_fn = engine.compile
    done = done or {}

    def finished(run: PlannedRun) -> bool:
        status = done.get(run.run_id)
        return status is not None and (status != "failed" or not retry_failed)

    todo: list[PlannedRun] = []
    invalid: list[PlannedRun] = []
    programs: dict[str, Any] = {}
    skipped = 0
    all_runs: list[PlannedRun] = []
    for index, point in enumerate(prep.points):
        resolved, error, runs = plan_point(prep, index, point)
        all_runs.extend(runs)
        needed = [r for r in runs if not finished(r)]
        skipped += len(runs) - len(needed)
        if on_point is not None:
            on_point(index)
        if not needed:
            continue
        if error is None:
            try:
                program = compile_fn(resolved)
            except ScenarioError as e:
                error = e.with_sources({s: prep.text for s in _files(e)}).format()
            except Exception as e:  # noqa: BLE001 - an engine bug fails this point, not the sweep
                error = f"internal error in engine.compile: {type(e).__name__}: {e}"
        if error is not None:
            for r in needed:
                r.error = error
            invalid.extend(needed)
            continue
        key = program.key
        if key not in programs:
            programs[key] = program
        base_params = programs[key].params
        lane_params = {k: v for k, v in program.params.items() if base_params.get(k) != v}
        for r in needed:
            r.key = key
            r.lane_params = lane_params
        todo.extend(needed)
    _unify_numbers(all_runs, prep.param_paths)
    return Plan(prep, todo, invalid, skipped, programs)


# --------------------------------------------------------------------------- batching


class Batcher:
    """Cuts the runs of each ``Program.key`` into batches sized by measurement.

    The engine's time for a batch of ``n`` lanes is modelled per key as
    ``t(n) = a + b * n``: a fixed cost per call (the lockstep executor steps
    until its longest lane ends, so a small batch costs nearly as much as a
    larger one) plus a cost per lane. ``a`` and ``b`` are fitted by least
    squares to the key's last 4 batches (a batch's time also depends on which
    lanes it holds, so older samples are dropped; with a single measurement:
    ``a = 0``, ``b = t / n``; a key not measured yet borrows the latest
    key's fit). When the only size measured already took longer than
    ``target_s``, the next batch has half as many lanes, which tells the two
    costs apart.

    Sizing: the first batch is a probe of ``probe_lanes`` lanes. Then a batch
    gets the ``n`` with ``t(n) = target_s`` (``max_lanes`` when even the
    fixed cost exceeds ``target_s``), at most 8 times the key's largest batch
    so far (a fit from small batches extrapolates far), at most ``max_lanes``
    (memory), and, with more than one worker, at most ``pending / (2 x
    workers)`` so the end of the sweep splits across workers instead of
    leaving one worker with a last long batch, but never below ``a / b``
    lanes, where the fixed cost would dominate and splitting would cost more
    engine time than it saves wall time. A Ray task costs about a
    millisecond, so at ``target_s`` = 2 s scheduling is noise.

    Batches take keys in order of first appearance, so the points of a
    sweep finish roughly in order.
    """

    def __init__(self, runs: Iterable[PlannedRun], *, target_s: float = 2.0, max_lanes: int = 4096,
                 probe_lanes: int = 8) -> None:
        self.queues: OrderedDict[str, deque[PlannedRun]] = OrderedDict()
        for r in runs:
            self.queues.setdefault(r.key, deque()).append(r)
        self.pending = sum(len(q) for q in self.queues.values())
        self.target_s = target_s
        self.max_lanes = max_lanes
        self.probe_lanes = probe_lanes
        self.samples: dict[str, deque[tuple[int, float]]] = {}
        self.last_key: str | None = None
        self.largest: dict[str, int] = {}
        self.sizes: list[int] = []

    @property
    def measured(self) -> bool:
        """Whether any batch has been measured yet."""
        return self.last_key is not None

    def fit(self, key: str) -> tuple[float, float] | None:
        """``(a, b)`` of ``t(n) = a + b n`` for ``key`` (or the latest key), None if unmeasured."""
        obs = self.samples.get(key) or (self.samples.get(self.last_key) if self.last_key else None)
        if not obs:
            return None
        ns = [n for n, _ in obs]
        ts = [t for _, t in obs]
        if len(set(ns)) >= 2:
            mn, mt = sum(ns) / len(ns), sum(ts) / len(ts)
            var = sum((n - mn) ** 2 for n in ns)
            b = sum((n - mn) * (t - mt) for n, t in zip(ns, ts)) / var
            a = mt - b * mn
            if b > 0 and a >= 0:
                return a, b
        n, t = obs[-1]
        return 0.0, t / n

    def size_for(self, key: str, workers: int) -> int:
        ab = self.fit(key)
        obs = self.samples.get(key) or (self.samples.get(self.last_key) if self.last_key else None)
        if ab is None:
            size = self.probe_lanes
        elif len({n for n, _ in obs}) < 2 and obs[-1][1] >= self.target_s:
            # one size seen, already too slow: half as many lanes tells a fixed cost
            # (same time) from costly lanes (half the time)
            size = max(1, obs[-1][0] // 2)
        else:
            a, b = ab
            size = self.max_lanes if a >= self.target_s else int((self.target_s - a) / max(b, 1e-12))
            grown = self.largest.get(key, self.largest.get(self.last_key or "", 0))
            if grown:
                size = min(size, 8 * grown)
        size = min(size, self.max_lanes)
        if workers > 1:
            # split the tail across workers, but not below the size where the fixed
            # cost stops dominating: smaller pieces would cost more than they save
            floor = int(min(ab[0] / ab[1], self.max_lanes)) if ab is not None and ab[1] > 0 else 1
            size = min(size, max(math.ceil(self.pending / (2 * workers)), floor))
        return max(1, size)

    def next_batch(self, workers: int = 1) -> tuple[str, list[PlannedRun]] | None:
        """The next batch ``(key, runs)``, or None when nothing is pending."""
        while self.queues:
            key, q = next(iter(self.queues.items()))
            if not q:
                del self.queues[key]
                continue
            n = min(len(q), self.size_for(key, workers))
            batch = [q.popleft() for _ in range(n)]
            if not q:
                del self.queues[key]
            self.pending -= n
            self.largest[key] = max(n, self.largest.get(key, 0))
            self.sizes.append(n)
            return key, batch
        return None

    def observe(self, key: str, lanes: int, engine_s: float) -> None:
        """Record that ``lanes`` lanes of ``key`` took ``engine_s`` seconds of engine time."""
        if lanes <= 0 or engine_s <= 0:
            return
        self.samples.setdefault(key, deque(maxlen=4)).append((lanes, engine_s))
        self.last_key = key

    def remaining_seconds(self) -> float | None:
        """Engine seconds the pending runs would take at the current fits."""
        total = 0.0
        for k, q in self.queues.items():
            ab = self.fit(k)
            if ab is None:
                return None
            a, b = ab
            n = max(1, min(self.max_lanes, self.size_for(k, 1)))
            total += len(q) * (b + a / n)
        return total
