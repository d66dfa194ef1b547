"""Expectations: assertions over a run's metrics (``expect { ... }``).

A scenario's ``expect`` block is checked by ``irqlab test`` over the
replications of its ``run`` block; an ``expect`` block inside ``sweep`` is
checked on every run of ``irqlab sweep`` and stored as columns.

Meaning
-------
An expectation is an expression of the scenario language that is true or
false; :func:`irqlab.resolve.evaluate`'s evaluator computes it, with its units
and its errors. A name in it is, in this order:

* a metric of the run (:func:`known_metrics`: ``livelock``, ``eoi_count``,
  ``time_to_l2_progress_ns``, ``exits.VMRESUME``, ``device.uhci.serviced``
  (also ``devices.uhci.serviced``), ``mitigation_activations.<mitigation>``,
  the columns of the run's metric plugins). A metric in ``ns`` is a time
  (``time_to_l2_progress_ns > 50ms``), a count a plain number, a flag true
  or false. A null metric (no service, so no latency) compares false with
  everything; a ``time_to_*progress_ns`` that is null because the level never
  ran is an infinite time ("never" is later than any time);
* a value of the scenario: a named parameter, a canonical path or a unique
  suffix of one (``duration``, ``qemu_eoi_throttle.threshold``);
* ``true``/``false`` (also ``on``/``off``, ``yes``/``no``).

``a within T of b`` holds if ``|a - b| <= T``; a tolerance written as a
percentage (``within 1% of``) is relative to ``|b|``.

Replications
------------
A bare assertion must hold in **every** replication: ``livelock == true``
with 4 replications fails if one of them did not livelock. The quantifiers
range over all replications and give one value: ``all(e)`` and ``any(e)``
(true or false), ``fraction(e)`` (the share of replications where ``e``
holds, 0 to 1) and ``mean(e)`` (the mean of ``e``, in its unit). Names
outside a quantifier are taken from each replication in turn; quantifiers do
not nest. In a sweep each run is checked on its own, so quantifiers are not
allowed there (their replications are other runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from irqlab import ir
from irqlab.errors import ErrorSink, ScenarioError, did_you_mean
from irqlab.ir import Call, Expr, Name, Quantity
from irqlab.resolve import BOOL_WORDS, QUANTIFIERS, _Evaluator, describe

# metrics whose null means "never happened": an infinite time, not an unknown value
NEVER_IS_INFINITE = ("time_to_l2_progress_ns", "time_to_progress_ns")
DEVICE_ALIAS = "devices."  # the `irqlab run --json` spelling of `device.`


@dataclass(frozen=True)
class MetricInfo:
    """One metric an expectation can name: ``type`` float|int|bool, ``unit`` as the
    engine declares it (``ns``, ``1/s``, ``""``), and its meaning."""

    name: str
    type: str
    unit: str
    doc: str = ""


def known_metrics(scenario: ir.Scenario) -> dict[str, MetricInfo]:
    """Every metric a run of ``scenario`` produces, by the flat name
    :meth:`irqlab.engine.result.BatchResult.flat_columns` gives it."""
    from irqlab.engine.result import DEVICE_METRICS, EXIT_REASONS, METRICS, USERSPACE_EXITS

    out = {n: MetricInfo(n, t, u, d) for n, (t, u, d) in METRICS.items()}
    for r in EXIT_REASONS:
        out[f"exits.{r}"] = MetricInfo(f"exits.{r}", "int", "", f"kvm_exit events with reason {r}")
    for r in USERSPACE_EXITS:
        out[f"userspace_exits.{r}"] = MetricInfo(f"userspace_exits.{r}", "int", "", f"exits to userspace: {r}")
    for mu in scenario.mitigations:
        n = f"mitigation_activations.{mu.name}"
        out[n] = MetricInfo(n, "int", "", f"times mitigation {mu.name} acted")
    for d in scenario.devices:
        for m, (t, u, doc) in DEVICE_METRICS.items():
            out[f"device.{d.name}.{m}"] = MetricInfo(f"device.{d.name}.{m}", t, u, f"{d.name}: {doc}")
    if scenario.actions:
        from irqlab.engine.routes import ROUTE_METRICS

        out.update({n: MetricInfo(n, t, u, d) for n, (t, u, d) in ROUTE_METRICS.items()})
    from irqlab.plugins.registry import registry

    for use in scenario.run.metrics:
        entry = registry().find("metric", use.name)
        for c in getattr(getattr(entry, "cls", None), "columns", ()):
            out[c.name] = MetricInfo(c.name, c.type, c.unit, getattr(c, "doc", ""))
    return out


def metric_name(name: str) -> str:
    """The flat metric name a user's spelling means (``devices.x.y`` -> ``device.x.y``)."""
    return "device." + name[len(DEVICE_ALIAS):] if name.startswith(DEVICE_ALIAS) else name


def metric_value(info: MetricInfo, raw: Any) -> Any:
    """A stored metric value as the language sees it: Quantity (time in s, rate in Hz,
    number) or bool; a null is NaN (or +inf for a 'never' time)."""
    if info.type == "bool":
        return bool(raw)
    x = float("nan") if raw is None else float(raw)
    if math.isnan(x) and info.name in NEVER_IS_INFINITE:
        x = math.inf
    if info.unit == "ns":
        return Quantity(x * 1e-9, "s")
    if info.unit == "1/s":
        return Quantity(x, "Hz")
    return Quantity(x)


def _placeholder(info: MetricInfo) -> Any:
    """A stand-in value of the metric's type and unit (named after it, for messages)."""
    if info.type == "bool":
        return True
    q = metric_value(info, 1.0)
    return Quantity(q.value, q.unit, info.name)


# --------------------------------------------------------------------------- names


class _Names(Mapping):
    """What names mean in one replication: metrics, then scenario values, then true/false.

    ``metrics``: flat name -> value for this replication (language values);
    ``values``: a callable giving the scenario's values (path -> value, named
    parameters by bare name), computed only if some name needs it."""

    def __init__(self, metrics: Mapping[str, Any], scenario_values: Any) -> None:
        self.metrics = metrics
        self.scenario_values = scenario_values

    def _lookup(self, name: str) -> tuple[bool, Any]:
        m = metric_name(name)
        if m in self.metrics:
            return True, self.metrics[m]
        vals = self.scenario_values()
        if name in vals:
            return True, vals[name]
        path = vals.shorthand(name)
        if path is not None:
            return True, vals[path]
        if name.lower() in BOOL_WORDS:
            return True, BOOL_WORDS[name.lower()]
        return False, None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name)[0]

    def __getitem__(self, name: str) -> Any:
        found, v = self._lookup(name)
        if not found:
            raise KeyError(name)
        return v

    def get(self, name: str, default: Any = None) -> Any:
        found, v = self._lookup(name)
        return v if found else default

    def __iter__(self) -> Iterator[str]:
        yield from self.metrics
        yield from self.scenario_values()

    def __len__(self) -> int:
        return len(self.metrics) + len(self.scenario_values())


class ScenarioValues(dict):
    """A resolved scenario's values (:func:`irqlab.resolve.values`) with its path shorthands."""

    def __init__(self, scenario: ir.Scenario, overrides: Mapping[str, Any] | None = None) -> None:
        from irqlab import resolve as R

        super().__init__(R.values(scenario, overrides))
        self._index = R._suffix_index({k: None for k in self if "." in k})

    def shorthand(self, name: str) -> str | None:
        cands = self._index.get(name, [])
        return cands[0] if len(cands) == 1 else None


class LazyValues:
    """Computes a scenario's values once, on first use."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.done: ScenarioValues | None = None

    def __call__(self) -> ScenarioValues:
        if self.done is None:
            self.done = self.make()
        return self.done


# --------------------------------------------------------------------------- evaluation


class _ExpectEvaluator(_Evaluator):
    """The language's evaluator, one replication's names, and quantifiers over all of them."""

    def __init__(self, reps: Sequence[_Names], rep: int, memo: dict, inside: bool = False) -> None:
        super().__init__(reps[rep], frozenset())
        self.reps, self.rep, self.memo, self.inside = reps, rep, memo, inside

    def quantify(self, e: Call) -> Any:
        if self.inside:
            raise ScenarioError(f"{e.func}() inside another quantifier: they do not nest", e.span)
        if len(e.args) != 1:
            raise ScenarioError(f"{e.func}() takes one argument", e.span)
        key = id(e)
        if key not in self.memo:
            vals = [_ExpectEvaluator(self.reps, i, self.memo, True).eval(e.args[0])
                    for i in range(len(self.reps))]
            self.memo[key] = _aggregate(e, vals, self)
        return self.memo[key]


def _aggregate(e: Call, vals: list, ev: _Evaluator) -> Any:
    if e.func in ("all", "any", "fraction"):
        for v in vals:
            if not isinstance(v, bool):
                raise ScenarioError(f"{e.func}() needs something true or false, not {describe(v)}",
                                    e.args[0].span, hint=f"write a comparison: {e.func}(x > 1ms)")
        if e.func == "all":
            return all(vals)
        if e.func == "any":
            return any(vals)
        return Quantity(sum(vals) / len(vals)) if vals else Quantity(math.nan)
    for v in vals:  # mean
        if not isinstance(v, Quantity):
            raise ScenarioError(f"mean() needs numbers, not {describe(v)}", e.args[0].span,
                                hint="fraction() gives the share of replications where something holds")
    if not vals:
        return Quantity(math.nan)
    vals = [ev.to_seconds(v, e) for v in vals]
    xs = [ev.align(vals[0], v, e)[1] for v in vals]
    return Quantity(sum(xs) / len(xs), vals[0].unit)


@dataclass(frozen=True)
class Outcome:
    """One expectation checked over a set of replications.

    ``failed``: the replications where it did not hold (all of them when a
    quantifier at the top failed); ``measured``: what the run gave, in words
    (``time_to_l2_progress_ns = 88.4ms``)."""

    expectation: ir.Expectation
    passed: bool
    failed: tuple[int, ...] = ()
    measured: str = ""
    per_replication: bool = True  # False: every name is inside a quantifier (one value for all)


def check(expectations: Sequence[ir.Expectation], runs: Sequence[Mapping[str, Any]],
          scenario: ir.Scenario, values: Any = None) -> list[Outcome]:
    """Each expectation checked over ``runs`` (one flat metric dict per replication,
    as :meth:`BatchResult.flat_columns` names them). ``scenario`` is the resolved
    scenario the runs ran (its values, and which metrics exist); ``values`` a
    callable returning its :class:`ScenarioValues` (default: computed on demand).
    An expression that cannot be evaluated raises ScenarioError at its span."""
    infos = known_metrics(scenario)
    lazy = values if values is not None else LazyValues(lambda: ScenarioValues(scenario))
    reps = [_Names({n: metric_value(i, run.get(n)) for n, i in infos.items() if n in run}, lazy)
            for run in runs]
    return [_check_one(x, reps) for x in expectations]


def _check_one(x: ir.Expectation, reps: list[_Names]) -> Outcome:
    memo: dict = {}
    failed = []
    once = _only_quantified(x.expr)  # the same value in every replication
    for r in range(len(reps)):
        if once and r:
            if failed:
                failed.append(r)
            continue
        v = _ExpectEvaluator(reps, r, memo).eval(x.expr)
        if not isinstance(v, bool):
            raise ScenarioError(f"an expectation must be true or false, not {describe(v)}", x.expr.span,
                                hint="compare it: e.g. 'eoi_count > 100'")
        if not v:
            failed.append(r)
    if not reps:
        return Outcome(x, False, (), "no run to check")
    return Outcome(x, not failed, tuple(failed), measured(x.expr, reps, failed[0] if failed else 0, memo),
                   not _only_quantified(x.expr))


def _subject(e: Expr) -> Expr:
    """The part of an assertion whose value a report shows (the left of a comparison)."""
    if isinstance(e, ir.Binary) and e.op in ("==", "!=", "<", "<=", ">", ">="):
        return e.left
    if isinstance(e, ir.Within):
        return e.value
    if isinstance(e, ir.Unary) and e.op == "not":
        return _subject(e.operand)
    return e


def measured(e: Expr, reps: list[_Names], rep: int, memo: dict) -> str:
    """What replication ``rep`` measured for ``e``'s subject, in words."""
    from irqlab.dsl.dump import top_text

    subj = _subject(e)
    if isinstance(subj, Call) and subj.func in ("all", "any") and subj.args:
        inner = _subject(subj.args[0])
        vals = [_ExpectEvaluator(reps, i, memo, True).eval(inner) for i in range(len(reps))]
        shown = ", ".join(show(v) for v in vals[:8]) + (", ..." if len(vals) > 8 else "")
        return f"{top_text(inner)} = [{shown}] over {len(reps)} replication(s)"
    v = _ExpectEvaluator(reps, rep, memo).eval(subj)
    where = f" (replication {rep})" if len(reps) > 1 and not _only_quantified(subj) else ""
    return f"{top_text(subj)} = {show(v)}{where}"


def _only_quantified(e: Any) -> bool:
    """True if every name in ``e`` is inside a quantifier (its value is the same in every replication)."""
    if isinstance(e, Call):
        return e.func in QUANTIFIERS or all(_only_quantified(a) for a in e.args)
    if isinstance(e, Name):
        return False
    if isinstance(e, ir.Binary):
        return _only_quantified(e.left) and _only_quantified(e.right)
    if isinstance(e, ir.Unary):
        return _only_quantified(e.operand)
    if isinstance(e, ir.Within):
        return all(_only_quantified(x) for x in (e.value, e.tolerance, e.target))
    return True


def show(v: Any) -> str:
    """A value as a report shows it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Quantity):
        if math.isnan(v.value):
            return "null"
        if math.isinf(v.value):
            return "never" if v.unit == "s" and v.value > 0 else str(v.value)
        q = Quantity(float(f"{v.value:.6g}"), v.unit)
        return ir.format_quantity(q)
    return str(v)


# --------------------------------------------------------------------------- checking


def names_in(e: Any) -> Iterator[Name]:
    """Every name in expression ``e``."""
    if isinstance(e, Name):
        yield e
    elif isinstance(e, ir.Binary):
        yield from names_in(e.left)
        yield from names_in(e.right)
    elif isinstance(e, ir.Unary):
        yield from names_in(e.operand)
    elif isinstance(e, Call):
        for a in e.args:
            yield from names_in(a)
    elif isinstance(e, ir.Within):
        for a in (e.value, e.tolerance, e.target):
            yield from names_in(a)


def _quantifiers_in(e: Any) -> Iterator[Call]:
    if isinstance(e, Call):
        if e.func in QUANTIFIERS:
            yield e
        for a in e.args:
            yield from _quantifiers_in(a)
    elif isinstance(e, ir.Binary):
        yield from _quantifiers_in(e.left)
        yield from _quantifiers_in(e.right)
    elif isinstance(e, ir.Unary):
        yield from _quantifiers_in(e.operand)
    elif isinstance(e, ir.Within):
        for a in (e.value, e.tolerance, e.target):
            yield from _quantifiers_in(a)


def route_metric_names() -> frozenset[str]:
    """The metrics a scenario has only with guest actions (irqlab.engine.routes)."""
    from irqlab.engine.routes import ROUTE_METRICS

    return frozenset(ROUTE_METRICS)


def check_expectations(scenario: ir.Scenario, sink: ErrorSink) -> None:
    """Report into ``sink`` every expectation of ``scenario`` (its own and its sweep's)
    that names an unknown metric (with a did-you-mean), is not true-or-false, mixes
    units, or uses a quantifier in a sweep. Checked with placeholder metric values."""
    sweep = scenario.sweep.expect if scenario.sweep is not None else ()
    if not scenario.expect and not sweep:
        return
    infos = known_metrics(scenario)
    try:
        vals = ScenarioValues(scenario)
    except ScenarioError:
        return  # the scenario's own errors are reported elsewhere
    names = _Names({n: _placeholder(i) for n, i in infos.items()}, lambda: vals)
    for x in sweep:
        for q in _quantifiers_in(x.expr):
            sink.add(f"{q.func}() ranges over replications, but a sweep checks each run on its own",
                     q.span, hint="put expectations over replications in the scenario's expect block "
                     "(irqlab test)")
    for x in (*scenario.expect, *sweep):
        bad = False
        for n in names_in(x.expr):
            if n.name in names:
                continue
            bad = True
            hint = did_you_mean(metric_name(n.name), list(infos)) or did_you_mean(n.name, list(vals))
            if hint is None and metric_name(n.name) in route_metric_names():
                hint = "it is measured when the scenario has guest actions (at T { ... })"
            sink.add(f"unknown metric '{n.name}'", n.span,
                     hint=hint or "metrics: " + ", ".join(m for m in infos if "." not in m),
                     presumes=(scenario.name, "action"))
        if bad:
            continue
        try:
            _check_one(x, [names])
        except ScenarioError as e:
            if not e.message.startswith("division by zero"):
                sink.extend(e)


def columns(expectations: Sequence[ir.Expectation], flat: Mapping[str, Any], status: Sequence[str],
            scenario: ir.Scenario, values_for: Any) -> dict[str, Any]:
    """Sweep columns: ``expect_<k>`` (k from 1, in the block's order) and ``expect_pass``
    (all of them), bool arrays over a batch's lanes. ``flat``: the batch's flat
    metric columns; ``values_for(i)``: lane ``i``'s :class:`ScenarioValues`
    callable. Each run is checked on its own; a failed run fails every expectation."""
    import numpy as np

    n = len(status)
    out = {f"expect_{k + 1}": np.zeros(n, np.bool_) for k in range(len(expectations))}
    infos = known_metrics(scenario)
    for i in range(n):
        if status[i] != "ok":
            continue
        run = {k: v[i] for k, v in flat.items() if np.ndim(v) == 1}
        reps = [_Names({m: metric_value(infos[m], run.get(m)) for m in infos if m in run}, values_for(i))]
        for k, x in enumerate(expectations):
            try:
                out[f"expect_{k + 1}"][i] = _check_one(x, reps).passed
            except ScenarioError:  # e.g. a division by zero with this run's values: it does not hold
                out[f"expect_{k + 1}"][i] = False
    passed = np.ones(n, np.bool_)
    for col in out.values():
        passed &= col
    if n:
        passed &= np.asarray([s == "ok" for s in status], np.bool_)
    out["expect_pass"] = passed
    return out
