"""Sweep expansion: a :class:`~irqlab.ir.Sweep` -> the list of its points.

A *point* is a ``dict`` from canonical dotted path to value (a
:class:`~irqlab.ir.Quantity`, ``str`` or ``bool``), in the order the paths
first appear. Expansion is pure: the same sweep and scenario give the same
points in the same order.

* ``Axis``: one point per value, ``[{path: v1}, {path: v2}, ...]``.
* ``Grid``: the Cartesian product of its items, the first item outermost
  (like :func:`itertools.product`).
* ``Zip``: the i-th point merges the i-th point of every item; the items must
  have equal lengths.
* ``Concat``: the points of each part, one part after the other (parts may
  set different paths).
* ``Sample``: ``n`` points drawn by a :func:`numpy.random.default_rng` seeded
  with the sample's ``seed``: ``random`` draws each dimension uniformly
  (in log space for ``log`` dims, integers inclusive of both bounds for
  ``int`` dims, a uniform choice for choice dims); ``lhs`` is a Latin
  hypercube: each dimension's ``n`` strata ``[k/n, (k+1)/n)`` are each hit
  once, in an independent random order per dimension.
* ``derived``: after the axes, each ``path = expr`` is evaluated per point,
  in order, in the point's environment (below) and added to the point.
* ``constraints``: a point is kept when every constraint is true in its
  environment (after the derived values).

A point's *environment* holds every value of the scenario resolved at that
point (with the command line's overrides): every canonical path, every named
parameter by its bare name, and any shorthand :func:`irqlab.resolve.canonical_path`
accepts. Named parameters that depend on a swept one are therefore seen with
their values at the point.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from typing import Any, Iterator

from irqlab import ir
from irqlab.errors import ScenarioError, Span

Point = dict  # dict[str, ir.Value]


class Points:
    """The points of a sweep, planned lazily: iterating yields them in order, one at
    a time, so memory does not grow with the sweep's size.

    Building it checks the sweep's structure (paths, a path swept twice, zip
    lengths, sample ranges) and evaluates the axes' values, all in time and
    memory proportional to the sweep's *text*, not its point count: a grid is
    indexed (mixed radix), never multiplied out; a ``random`` sample draws its
    uniforms in chunks at a position of the generator's stream
    (``PCG64.advance``), giving the values a whole draw would. An ``lhs``
    sample holds its ``n`` x dims uniforms (**Choice**: a Latin hypercube's
    strata are one permutation of ``n``).

    ``len()`` is the number of points after the constraints: immediate without
    constraints (``bound``), one pass over the points with them (memoized).
    ``paths`` are the swept paths in order of first appearance, ``float_paths``
    those whose sweep values include a non-whole number (stored as floats at
    every point).
    """

    def __init__(self, sweep: ir.Sweep | None, scenario: ir.Scenario,
                 overrides: Mapping[str, object] | None = None) -> None:
        self.sweep = sweep
        self._ex = _Expander(scenario, dict(overrides or {}))
        self._root: _Seq = _List([{}], ()) if sweep is None or sweep.root is None \
            else self._ex.seq(sweep.root)
        paths = list(self._root.paths)
        if sweep is not None:
            for d in sweep.derived:
                path = self._ex.canon(d.path, d.span)
                if path in paths:
                    raise ScenarioError(f"'{d.path}' is both swept and derived", d.span)
                paths.append(path)
        self.paths: tuple[str, ...] = tuple(paths)
        self.float_paths: frozenset[str] = frozenset(self._root.float_paths)
        self.filtered = sweep is not None and bool(sweep.constraints)
        self._finish = sweep is not None and bool(sweep.derived or sweep.constraints)
        self._count: int | None = None if self.filtered else len(self._root)

    @property
    def bound(self) -> int:
        """The number of points before the constraints (an upper bound of ``len``)."""
        return len(self._root)

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self)
        return self._count

    def __iter__(self) -> Iterator[Point]:
        root, ex, sweep = self._root, self._ex, self.sweep
        for i in range(len(root)):
            p = root[i]
            if self._finish:
                p = ex.finish(sweep, p)
                if p is None:
                    continue
            yield p


def expand(sweep: ir.Sweep | None, scenario: ir.Scenario,
           overrides: Mapping[str, object] | None = None) -> list[Point]:
    """Every point of ``sweep`` over ``scenario`` (``[{}]``: no sweep, one point), as a
    list (small sweeps, tests); :class:`Points` plans them lazily.

    ``overrides`` (canonical path -> value) apply under every point. A
    ScenarioError (with the span of the offending node) for an unknown path, a
    path swept twice, zipped axes of different lengths, a bad sample range, or
    a derived value or constraint that cannot be evaluated.
    """
    return list(Points(sweep, scenario, overrides))


def count_points(sweep: ir.Sweep | None, scenario: ir.Scenario) -> int:
    """How many points ``sweep`` has after its constraints (without replications)."""
    return len(Points(sweep, scenario))


# --------------------------------------------------------------------------- environment


class Env(Mapping):
    """A point's values (:func:`irqlab.resolve.values`: canonical paths and bare
    parameter names), also reachable by any shorthand ``canonical_path`` accepts."""

    def __init__(self, scenario: ir.Scenario, values: Mapping[str, Any]) -> None:
        self._scenario = scenario
        self._values = dict(values)

    @classmethod
    def at(cls, scenario: ir.Scenario, overrides: Mapping[str, Any]) -> "Env":
        from irqlab import resolve

        return cls(scenario, resolve.values(scenario, overrides))

    def set(self, path: str, value: Any) -> None:
        self._values[path] = value
        if path.startswith("param."):
            self._values[path[len("param."):]] = value

    def _lookup(self, name: str) -> str | None:
        if name in self._values:
            return name
        from irqlab import resolve

        try:
            path = resolve.canonical_path(self._scenario, name)
        except ScenarioError:
            return None
        return path if path in self._values else None

    def __getitem__(self, name: str) -> Any:
        key = self._lookup(name)
        if key is None:
            raise KeyError(name)
        return self._values[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


# --------------------------------------------------------------------------- expansion


class _Expander:
    def __init__(self, scenario: ir.Scenario, overrides: dict[str, object]) -> None:
        self.scenario = scenario
        self.overrides = overrides
        self._base_env: Env | None = None

    def canon(self, path: str, span: Span | None) -> str:
        from irqlab import resolve

        return resolve.canonical_path(self.scenario, path, span)

    @property
    def base_env(self) -> Env:
        if self._base_env is None:
            self._base_env = Env.at(self.scenario, self.overrides)
        return self._base_env

    def value(self, v: Any) -> Any:
        if isinstance(v, ir.Expr):
            from irqlab import resolve

            return resolve.evaluate(v, self.base_env)
        return v

    # -- nodes

    def seq(self, node: Any) -> "_Seq":
        """The lazy sequence of a sweep node's points (structure checked now)."""
        if isinstance(node, ir.Axis):
            return self.axis(node)
        if isinstance(node, (ir.Grid, ir.Zip)):
            parts = [self.seq(item) for item in node.items]
            _disjoint(parts, node.span)
            if isinstance(node, ir.Grid):
                return _Product(parts, node.span, self)
            lengths = {len(p) for p in parts}
            if len(lengths) > 1:
                sizes = ", ".join(str(len(p)) for p in parts)
                raise ScenarioError(f"zipped items have different lengths ({sizes})", node.span,
                                    hint="every item of a zip needs the same number of values")
            return _Zipped(parts, node.span, self)
        if isinstance(node, ir.Concat):
            return _Chain([self.seq(item) for item in node.items])
        if isinstance(node, ir.Sample):
            return self.sample(node)
        raise ScenarioError(f"cannot expand a {type(node).__name__} in a sweep",
                            getattr(node, "span", None))

    def node(self, node: Any) -> list[Point]:
        """Every point of a sweep node, as a list."""
        sq = self.seq(node)
        return [sq[i] for i in range(len(sq))]

    def axis(self, axis: ir.Axis) -> "_Seq":
        path = self.canon(axis.path, axis.span)
        if not axis.values:
            raise ScenarioError(f"axis '{axis.path}' has no values", axis.span)
        values = [self.value(v) for v in axis.values]
        return _List([{path: v} for v in values], (path,), _non_whole(path, values))

    def merge(self, parts: tuple[Point, ...], span: Span) -> Point:
        out: Point = {}
        for p in parts:
            for k, v in p.items():
                if k in out:
                    raise ScenarioError(f"'{k}' is swept twice in one point", span,
                                        hint="use concat for alternatives, or one axis per path")
                out[k] = v
        return out

    # -- sampling

    def sample(self, node: ir.Sample) -> "_Seq":
        if node.n < 1:
            raise ScenarioError("a sample needs at least one point", node.span)
        if node.method not in ("random", "lhs"):
            raise ScenarioError(f"unknown sampling method '{node.method}'", node.span,
                                hint="use 'random' or 'lhs'")
        if not node.dims:
            raise ScenarioError("a sample needs at least one dimension", node.span)
        seen: set[str] = set()
        paths = []
        for dim in node.dims:
            path = self.canon(dim.path, dim.span)
            if path in seen:
                raise ScenarioError(f"'{dim.path}' is sampled twice", dim.span)
            seen.add(path)
            paths.append(path)
        sq = _Sampled(node, tuple(paths), self)
        sq.chunk(0)  # a bad range is an error now
        return sq

    def dim_values(self, dim: ir.Dist, u: Any) -> list[Any]:
        """Map uniforms ``u`` (float64[n] in [0, 1)) onto the dimension's values."""
        import numpy as np

        if dim.choices:
            k = len(dim.choices)
            idx = np.minimum((u * k).astype(np.int64), k - 1)
            choices = [self.value(c) for c in dim.choices]
            return [choices[i] for i in idx]
        if dim.low is None or dim.high is None:
            raise ScenarioError(f"'{dim.path}' needs a range [low, high] or choices", dim.span)
        low, high = self.value(dim.low), self.value(dim.high)
        if not isinstance(low, ir.Quantity) or not isinstance(high, ir.Quantity):
            raise ScenarioError(f"the range of '{dim.path}' must be numbers", dim.span)
        low, high = self._same_unit(low, high, dim)
        lo, hi = low.value, high.value
        if hi < lo:
            raise ScenarioError(f"empty range: {low} > {high}", dim.span)
        if dim.log and lo <= 0:
            raise ScenarioError("a log-scale range must be positive", dim.span)
        if dim.integer:
            if not (float(lo).is_integer() and float(hi).is_integer()):
                raise ScenarioError("an int range needs whole-number bounds", dim.span)
            if dim.log:
                x = np.exp(np.log(lo) + u * (np.log(hi + 1) - np.log(lo)))
            else:
                x = lo + u * (hi - lo + 1)
            vals = np.clip(np.floor(x), lo, hi)
        elif dim.log:
            vals = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        else:
            vals = lo + u * (hi - lo)
        return [ir.Quantity(float(v), low.unit) for v in vals]

    def _same_unit(self, low: ir.Quantity, high: ir.Quantity, dim: ir.Dist) -> tuple[ir.Quantity, ir.Quantity]:
        """Both bounds in one unit; times in cycles become seconds, so a sampled
        value is stored and rerun exactly as it ran."""
        if low.unit == high.unit and low.unit != "cycles":
            return low, high
        if low.dimension != high.dimension:
            raise ScenarioError(f"the range of '{dim.path}' mixes a {low.dimension} and a "
                                f"{high.dimension}", dim.span)
        tsc = self.base_env["machine.tsc"]
        hz = tsc.value if isinstance(tsc, ir.Quantity) else float(tsc)

        def secs(q: ir.Quantity) -> ir.Quantity:
            return q if q.unit == "s" else ir.Quantity(q.value / hz, "s")

        return secs(low), secs(high)

    # -- derived values and constraints

    def finish(self, sweep: ir.Sweep, point: Point) -> Point | None:
        """Add the derived values to ``point``; None if a constraint rejects it.

        A point the scenario cannot be resolved at is kept as it is: planning
        resolves it again and records its runs as failed with that error.
        """
        from irqlab import resolve

        point = dict(point)
        if sweep.derived:
            try:
                env = Env.at(self.scenario, {**self.overrides, **point})
            except ScenarioError:
                return point
            for d in sweep.derived:
                path = self.canon(d.path, d.span)
                if path in point:
                    raise ScenarioError(f"'{d.path}' is both swept and derived", d.span)
                v = resolve.evaluate(d.expr, env)
                point[path] = v
                env.set(path, v)
        if sweep.constraints:
            try:
                env = Env.at(self.scenario, {**self.overrides, **point})
            except ScenarioError:
                return point
            for c in sweep.constraints:
                ok = resolve.evaluate(c, env)
                if not isinstance(ok, bool):
                    raise ScenarioError("a constraint must be true or false", c.span,
                                        hint="compare values, e.g. 'delay * threshold < 1s'")
                if not ok:
                    return None
        return point


# --------------------------------------------------------------------------- lazy sequences


class _Seq:
    """Points by index: ``len()``, ``[i]`` (a new dict), ``paths`` set by its points,
    ``float_paths`` among them whose values include a non-whole number."""

    paths: tuple[str, ...] = ()
    float_paths: tuple[str, ...] = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> Point:
        raise NotImplementedError


class _List(_Seq):
    def __init__(self, points: list[Point], paths: tuple[str, ...],
                 float_paths: tuple[str, ...] = ()) -> None:
        self.points, self.paths, self.float_paths = points, paths, float_paths

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> Point:
        return dict(self.points[i])


def _non_whole(path: str, values: list[Any]) -> tuple[str, ...]:
    for v in values:
        if isinstance(v, ir.Quantity) and v.unit == "" and not float(v.value).is_integer():
            return (path,)
    return ()


def _disjoint(parts: list[_Seq], span: Span) -> None:
    """Items combined into one point must set different paths (every path an item
    names is set by at least one of its points, so a shared one always collides)."""
    seen: set[str] = set()
    for p in parts:
        for k in dict.fromkeys(p.paths):
            if k in seen:
                raise ScenarioError(f"'{k}' is swept twice in one point", span,
                                    hint="use concat for alternatives, or one axis per path")
            seen.add(k)


class _Product(_Seq):
    """The Cartesian product, the first item outermost (like itertools.product)."""

    def __init__(self, parts: list[_Seq], span: Span, ex: "_Expander") -> None:
        self.parts, self.span, self.ex = parts, span, ex
        self.paths = tuple(k for p in parts for k in p.paths)
        self.float_paths = tuple(k for p in parts for k in p.float_paths)
        self.n = math.prod(len(p) for p in parts)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Point:
        picks = []
        for p in reversed(self.parts):
            i, r = divmod(i, len(p))
            picks.append(p[r])
        return self.ex.merge(tuple(reversed(picks)), self.span)


class _Zipped(_Seq):
    def __init__(self, parts: list[_Seq], span: Span, ex: "_Expander") -> None:
        self.parts, self.span, self.ex = parts, span, ex
        self.paths = tuple(k for p in parts for k in p.paths)
        self.float_paths = tuple(k for p in parts for k in p.float_paths)

    def __len__(self) -> int:
        return len(self.parts[0]) if self.parts else 0

    def __getitem__(self, i: int) -> Point:
        return self.ex.merge(tuple(p[i] for p in self.parts), self.span)


class _Chain(_Seq):
    def __init__(self, parts: list[_Seq]) -> None:
        self.parts = parts
        self.paths = tuple(dict.fromkeys(k for p in parts for k in p.paths))
        self.float_paths = tuple(dict.fromkeys(k for p in parts for k in p.float_paths))
        self.starts = list(itertools.accumulate((len(p) for p in parts), initial=0))

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, i: int) -> Point:
        k = bisect.bisect_right(self.starts, i) - 1
        return self.parts[k][i - self.starts[k]]


class _Sampled(_Seq):
    """A sample's points, drawn ``CHUNK`` at a time (the latest chunk cached)."""

    CHUNK = 4096

    def __init__(self, node: ir.Sample, paths: tuple[str, ...], ex: "_Expander") -> None:
        import numpy as np

        self.node, self.paths, self.ex = node, paths, ex
        self.float_paths = tuple(p for p, d in zip(paths, node.dims) if not d.choices and not d.integer)
        self._lhs = []
        if node.method == "lhs":
            rng = np.random.default_rng(node.seed)
            n = node.n
            self._lhs = [(rng.permutation(n) + rng.random(n)) / n for _ in node.dims]
        self._at = -1
        self._cols: list[list[Any]] = []

    def __len__(self) -> int:
        return self.node.n

    def chunk(self, c: int) -> None:
        import numpy as np

        if c == self._at:
            return
        n = self.node.n
        lo, hi = c * self.CHUNK, min(n, (c + 1) * self.CHUNK)
        cols = []
        for k, dim in enumerate(self.node.dims):
            if self._lhs:
                u = self._lhs[k][lo:hi]
            else:  # dimension k takes draws k*n .. k*n + n - 1 of the stream
                rng = np.random.default_rng(self.node.seed)
                rng.bit_generator.advance(k * n + lo)
                u = rng.random(hi - lo)
            cols.append(self.ex.dim_values(dim, u))
        self._at, self._cols = c, cols

    def __getitem__(self, i: int) -> Point:
        self.chunk(i // self.CHUNK)
        j = i % self.CHUNK
        return {path: col[j] for path, col in zip(self.paths, self._cols)}


def plain(value: Any, tsc_hz: float | None = None) -> Any:
    """A point value as stored: times in seconds (float), frequencies in Hz, numbers
    (int when whole), choices as ``str``, ``bool`` as is."""
    if isinstance(value, ir.Quantity):
        if value.unit == "cycles":
            if not tsc_hz:
                raise ValueError("cycles need the TSC frequency")
            return value.value / tsc_hz
        if value.unit in ("s", "Hz"):
            return float(value.value)
        v = value.value
        if isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        return v
    if isinstance(value, (bool, str, int, float)):
        return value
    return str(value)
