"""The drafts lowering fills from a scenario block's statements (:class:`Draft`, by
field name with spans), and the heads and specs the drafting and building steps share."""


from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any

from irqlab import ir
from irqlab.dsl.syntax import ParamStmt, Stmt, StrLit
from irqlab.errors import NO_SPAN, Span
from irqlab.ir import Expr, Name, Quantity
from irqlab.resolve import Spec

if TYPE_CHECKING:
    from irqlab.dsl.lowering import Loader

SCENARIO_HEADS = ("machine", "costs", "vcpu", "device", "mitigation", "run", "sweep", "expect", "include",
                  "remove", "at")
TOP_HEADS = ("scenario", "import", "include")
DEVICE_HEADS = ("gsi", "msi", "delivery", "vector", "trigger", "polarity", "dest", "arrival", "model",
                "serviced_by", "service", "lowers", "policy", "vfio", "work",
                "dest_mode", "delivery_mode", "work_on")
RUN_HEADS = ("duration", "replications", "seed", "max_events", "livelock_window", "histograms",
             "backend", "metric", "metrics", "series")
SWEEP_HEADS = ("grid", "zip", "concat", "random", "lhs", "derive", "replications", "where", "expect")
REMOVABLE = ("device", "mitigation", "sweep", "param", "metric", "expect")
LEVEL_RE = ir.LEVELS
LOWERS_POLICY = {"before_eoi": "lower_then_eoi", "after_eoi": "eoi_before_lower"}
DEFAULT_POLICY = "lower_then_eoi"
MAX_CHECK_POINTS = 20000

INT = Spec("number", integer=True, store="int")
POS_INT = Spec("number", integer=True, min=1, store="int")
NAT = Spec("number", integer=True, min=0, store="int")
WORD = Spec("str", store="raw")


# --------------------------------------------------------------------------- drafts


@dataclass
class Entry:
    """A field's value (Quantity/str/bool/int/Expr, or None after an error) and span."""

    value: Any
    span: Span


@dataclass
class PluginDraft:
    kind: str
    name: str
    span: Span
    cls: Any = None
    args: dict[str, Entry] = field(default_factory=dict)

    def copy(self) -> "PluginDraft":
        return PluginDraft(self.kind, self.name, self.span, self.cls, dict(self.args))


@dataclass
class LevelDraft:
    level: str
    span: Span
    name: Entry | None = None
    policy: PluginDraft | None = None

    def copy(self) -> "LevelDraft":
        return LevelDraft(self.level, self.span, self.name, self.policy.copy() if self.policy else None)


@dataclass
class VcpuDraft:
    key: Any  # int or "all"
    span: Span
    levels: dict[str, LevelDraft] = field(default_factory=dict)
    unknown_levels: bool = False  # a statement of its block was reported as an unknown level

    def copy(self) -> "VcpuDraft":
        return VcpuDraft(self.key, self.span, {k: v.copy() for k, v in self.levels.items()},
                         self.unknown_levels)


@dataclass
class DeviceDraft:
    name: str
    span: Span
    fields: dict[str, Entry] = field(default_factory=dict)
    plugins: dict[str, PluginDraft] = field(default_factory=dict)  # arrival, model, policy

    def copy(self) -> "DeviceDraft":
        return DeviceDraft(self.name, self.span, dict(self.fields),
                           {k: v.copy() for k, v in self.plugins.items()})


@dataclass
class Draft:
    name: str
    span: Span
    file: str
    params: dict[str, Entry] = field(default_factory=dict)
    machine: dict[str, Entry] = field(default_factory=dict)
    machine_span: Span | None = None
    costs: dict[str, Entry] = field(default_factory=dict)
    costs_span: Span | None = None
    vcpus: dict[Any, VcpuDraft] = field(default_factory=dict)
    devices: dict[str, DeviceDraft] = field(default_factory=dict)
    mitigations: dict[str, PluginDraft] = field(default_factory=dict)
    run: dict[str, Entry] = field(default_factory=dict)
    run_span: Span | None = None
    metrics: dict[str, PluginDraft] = field(default_factory=dict)
    series: Entry | None = None
    sweep: Stmt | None = None
    expect: tuple[ir.Expectation, ...] = ()  # a child's expect block replaces its base's
    actions: list[ir.Action] = field(default_factory=list)  # `at` statements (irqlab.dsl.routes)

    def copy(self, name: str, span: Span, file: str) -> "Draft":
        return Draft(name, span, file, dict(self.params), dict(self.machine), self.machine_span,
                     dict(self.costs), self.costs_span, {k: v.copy() for k, v in self.vcpus.items()},
                     {k: v.copy() for k, v in self.devices.items()},
                     {k: v.copy() for k, v in self.mitigations.items()}, dict(self.run), self.run_span,
                     {k: v.copy() for k, v in self.metrics.items()}, self.series, self.sweep, self.expect,
                     list(self.actions))


@dataclass
class FileUnit:
    """A loaded file: its scenarios (drafts and built IR) in order."""

    path: str
    text: str
    drafts: dict[str, Draft] = field(default_factory=dict)
    built: dict[str, ir.Scenario] = field(default_factory=dict)
    visible: dict[str, Draft] = field(default_factory=dict)  # imported scenarios by name
    main: str | None = None


# --------------------------------------------------------------------------- helpers of both steps


def defines(st: Any) -> tuple[str, ...]:
    """The part of a scenario a body statement defines (``("device", "nic")``), as a path
    under the scenario; ``()``: it could be anything (an unknown statement)."""
    if isinstance(st, ParamStmt):
        return ("param", st.name)
    if not isinstance(st, Stmt):
        return ("sweep",)
    name = st.args[0].name if st.args and isinstance(st.args[0], Name) else None
    if st.head in ("machine", "costs", "run", "sweep"):
        return (st.head,)
    if st.head in ("device", "mitigation") and name:
        return (st.head, name)
    if st.head == "vcpu":
        return ("vcpu",)
    return ()


def default_value(p: Any, d: Draft, span: Span = NO_SPAN) -> Any:
    """A declared default as the IR holds it. A ``costs.<name>`` default stays a
    reference to that cost (evaluated by resolve), so that sweeping the cost
    moves every parameter that defaults to it."""
    v = p.default
    if isinstance(v, str) and v.startswith("costs.") and p.type == "time":
        return Name(span=span, name=v) if v[6:] in ir.COSTS else Quantity(0.0, "s")
    if p.type == "time":
        return v if isinstance(v, Quantity) else Quantity(float(v), "s")
    if p.type == "frequency":
        return v if isinstance(v, Quantity) else Quantity(float(v), "Hz")
    if p.type in ("int", "float"):
        return v if isinstance(v, Quantity) else Quantity(float(v))
    if p.type == "bool":
        return bool(v)
    return str(v)


def placeholder(p: Any) -> Any:
    return {"time": Quantity(0.0, "s"), "frequency": Quantity(1.0, "Hz"), "int": Quantity(1.0),
            "float": Quantity(0.0), "bool": False}.get(p.type, p.choices[0] if p.choices else "")


def known_hint(kind: str) -> str | None:
    from irqlab.plugins.registry import registry

    names = registry().names(kind)
    return f"{kind}s: {', '.join(names)}" if names else None


def any_leaf(e: Any, pred: Any) -> bool:
    """True if ``pred`` holds for some leaf (name, number, string) of expression ``e``."""
    if isinstance(e, ir.Binary):
        return any_leaf(e.left, pred) or any_leaf(e.right, pred)
    if isinstance(e, ir.Unary):
        return any_leaf(e.operand, pred)
    if isinstance(e, ir.Call):
        return any(any_leaf(a, pred) for a in e.args)
    if isinstance(e, ir.Within):
        return any(any_leaf(a, pred) for a in (e.value, e.tolerance, e.target))
    return pred(e)


def has_names(e: Any) -> bool:
    return any_leaf(e, lambda x: isinstance(x, Name))


def has_dotted(e: Any) -> bool:
    return any_leaf(e, lambda x: isinstance(x, Name) and "." in x.name)


def has_strings(e: Any) -> bool:
    return any_leaf(e, lambda x: isinstance(x, StrLit))


def map_exprs(obj: Any, fn: Any) -> Any:
    """``obj`` with ``fn`` applied to every Name inside every Expr (dataclasses rebuilt
    only where something changed)."""
    if isinstance(obj, Expr):
        return map_expr(obj, fn)
    if isinstance(obj, tuple):
        new = tuple(map_exprs(x, fn) for x in obj)
        return obj if all(a is b for a, b in zip(new, obj)) else new
    if is_dataclass(obj) and not isinstance(obj, (Quantity, type)) and not isinstance(obj, Span):
        changes = {}
        for f in fields(obj):
            if f.name in ("span", "source", "field_spans"):
                continue
            v = getattr(obj, f.name)
            nv = map_exprs(v, fn)
            if nv is not v:
                changes[f.name] = nv
        return replace(obj, **changes) if changes else obj
    return obj


def map_expr(e: Expr, fn: Any) -> Expr:
    if isinstance(e, Name):
        return fn(e)
    if isinstance(e, ir.Binary):
        a, b = map_expr(e.left, fn), map_expr(e.right, fn)
        return e if a is e.left and b is e.right else replace(e, left=a, right=b)
    if isinstance(e, ir.Unary):
        a = map_expr(e.operand, fn)
        return e if a is e.operand else replace(e, operand=a)
    if isinstance(e, ir.Call):
        args = tuple(map_expr(a, fn) for a in e.args)
        return e if all(x is y for x, y in zip(args, e.args)) else replace(e, args=args)
    if isinstance(e, ir.Within):
        v, t, g = (map_expr(x, fn) for x in (e.value, e.tolerance, e.target))
        same = v is e.value and t is e.tolerance and g is e.target
        return e if same else replace(e, value=v, tolerance=t, target=g)
    return e


class Pass:
    """A step of lowering over one scenario's draft (:class:`~irqlab.dsl.drafting.Drafter`,
    :class:`~irqlab.dsl.building.Builder`); its errors go to the loader's sink."""

    def __init__(self, loader: Loader, draft: Draft) -> None:
        self.l = loader
        self.d = draft

    def err(self, message: str, span: Span | None, hint: str | None = None, **parts) -> None:
        self.l.err(message, span, hint, **parts)
