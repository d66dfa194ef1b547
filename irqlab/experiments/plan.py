"""Planning: a scenario and the command line's overrides -> runs -> batches.

1. :func:`prepare` builds the sweep (the scenario's ``sweep`` block, with the
   ``--grid`` axes multiplied in), its lazy points (:class:`~.expand.Points`)
   and the sweep's identity. Cheap: no compilation, no point materialized.
2. :class:`Planner` resolves and compiles the points on the driver, a chunk
   at a time as the sweep runs, before anything is shipped. A point that does
   not resolve or compile becomes failed runs carrying the error (the sweep
   goes on); every other run gets its ``run_id``, seed, ``Program.key`` and
   lane parameters. Runs already in the store (asked per chunk) are skipped
   without being compiled. :func:`validate` plans a whole (small) sweep at once.
3. :class:`Batcher` cuts the runs of each ``Program.key`` into batches of
   lanes, sized so one task takes about ``target_s`` seconds (see its
   docstring); the driver feeds it chunks as its queue runs low.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from irqlab import ir
from irqlab.errors import ScenarioError, Span
from irqlab.experiments import identity
from irqlab.experiments.expand import Points, plain


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
    resolved: Any = field(default=None, repr=False, compare=False)  # its point's scenario


@dataclass
class Prepared:
    """A sweep before validation: its points and identity."""

    scenario: ir.Scenario
    text: str
    sweep: ir.Sweep | None
    overrides: dict[str, object]  # canonical path -> value (text from --set)
    cli_overrides: dict[str, str]  # as typed, canonical paths
    cli_axes: list[tuple[str, list[str]]]
    points: Points  # lazy: iterate, or len() (one pass when the sweep has constraints)
    param_paths: tuple[str, ...]
    base: ir.Scenario  # resolved with the overrides, no point applied
    base_seed: int
    replications: int
    sweep_id: str
    plugins: dict[str, str]
    param_units: dict[str, str]  # path -> "s" | "Hz" | "" (how a stored value reads)
    param_kinds: dict[str, str] = field(default_factory=dict)  # path -> resolve's kind
    fixed: dict[str, Any] = field(default_factory=dict)  # --set values, parsed

    @property
    def float_paths(self) -> frozenset[str]:
        """Swept paths stored as floats at every point (see :class:`~.expand.Points`)."""
        return self.points.float_paths

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


def prepare(scenario: ir.Scenario, text: str, overrides: Sequence[tuple[str, str]] = (),
            axes: Sequence[tuple[str, Sequence[str]]] = (),
            spans: Mapping[tuple, tuple[Span | None, Span | None]] | None = None
            ) -> Prepared:
    """Build and expand the sweep of ``scenario`` with ``--set`` overrides and
    ``--grid`` axes (paths as the user wrote them, values as text). ``spans`` gives,
    by ``(option, path)``, where the path and the value were written, for errors."""
    from irqlab import resolve

    swept = resolve.sweep_spans(scenario, strict=True)
    at = spans or {}

    def canonical(option: str, path: str) -> str:
        try:
            return resolve.canonical_path(scenario, path)
        except ScenarioError as e:
            d = e.diagnostics[0]
            where = at.get((option, path), (None, None))[0]
            message = d.message if where is not None else f"{option} {path}: {d.message}"
            raise ScenarioError(message, where, hint=d.hint) from None

    cli_set: dict[str, str] = {}
    value_spans: dict[str, Span] = {}
    for path, value in overrides:
        canon = canonical("--set", path)
        if at.get(("--set", path), (None, None))[1] is not None:
            value_spans[canon] = at[("--set", path)][1]
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
        for i, v in enumerate(values):  # a value no point could take is an error now
            resolve.check_literal(scenario, canon, v, at.get(("--grid", path, i), (None, None))[1])
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
    base = resolve.resolve(scenario, base_overrides, spans=value_spans)
    points = Points(sweep, scenario, base_overrides)
    param_paths = tuple(dict.fromkeys([*cli_set, *points.paths]))

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
    kinds = {p: infos[p].kind for p in param_paths if p in infos}
    fixed = {}
    for p, v in cli_set.items():
        try:
            fixed[p] = resolve.parse_value(v)
        except ScenarioError:
            pass
    return Prepared(scenario, text, sweep, base_overrides, cli_set, cli_axes, points, param_paths,
                    base, base_seed, replications, sid, plugins, units, kinds, fixed)


# --------------------------------------------------------------------------- validate


def _point_params(prep: Prepared, point: Mapping[str, Any], resolved: ir.Scenario) -> dict[str, Any]:
    """The stored values of the sweep's paths at a point: straight from the point
    when it sets them all as plain values, else read from the resolved scenario."""
    from irqlab import resolve

    out = {}
    for p in prep.param_paths:
        v = point.get(p, prep.fixed.get(p))
        if isinstance(v, str) and prep.param_kinds.get(p) == "bool":
            v = resolve.BOOL_WORDS.get(v.lower(), v)
        if v is None or isinstance(v, ir.Expr) or (isinstance(v, str) and prep.param_kinds.get(p) != "choice") \
                or (isinstance(v, ir.Quantity) and v.unit == "cycles"):
            break
        out[p] = plain(v)
    else:
        return out
    infos = resolve.paths(resolved)
    tsc = resolved.machine.tsc.value
    return {p: plain(infos[p].value, tsc) if p in infos else None for p in prep.param_paths}


def _fallback_params(point: Mapping[str, Any], paths: Iterable[str], tsc: float) -> dict[str, Any]:
    out = {}
    for p in paths:
        v = point.get(p)
        try:
            out[p] = None if v is None else plain(v, tsc)
        except ValueError:
            out[p] = str(v)
    return out


def _as_floats(params: dict[str, Any], paths: Iterable[str]) -> None:
    """Numbers of a path whose sweep values include a non-whole one are all floats
    (so a column is not ints at some points and floats at others)."""
    for p in paths:
        v = params.get(p)
        if isinstance(v, int) and not isinstance(v, bool):
            params[p] = float(v)


@dataclass
class PointPlan:
    """One point resolved (not compiled): its runs are made on demand, so a point
    with a billion replications costs nothing until its runs are needed."""

    index: int
    resolved: ir.Scenario | None
    error: str | None
    params: dict[str, Any]
    point_id: str
    seed: int
    program: Any = None  # compiled once, when its first run is needed

    def runs(self, lo: int, hi: int, resolved: bool = True) -> list[PlannedRun]:
        """Its replications ``lo .. hi - 1``; ``resolved``: they hold the point's scenario."""
        out = []
        scenario = self.resolved if resolved else None
        for rep in range(lo, hi):
            s, key = identity.lane_seed(self.seed, rep)
            out.append(PlannedRun(identity.replication_id(self.point_id, s, key), self.index, rep,
                                  s, key, self.params, error=self.error, resolved=scenario))
        return out


def resolve_point(prep: Prepared, index: int, point: Mapping[str, Any]) -> PointPlan:
    """Resolve one point (not compiled); a point that does not resolve carries the error."""
    from irqlab import resolve

    try:
        resolved = resolve.resolve(prep.scenario, {**prep.overrides, **point})
        error = None
    except ScenarioError as e:
        resolved, error = None, e.with_sources({s: prep.text for s in _files(e)}).format()
    if resolved is not None:
        params = _point_params(prep, point, resolved)
        seed = int(resolved.run.seed)
    else:
        params = _fallback_params(point, prep.param_paths, prep.base.machine.tsc.value)
        seed = prep.base_seed
    pid = identity.point_digest(prep.sweep_id, params, index, prep.plugins)
    _as_floats(params, prep.float_paths)  # after the identity, as the values were typed
    return PointPlan(index, resolved, error, params, pid, seed)


def _files(e: ScenarioError) -> set[str]:
    return {d.span.file for d in e.diagnostics if d.span is not None}


@dataclass
class Chunk:
    """The runs of a few consecutive points: ``todo`` to execute (compiled),
    ``invalid`` to record as failed, ``skipped`` already in the store."""

    todo: list[PlannedRun]
    invalid: list[PlannedRun]
    skipped: int
    points: int


class Planner:
    """Plans a sweep's runs lazily, a chunk of points at a time, so memory depends on
    the chunk, not on the sweep's size.

    ``stored(run_ids)`` answers ``{run_id: 'ok' | 'failed'}`` for the runs of
    the chunk already in the store (asked once per chunk); ``ok`` ones are
    skipped, ``failed`` ones too unless ``retry_failed``. Every other point is
    resolved and compiled here; a point that does not resolve or compile
    becomes ``invalid`` runs carrying the error. ``programs`` holds one
    compiled program per ``Program.key`` seen so far.
    """

    def __init__(self, prep: Prepared, stored: Callable[[list[str]], Mapping[str, str]] | None = None,
                 *, retry_failed: bool = False, compile_fn: Callable | None = None,
                 chunk_runs: int = 4096) -> None:
        if compile_fn is None:
            from irqlab import engine

            compile_fn = engine.compile
        self.prep = prep
        self.stored = stored or (lambda ids: {})
        self.retry_failed = retry_failed
        self.compile_fn = compile_fn
        self.chunk_runs = max(1, chunk_runs)
        self.programs: dict[str, Any] = {}
        self.points_done = 0  # points planned so far
        self.runs_done = 0  # runs planned so far (todo, invalid or skipped)
        self._points = iter(enumerate(prep.points))
        self._cur: PointPlan | None = None  # the point being planned, from replication _rep
        self._rep = 0
        self.exhausted = False
        # only the sweep's expectations read a run's scenario (expectations.add_columns):
        # without them the runs waiting for a worker do not keep every point's scenario alive
        self._keep = prep.sweep is not None and bool(prep.sweep.expect)

    def next_chunk(self, max_runs: int | None = None) -> Chunk | None:
        """The next chunk (about ``chunk_runs`` runs, or ``max_runs`` if fewer: whole points,
        or a slice of a point's replications), or None when every run is planned."""
        prep = self.prep
        limit = self.chunk_runs if max_runs is None else max(1, min(max_runs, self.chunk_runs))
        slices: list[tuple[PointPlan, list[PlannedRun]]] = []
        n_runs = 0
        while n_runs < limit and not self.exhausted:
            if self._cur is None or self._rep >= prep.replications:
                try:
                    index, point = next(self._points)
                except StopIteration:
                    self.exhausted = True
                    break
                self._cur, self._rep = resolve_point(prep, index, point), 0
                self.points_done += 1
            k = min(prep.replications - self._rep, limit - n_runs)
            slices.append((self._cur, self._cur.runs(self._rep, self._rep + k, self._keep)))
            self._rep += k
            n_runs += k
        if not slices:
            return None
        done = self.stored([r.run_id for _, runs in slices for r in runs])
        chunk = Chunk([], [], 0, len(slices))
        for pp, runs in slices:
            needed = [r for r in runs if not self._finished(done.get(r.run_id))]
            chunk.skipped += len(runs) - len(needed)
            if not needed:
                continue
            if pp.error is None and pp.program is None:
                try:
                    pp.program = self.compile_fn(pp.resolved)
                except ScenarioError as e:
                    pp.error = e.with_sources({s: prep.text for s in _files(e)}).format()
                except Exception as e:  # noqa: BLE001 - an engine bug fails this point, not the sweep
                    pp.error = f"internal error in engine.compile: {type(e).__name__}: {e}"
            if pp.error is not None:
                for r in needed:
                    r.error = pp.error
                chunk.invalid.extend(needed)
                continue
            program = pp.program
            key = program.key
            if key not in self.programs:
                self.programs[key] = program
            base_params = self.programs[key].params
            lane_params = {k: v for k, v in program.params.items() if base_params.get(k) != v}
            for r in needed:
                r.key = key
                r.lane_params = lane_params
            chunk.todo.extend(needed)
        self.runs_done += n_runs
        return chunk

    def _finished(self, status: str | None) -> bool:
        return status is not None and (status != "failed" or not self.retry_failed)


def validate(prep: Prepared, done: Mapping[str, str] | None = None, *, retry_failed: bool = False,
             compile_fn: Callable | None = None) -> Plan:
    """Every run of ``prep`` planned at once (small sweeps, benchmarks); see :class:`Planner`.

    ``done`` maps run_id -> status of the runs already stored.
    """
    done = done or {}
    planner = Planner(prep, lambda ids: {i: done[i] for i in ids if i in done},
                      retry_failed=retry_failed, compile_fn=compile_fn)
    todo: list[PlannedRun] = []
    invalid: list[PlannedRun] = []
    skipped = 0
    while (chunk := planner.next_chunk()) is not None:
        todo.extend(chunk.todo)
        invalid.extend(chunk.invalid)
        skipped += chunk.skipped
    return Plan(prep, todo, invalid, skipped, planner.programs)


# --------------------------------------------------------------------------- batching


@dataclass
class Measure:
    """One measured batch: ``lanes``, engine seconds, the most events of any of its
    lanes, and whether it was its worker's first batch (imports, warm-up)."""

    lanes: int
    seconds: float
    max_events: int = 0
    warm_up: bool = False

    @property
    def per_step(self) -> float:
        """Seconds per lockstep step (a batch steps as often as its longest lane has events)."""
        return self.seconds / self.max_events if self.max_events > 0 else self.seconds


class Batcher:
    """Cuts the runs of each ``Program.key`` into batches sized by measurement.

    The lockstep executor advances all lanes of a batch together, one event
    per lane per step, until its longest lane ends: a batch's engine time is
    ``E x tau(n)``, ``E`` the most events of any of its lanes and ``tau`` the
    time of one step of ``n`` lanes, close to ``c0 + c1 * n``: a large fixed
    cost per step (NumPy calls) and a small cost per lane. Dividing a batch's
    time by its ``E`` removes the noise of which lanes it happens to hold.

    Sizing, per key (a key without measurements borrows the latest one's):

    * the first batch is a probe of ``probe_lanes`` lanes; batches cut before
      any measurement has come back (other workers starting) get 8x as many,
      so that two sizes are soon measured (the time per step is concave below
      ~100 lanes, as more kinds of events are active in each step, so the two
      sizes must be far apart for the line to hold at thousands of lanes);
    * with two recent batches of clearly different sizes (``n0 <= n1 / 2``):
      ``c0`` and ``c1`` from the line through their ``tau``, and the next
      batch takes ``n`` lanes with ``E x (c0 + c1 n) = max(target_s, 2 E c0)``
      (``E`` the most events seen in the key's lanes): about ``target_s``, or,
      when a step's fixed cost alone makes that impossible, enough lanes that
      the fixed cost is at most half of the batch;
    * with one size measured (or a line that does not rise with the lanes):
      the largest recent batch scaled by ``target_s / t``, at least 8x while
      faster than the target;
    * each step at most 8x and at least half of the largest recent batch;
      at most ``max_lanes`` (memory); with several workers, when the runs left
      fit in two rounds, they are cut into a multiple of ``workers`` equal
      pieces so that every worker ends at once.

    A worker's first batch includes its imports and warm-up; it is used only
    until a later measurement exists. A Ray task costs about a millisecond, so
    with batches of seconds scheduling is noise. Batches take keys in order of
    first appearance, so the points of a sweep finish roughly in order.
    """

    WINDOW = 8

    def __init__(self, runs: Iterable[PlannedRun], *, target_s: float = 2.0, max_lanes: int = 4096,
                 probe_lanes: int = 64) -> None:
        self.queues: OrderedDict[str, deque[PlannedRun]] = OrderedDict()
        self.pending = 0
        self.unfed = 0  # runs still to come through feed (an estimate, for remaining_seconds)
        self.more = False  # whether feed may still add runs (no tail cutting until it may not)
        self.feed(runs)
        self.target_s = target_s
        self.max_lanes = max_lanes
        self.probe_lanes = probe_lanes
        self.measures: dict[str, deque[Measure]] = {}
        self.last_key: str | None = None
        self.tail: int | None = None
        self.sizes: list[int] = []

    def feed(self, runs: Iterable[PlannedRun]) -> None:
        """Queue more runs (each by its ``key``)."""
        for r in runs:
            self.queues.setdefault(r.key, deque()).append(r)
            self.pending += 1

    @property
    def measured(self) -> bool:
        """Whether any batch has been measured yet."""
        return self.last_key is not None

    def _window(self, key: str) -> list[Measure]:
        ms = self.measures.get(key) or (self.measures.get(self.last_key) if self.last_key else None)
        if not ms:
            return []
        warm = [m for m in ms if not m.warm_up]
        return warm or list(ms)

    def ideal(self, key: str) -> int | None:
        """The size the measurements of ``key`` call for (before the caps), None if none."""
        ms = self._window(key)
        if not ms:
            return None
        big = max(ms, key=lambda m: (m.lanes, m.seconds))
        events = max(m.max_events for m in ms)
        small = [m for m in ms if 2 * m.lanes <= big.lanes and m.max_events > 0]
        if small and big.max_events > 0:
            m0 = max(small, key=lambda m: m.lanes)
            c1 = (big.per_step - m0.per_step) / (big.lanes - m0.lanes)
            if c1 > 0:
                c0 = max(0.0, big.per_step - c1 * big.lanes)
                goal = max(self.target_s, 2 * events * c0)
                return round((goal / events - c0) / c1)
        t1 = big.per_step * events if big.max_events > 0 else big.seconds
        factor = self.target_s / max(t1, 1e-9)
        if t1 < self.target_s:
            factor = max(factor, 8.0)  # a second size, far enough for a line through both
        return int(big.lanes * factor)

    def size_for(self, key: str, workers: int) -> int:
        want = self.ideal(key)
        if want is None:
            size = self.probe_lanes if not self.sizes else 8 * self.probe_lanes
        else:
            largest = max(m.lanes for m in self._window(key))
            size = min(8 * largest, max(largest // 2, want))
        size = max(1, min(size, self.max_lanes))
        if workers > 1:
            if self.tail is None and not self.more and self.measured \
                    and 0 < self.pending <= 2 * workers * size:
                pieces = math.ceil(math.ceil(self.pending / size) / workers) * workers
                self.tail = math.ceil(self.pending / pieces)  # the last rounds, once
            if self.tail is not None:
                size = min(size, self.tail)
        return max(1, size)

    def next_size(self, workers: int = 1) -> int:
        """The lanes the next batch would take with enough runs queued (what to plan before
        cutting it)."""
        key = next((k for k, q in self.queues.items() if q), self.last_key)
        return self.size_for(key, workers)

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
            self.sizes.append(n)
            return key, batch
        return None

    def observe(self, key: str, lanes: int, engine_s: float, max_events: int = 0,
                warm_up: bool = False) -> None:
        """Record that ``lanes`` lanes of ``key`` took ``engine_s`` seconds of engine
        time, the longest lane having ``max_events`` events."""
        if lanes <= 0 or engine_s <= 0:
            return
        self.measures.setdefault(key, deque(maxlen=self.WINDOW)).append(
            Measure(lanes, engine_s, max_events, warm_up))
        self.last_key = key

    def remaining_seconds(self) -> float | None:
        """Engine seconds the pending runs would take at the latest cost per lane."""
        total = 0.0
        per_lane = None
        for k, q in self.queues.items():
            ms = self._window(k)
            if not ms:
                return None
            big = max(ms, key=lambda m: (m.lanes, m.seconds))
            per_lane = big.seconds / big.lanes
            total += len(q) * per_lane
        if self.unfed:
            ms = self._window(self.last_key) if self.last_key else []
            if per_lane is None and ms:
                big = max(ms, key=lambda m: (m.lanes, m.seconds))
                per_lane = big.seconds / big.lanes
            if per_lane is None:
                return None
            total += self.unfed * per_lane
        return total
