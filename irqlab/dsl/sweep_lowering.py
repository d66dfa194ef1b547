"""The sweep block of a scenario: its statements into :class:`irqlab.ir.Sweep`, and the
checks of its points (see :mod:`irqlab.dsl.lowering`)."""


from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable

from irqlab import ir
from irqlab.dsl.drafting import Drafter
from irqlab.dsl.drafts import MAX_CHECK_POINTS, NAT, POS_INT, SWEEP_HEADS, has_names, has_strings, map_expr
from irqlab.dsl.syntax import Assign, Block, ListLit, ParamStmt, Range, Stmt, StrLit, WhereStmt, Within
from irqlab.errors import ScenarioError, Span, did_you_mean
from irqlab.ir import Expr, Name, Num, Quantity
from irqlab.resolve import Spec, expected

if TYPE_CHECKING:
    from irqlab.dsl.building import Builder


class SweepBuilder:
    """A sweep block -> :class:`irqlab.ir.Sweep` (paths canonical, values checked)."""

    def __init__(self, b: Builder, s: ir.Scenario, infos: dict, index: dict) -> None:
        self.b = b
        self.s = s
        self.infos = infos
        self.index = index
        self.params = {p.name for p in s.params}
        self._full: dict | None = None

    def err(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.b.err(message, span, hint)

    def path(self, text: str, span: Span) -> str | None:
        from irqlab import resolve as R

        try:
            return R._canonical(self.infos, text, span, self.index)
        except ScenarioError as e:
            self.b.l.sink.extend(e.in_scenario(self.b.d.name))
            return None

    def spec(self, path: str) -> Spec:
        info = self.infos[path]
        if path.startswith("param."):
            from irqlab import resolve as R

            if self._full is None:
                self._full = R.paths(self.s)
            return self._full[path].spec or Spec("number")
        return info.spec or Spec("number")

    def build(self, st: Stmt) -> ir.Sweep | None:
        block = st.tail
        assert isinstance(block, Block)
        items: list = []
        constraints: list = []
        derived: list = []
        replications = None
        rseen: Span | None = None
        expect: tuple[ir.Expectation, ...] = ()
        eseen: Span | None = None
        for inner in block.stmts:
            if isinstance(inner, Stmt) and inner.head == "expect":
                if eseen is not None:
                    self.err(f"a second expect block (the first is at {eseen})", inner.head_span)
                    continue
                eseen = inner.head_span
                expect = self.b.l.expectations(inner) or ()
            elif isinstance(inner, WhereStmt):
                constraints.append(self.expr(inner.expr))
            elif isinstance(inner, ParamStmt):
                self.err("'param' belongs at the scenario level, not in a sweep", inner.span)
            elif inner.head == "derive":
                dv = self.derive(inner)
                if dv is not None:
                    derived.append(dv)
            elif inner.head == "replications" and inner.tail is None:
                if rseen is not None:
                    self.err(f"replications is given twice (first at {rseen})", inner.head_span)
                    continue
                rseen = inner.head_span
                one = Drafter(self.b.l, self.b.d, self.b.d.file).one(inner, "replications")
                if one is not None:
                    v = Drafter(self.b.l, self.b.d, self.b.d.file).value(one, POS_INT, "replications")
                    if isinstance(v, int):
                        replications = v
                    elif v is not None:
                        self.err("sweep replications must be a number", one.span)
            else:
                node = self.node(inner, "sweep")
                if node is not None:
                    items.append(node)
        root: Any = None
        if len(items) == 1 and not isinstance(items[0], ir.Axis):
            root = items[0]
        elif items:
            root = ir.Grid(span=block.span, items=tuple(items))
        if root is None and (constraints or derived):
            self.err("this sweep has constraints or derived values but no axes", st.head_span)
        self.dup_paths(root, derived)
        return ir.Sweep(root, tuple(c for c in constraints if c is not None), tuple(derived),
                        replications, st.span, expect)

    def dup_paths(self, root: Any, derived: list) -> None:
        def walk(node: Any, seen: dict) -> None:
            if isinstance(node, ir.Axis):
                if node.path in seen:
                    self.err(f"'{node.path}' is swept twice in one point (first at {seen[node.path]})",
                             node.span, hint="use concat for alternatives, or one axis per path")
                seen[node.path] = node.span
            elif isinstance(node, ir.Sample):
                for dm in node.dims:
                    if dm.path in seen:
                        self.err(f"'{dm.path}' is swept twice (first at {seen[dm.path]})", dm.span)
                    seen[dm.path] = dm.span
            elif isinstance(node, ir.Concat):
                for it in node.items:
                    walk(it, dict(seen))
            elif isinstance(node, (ir.Grid, ir.Zip)):
                for it in node.items:
                    walk(it, seen)

        seen: dict[str, Span] = {}
        walk(root, seen)
        for dv in derived:
            if dv.path in seen:
                self.err(f"'{dv.path}' is both swept and derived (swept at {seen[dv.path]})", dv.span)

    def expr(self, e: Any) -> Any:
        if isinstance(e, (StrLit, ListLit)) or has_strings(e):
            self.err("a constraint is an expression such as 'delay * threshold < 1s'", e.span)
            return None
        return map_expr(e, self.name) if isinstance(e, Expr) else e

    def name(self, n: Name) -> Name:
        """A name in a sweep expression: a param, a path (shorthands allowed) or a word."""
        if "." not in n.name and n.name in self.params:
            return n
        if n.name in self.infos:
            return n
        from irqlab import resolve as R

        cands = self.index.get(n.name, [])
        if "." in n.name or len(cands) == 1:
            try:
                return replace(n, name=R._canonical(self.infos, n.name, n.span, self.index))
            except ScenarioError as ex:
                self.b.l.sink.extend(ex.in_scenario(self.b.d.name))
        return n

    def derive(self, st: Stmt) -> ir.Derived | None:
        if len(st.args) != 1 or not isinstance(st.args[0], Name) or not isinstance(st.tail, Assign):
            self.err("expected 'derive PATH = expression'", st.span)
            return None
        path = self.path(st.args[0].name, st.args[0].span)
        val = st.tail.value
        if path is None:
            return None
        if isinstance(val, ListLit):
            self.err("a derived value is one expression, not a list", val.span)
            return None
        if isinstance(val, Num):
            e: Any = val
        else:
            e = self.expr(val)
        if e is None:
            return None
        return ir.Derived(path, e, st.span)

    def node(self, st: Any, where: str) -> Any:
        if isinstance(st, (WhereStmt, ParamStmt)):
            self.err(f"'{'where' if isinstance(st, WhereStmt) else 'param'}' cannot be inside {where}",
                     st.span)
            return None
        h = st.head
        if h in ("grid", "zip", "concat"):
            if st.args:
                self.err(f"{h} takes a block only: {h} {{ ... }}", st.args[0].span)
            if not isinstance(st.tail, Block):
                self.err(f"{h} needs a block: {h} {{ ... }}", st.span)
                return None
            if not st.tail.stmts:
                self.err(f"an empty {h}", st.head_span)
                return None
            items = [x for x in (self.node(i, h) for i in st.tail.stmts) if x is not None]
            if not items:
                return None
            if h == "concat":
                items = [ir.Grid(span=i.span, items=(i,)) if isinstance(i, ir.Axis) else i for i in items]
                return ir.Concat(span=st.span, items=tuple(items))
            cls = ir.Grid if h == "grid" else ir.Zip
            if h == "zip":
                sizes = [len(i.values) if isinstance(i, ir.Axis) else None for i in items]
                known = [n for n in sizes if n is not None]
                if known and len(set(known)) > 1:
                    self.err(f"zipped axes have different lengths ({', '.join(map(str, known))})", st.head_span,
                             hint="every axis of a zip needs the same number of values")
            return cls(span=st.span, items=tuple(items))
        if h in ("random", "lhs"):
            return self.sample(st)
        if isinstance(st.tail, Assign):
            return self.axis(st)
        if isinstance(st.tail, Within):
            self.err(f"a sampled dimension '{h} in ...' belongs in a random or lhs block", st.span)
            return None
        if h in SWEEP_HEADS:
            self.err(f"'{h}' cannot be inside {where}" if where != "sweep" else f"'{h}' needs more: see the docs",
                     st.head_span)
            return None
        self.err(f"expected an axis 'PATH = [values]' or grid, zip, concat, random, lhs; found '{h}'",
                 st.head_span, hint=did_you_mean(h, SWEEP_HEADS))
        return None

    def values(self, items: list, path: str, span: Span) -> tuple:
        spec = self.spec(path)
        out = []
        d = Drafter(self.b.l, self.b.d, self.b.d.file)
        d.params = set(self.params)
        for it in items:
            if isinstance(it, Name) and "." not in it.name and it.name not in self.params and \
                    spec.kind not in ("choice", "bool", "str"):
                v = d.value(it, spec, path)
            elif isinstance(it, Expr) and not isinstance(it, (Num, Name)) and has_names(it):
                v = map_expr(it, self.name)
            else:
                v = d.value(it, spec, path)
                if isinstance(v, Expr):
                    v = map_expr(v, self.name)
            if v is None:
                continue
            if isinstance(v, int) and not isinstance(v, bool):
                v = Quantity(float(v))
            out.append(v)
        return tuple(out)

    def axis(self, st: Stmt) -> ir.Axis | None:
        if st.args:
            self.err("an axis is 'PATH = [values]'", st.args[0].span)
            return None
        path = self.path(st.head, st.head_span)
        val = st.tail.value
        if not isinstance(val, ListLit):
            self.err(f"an axis takes a list of values: {st.head} = [a, b, c]", val.span)
            return None
        if path is None:
            return None
        if not val.items:
            self.err(f"axis '{st.head}' has no values", val.span)
            return None
        return ir.Axis(path, self.values(val.items, path, val.span), st.span)

    def sample(self, st: Stmt) -> ir.Sample | None:
        h = st.head
        d = Drafter(self.b.l, self.b.d, self.b.d.file)
        args = list(st.args)
        n = 1
        seed = 0
        if not args:
            self.err(f"{h} needs a number of points: {h} 20 {{ ... }}", st.head_span)
            return None
        v = d.value(args.pop(0), Spec("number", integer=True, min=1, max=10**6, store="int"), f"{h} points")
        n = v if isinstance(v, int) else n
        while args:
            k = args.pop(0)
            if not (isinstance(k, Name) and k.name == "seed") or not args:
                self.err(f"expected '{h} N seed S {{ ... }}'", k.span)
                break
            sv = d.value(args.pop(0), NAT, "seed")
            seed = sv if isinstance(sv, int) else seed
        if not isinstance(st.tail, Block):
            self.err(f"{h} needs a block of dimensions: {h} {n} {{ rate in 1kHz .. 1MHz log }}", st.span)
            return None
        dims = []
        for inner in st.tail.stmts:
            if not isinstance(inner, Stmt) or not isinstance(inner.tail, Within) or inner.args:
                self.err("a sampled dimension is 'PATH in LOW .. HIGH [log] [int]' or 'PATH in [a, b]'",
                         inner.span)
                continue
            dm = self.dist(inner)
            if dm is not None:
                dims.append(dm)
        if not dims:
            self.err(f"{h} has no dimensions", st.head_span)
            return None
        return ir.Sample(span=st.span, method=h, n=n, seed=seed, dims=tuple(dims))

    def dist(self, st: Stmt) -> ir.Dist | None:
        path = self.path(st.head, st.head_span)
        if path is None:
            return None
        w = st.tail.value
        if isinstance(w, ListLit):
            if not w.items:
                self.err("no choices", w.span)
                return None
            return ir.Dist(path, choices=self.values(w.items, path, w.span), span=st.span)
        assert isinstance(w, Range)
        spec = self.spec(path)
        log = integer = False
        for flag, fspan in w.flags:
            if flag == "log":
                log = True
            elif flag == "int":
                integer = True
            else:
                self.err(f"unknown range flag '{flag}'", fspan,
                         hint=did_you_mean(flag, ("log", "int")) or "flags are log and int")
        if spec.kind not in ("number", "time", "frequency"):
            self.err(f"{path} is {expected(spec)}; sample it from a list: {st.head} in [a, b]", w.span)
            return None
        bounds = [self.values([b], path, w.span) for b in (w.low, w.high)]
        if not all(bounds):
            return None  # a bound's error is reported
        lo, hi = bounds[0][0], bounds[1][0]
        if integer and spec.integer is False and spec.kind != "number":
            self.err("'int' applies to plain numbers", w.span)
        if isinstance(lo, Quantity) and isinstance(hi, Quantity) and lo.unit == hi.unit:
            if hi.value < lo.value:
                self.err(f"empty range: {lo} > {hi}", w.span)
            if log and lo.value <= 0:
                self.err("a log-scale range must be positive", w.low.span)
            if integer and not (float(lo.value).is_integer() and float(hi.value).is_integer()):
                self.err("an int range needs whole-number bounds", w.span)
        if spec.integer:
            integer = True
        return ir.Dist(path, lo, hi, log, integer, span=st.span)


class SweepChecker:
    """Checks that need the sweep's points: derived values and constraints."""

    def __init__(self, b: Builder, s: ir.Scenario, infos: dict) -> None:
        self.b = b
        self.s = s
        self.infos = infos

    def check(self, sw: ir.Sweep) -> None:
        if not sw.constraints and not sw.derived:
            return
        from irqlab import resolve as R

        try:
            points = list(itertools.islice(self.points(sw.root), MAX_CHECK_POINTS + 1))
        except ScenarioError as e:
            self.b.l.sink.extend(e)
            return
        complete = len(points) <= MAX_CHECK_POINTS and not _has_sample(sw.root)
        points = points[:MAX_CHECK_POINTS]
        base_infos = self.infos
        alive = [True] * len(points)
        first_error: set = set()
        passing = {id(c): 0 for c in sw.constraints}
        for i, pt in enumerate(points):
            ov = {p: (v, None) for p, v in pt.items()}
            r = R._Resolver(self.s, base_infos, ov)
            try:
                for dv in sw.derived:
                    val = R.evaluate(dv.expr, R._Env(r, dv.span), r.words_for(dv.path)
                                     if dv.path in base_infos else ())
                    ov[dv.path] = (val, dv.span)
                    r.done.pop(dv.path, None)
                    r.done = {}
                for c in sw.constraints:
                    ok = R.evaluate(c, R._Env(r, c.span))
                    if not isinstance(ok, bool):
                        raise ScenarioError("a constraint must be true or false", c.span,
                                            hint="compare values, e.g. 'delay * threshold < 1s'")
                    if ok:
                        passing[id(c)] += 1
                    else:
                        alive[i] = False
            except ScenarioError as e:
                key = (e.message, e.span)
                if key not in first_error:
                    first_error.add(key)
                    self.b.l.sink.extend(e)
                return
        if points and not any(alive) and sw.constraints:
            blocker = next((c for c in sw.constraints if passing[id(c)] == 0), None)
            how = "" if complete else f" (of the {len(points)} points tried)"
            if blocker is not None:
                self.b.err(f"no point of the sweep satisfies this constraint{how}", blocker.span)
            else:
                self.b.err(f"no point of the sweep satisfies all its constraints together{how}",
                           sw.constraints[0].span)

    def points(self, node: Any) -> Iterable[dict]:
        if node is None:
            yield {}
            return
        if isinstance(node, ir.Axis):
            for v in node.values:
                yield {node.path: v}
        elif isinstance(node, ir.Grid):
            parts = [list(itertools.islice(self.points(i), MAX_CHECK_POINTS)) for i in node.items]
            for combo in itertools.product(*parts):
                out: dict = {}
                for p in combo:
                    out.update(p)
                yield out
        elif isinstance(node, ir.Zip):
            parts = [list(itertools.islice(self.points(i), MAX_CHECK_POINTS)) for i in node.items]
            for combo in zip(*parts):
                out = {}
                for p in combo:
                    out.update(p)
                yield out
        elif isinstance(node, ir.Concat):
            for i in node.items:
                yield from self.points(i)
        elif isinstance(node, ir.Sample):
            yield from self.sample_points(node)

    def sample_points(self, node: ir.Sample) -> Iterable[dict]:
        """Candidate points of a sample: the corners, then random draws."""
        rng = random.Random(node.seed)
        dims = node.dims

        def pick(d: ir.Dist, u: float) -> Any:
            if d.choices:
                return d.choices[min(int(u * len(d.choices)), len(d.choices) - 1)]
            lo, hi = d.low, d.high
            if not (isinstance(lo, Quantity) and isinstance(hi, Quantity)) or lo.unit != hi.unit:
                return lo
            v = lo.value + u * (hi.value - lo.value)
            if d.log and lo.value > 0 and hi.value > 0:
                import math

                v = math.exp(math.log(lo.value) + u * (math.log(hi.value) - math.log(lo.value)))
            if d.integer:
                v = float(round(v))
            return Quantity(v, lo.unit)

        for corner in itertools.islice(itertools.product((0.0, 1.0), repeat=len(dims)), 256):
            yield {d.path: pick(d, u) for d, u in zip(dims, corner)}
        for _ in range(min(max(node.n, 256), 4096)):
            yield {d.path: pick(d, rng.random()) for d in dims}


def _has_sample(node: Any) -> bool:
    if isinstance(node, ir.Sample):
        return True
    if isinstance(node, (ir.Grid, ir.Zip, ir.Concat)):
        return any(_has_sample(i) for i in node.items)
    return False
