"""Named parameters, expressions and dotted paths: from a lowered scenario to a
resolved one (no :class:`~irqlab.ir.Expr` left), with overrides applied.

Interface (pure Python, no numpy):

``paths(scenario) -> dict[str, PathInfo]``
    every sweepable value by canonical dotted path (see :mod:`irqlab.ir`),
    with its current value, its kind (``number``/``time``/``frequency``/
    ``choice``/``bool``/``str``), the allowed choices, and its span.

``canonical_path(scenario, path, span=None) -> str``
    the canonical form of a user-written path (accepting shorthands such as
    ``qemu_eoi_throttle.threshold`` or a bare named parameter ``rate``); a
    ScenarioError with a did-you-mean at ``span`` if it names nothing.

``evaluate(expr, env) -> Quantity | str | bool``
    evaluate an expression with units (``env``: name -> value); a
    ScenarioError at the offending node's span on a dimension clash or an
    unknown name.

``resolve(scenario, overrides=None) -> Scenario``
    apply ``{path: value}`` overrides (values as Quantity/str/bool/int/float,
    or text to parse such as ``"10ms"``), evaluate named parameters and every
    expression, check each value against its declared type and range, and
    return the resolved scenario.

Shorthands (``canonical_path``): a path that is not canonical names the
named parameter ``param.<path>`` if there is one, else the one canonical path
it is a dotted suffix of (``qemu_eoi_throttle.threshold``, ``uhci.vector``,
``tsc``); two candidates are an error that lists them.

Override values: ``Quantity``/``str``/``bool`` as they are; a Python ``int`` or
``float`` is a plain number, or base units (seconds, Hz) where the path is a
time or a frequency; text is parsed as a literal (``10ms``, ``0x50``,
``2.5GHz``, ``1000 cycles``, ``split``, ``on``) or, failing that, as an
expression of the scenario language (``2 * rate``).

Errors in a resolve for a sweep point point at the sweep's axis (or sample
dimension, or derived value) that sets the path, else where the value is
written in the scenario.
"""

from __future__ import annotations

import math
import os
import re
import weakref
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterator, Mapping

from irqlab import ir
from irqlab.errors import NO_SPAN, ErrorSink, ScenarioError, Span, did_you_mean
from irqlab.ir import Binary, Call, Expr, Name, Num, Quantity, Unary, Within

KINDS = ("number", "time", "frequency", "choice", "bool", "str")
BOOL_WORDS = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}

TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0}
FREQ_UNITS = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}  # matched case-insensitively
CYCLE_UNITS = ("cycles", "cycle")
_TIME_EXP = {"ns": -9, "us": -6, "µs": -6, "μs": -6, "ms": -3, "s": 0}
_FREQ_EXP = {"hz": 0, "khz": 3, "mhz": 6, "ghz": 9}
UNIT_WORDS = "ns, us (µs), ms, s; Hz, kHz, MHz, GHz; cycles"
#: the engine keeps times as int64 picoseconds: no time may exceed this many seconds
MAX_TIME_S = (2**63 - 1) / 1e12
#: the engine keeps whole numbers as int64
MAX_INT = 2**63 - 1

FUNCTIONS = ("min", "max", "abs", "sqrt", "log2", "log10", "floor", "ceil", "round", "if")
QUANTIFIERS = ("all", "any", "mean", "fraction")  # over replications, in expect blocks only

# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Spec:
    """What a value must be: kind, whole number or not, inclusive range in base
    units, choices. ``store`` is how the IR keeps it: ``int`` (a plain Python
    int), ``quantity`` or ``raw`` (str/bool as they are)."""

    kind: str
    integer: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    store: str = "quantity"
    hex: bool = False
    file: bool = False
    doc: str = ""
    # file values: called as validate(absolute_path, span) to check the file's contents
    validate: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PathInfo:
    """One sweepable value: its canonical path, current value and what it must be."""

    path: str
    value: Any
    kind: str
    choices: tuple[str, ...] = ()
    span: Span = NO_SPAN
    integer: bool = False
    min: float | None = None
    max: float | None = None
    doc: str = ""
    spec: Spec | None = None


def _int(lo: float | None = None, hi: float | None = None, doc: str = "", hexa: bool = False) -> Spec:
    return Spec("number", integer=True, min=lo, max=hi, store="int", hex=hexa, doc=doc)


MACHINE_SPECS: dict[str, Spec] = {
    "irqchip": Spec("choice", choices=ir.IRQCHIP_MODES, store="raw",
                    doc="kernel: IOAPIC inside KVM; split: IOAPIC in userspace (QEMU)"),
    "apicv": Spec("bool", store="raw", doc="APIC virtualization (EOI virtualization, EOI-exit bitmap)"),
    "x2apic": Spec("bool", store="raw", doc="x2APIC mode (EOI as an MSR write)"),
    "suppress_eoi_broadcast": Spec("choice", choices=ir.SUPPRESS_MODES, store="raw",
                                   doc="Directed EOI: off, quirk (advertised, ignored), on"),
    "tsc": Spec("frequency", min=1.0, doc="TSC frequency (converts cycles to time)"),
    "preemption_timer_rate": _int(0, 31, "VMX preemption timer ticks every 2^rate TSC cycles"),
    "vcpus": _int(1, 4096, "number of vCPUs (default: the number of vcpu blocks)"),
    "ioapic_pins": _int(1, 256, "IOAPIC pins (gsi 0 .. pins-1)"),
    "ack_on_exit": Spec("bool", store="raw", doc="L1 uses 'acknowledge interrupt on exit'"),
    "vendor": Spec("choice", choices=ir.VENDORS, store="raw", doc="intel (VMX) or amd (SVM)"),
    "resample_on_unmask": Spec("bool", store="raw",
                               doc="KVM resamples a VFIO INTx pin on unmask (fef8f2b90edb)"),
    "lazy_eoi": Spec("choice", choices=ir.LAZY_EOI, store="raw",
                     doc="KVM's lazy IOAPIC EOI with APICv/AVIC: off, edge (8be8f932e3db), all (f458d039db7e)"),
    "eoi_scan": Spec("choice", choices=ir.EOI_SCANS, store="raw",
                     doc="KVM's EOI-exit bitmap rescan after a route change: pending_pir (f3ced000a2df), "
                         "pending (0fc5a36dd6b3/fceb3a36c29a), route (neither)"),
    "rte_update": Spec("choice", choices=ir.RTE_UPDATES, store="raw",
                       doc="QEMU on a redirection write: routes_first (54ad31fb0a0a) or service_first"),
    "idle": Spec("bool", store="raw", doc="vCPUs run their devices' work, then HLT (idle vCPUs)"),
    "halt_poll": Spec("time", min=0.0, doc="KVM's halt_poll_ns: the longest halt-polling"),
    "halt_poll_grow": _int(0, 1000, "KVM's halt_poll_ns_grow factor"),
    "halt_poll_grow_start": Spec("time", min=0.0, doc="KVM's halt_poll_ns_grow_start"),
    "halt_poll_shrink": _int(0, 1000, "KVM's halt_poll_ns_shrink divisor"),
    "wakeup": Spec("time", min=0.0, doc="wake-up latency of a blocked (halted) vCPU thread"),
    "apic_dfr": Spec("choice", choices=("flat", "cluster"), store="raw",
                     doc="xAPIC logical destination model (DFR): flat or cluster"),
    "vector_hashing": Spec("bool", store="raw", doc="KVM picks a lowest-priority target by vector hashing"),
    "tpr": _int(0, 0xFF, "task priority of the receiving level (blocks vectors of class <= tpr >> 4)", hexa=True),
    "l2_exit_every": Spec("time", min=0.0, doc="nested: L2 execution between two exits L1 handles (0: none)"),
    "defer_svi": Spec("bool", store="raw", doc="KVM updates vmcs01's SVI after an EOI emulated for L2 (04bc93cf49d1)"),
    "vppr_refresh": Spec("bool", store="raw", doc="nested VM-Enter refreshes L1's vPPR (KVM cda3960fbcc5)"),
}

ACTION_TIME = Spec("time", min=0.0, doc="when a guest action happens (at), or its period (every; 0: once)")

DEVICE_SPECS: dict[str, Spec] = {
    "vector": _int(0x10, 0xFF, "LAPIC vector (0x10-0xFF)", hexa=True),
    "delivery": Spec("choice", choices=ir.DELIVERIES, store="raw", doc="ioapic (a pin) or msi"),
    "gsi": _int(0, 255, "IOAPIC pin"),
    "trigger": Spec("choice", choices=ir.TRIGGERS, store="raw", doc="edge or level"),
    "polarity": Spec("choice", choices=ir.POLARITIES, store="raw", doc="active high or low"),
    "dest": _int(0, 4095, "destination vCPU"),
    "serviced_by": Spec("choice", choices=ir.LEVELS, store="raw", doc="level whose driver services it"),
    "service": Spec("time", min=0.0, doc="the driver's service time"),
    "lowers_line": Spec("bool", store="raw", doc="the driver lowers the line (false: never)"),
    "vfio": Spec("bool", store="raw", doc="a passed-through device: VFIO INTx through KVM's resampling irqfd"),
    "work": Spec("time", min=0.0, doc="idle vCPUs: guest work each handled service makes available"),
    "work_on": _int(-1, 4095, "idle vCPUs: the vCPU that runs the work (-1: the servicing one; "
                    "another gets a reschedule IPI)"),
    "dest_mode": Spec("choice", choices=("physical", "logical"), store="raw",
                      doc="destination mode: physical (an APIC ID, 0xff all) or logical (a mask)"),
    "delivery_mode": Spec("choice", choices=("fixed", "lowest"), store="raw",
                          doc="fixed (every matching LAPIC) or lowest priority (one of them)"),
}

RUN_SPECS: dict[str, Spec] = {
    "duration": Spec("time", min=1e-12, doc="simulated time per run"),
    "replications": _int(1, 10**9, "runs per point (seeds)"),
    "seed": _int(0, 2**63 - 1, "base seed"),
    "max_events": _int(1, 2**62, "event cap per run"),
    "livelock_window": Spec("time", min=1e-12, doc="window of no progress that counts as a livelock"),
    "histograms": Spec("bool", store="raw", doc="keep each device's latency histogram per run"),
    "backend": Spec("str", store="raw", doc="executor backend"),
}

COST_SPEC = Spec("time", min=0.0, doc="transition cost")

_PARAM_KIND = {"int": "number", "float": "number", "time": "time", "frequency": "frequency",
               "bool": "bool", "choice": "choice", "str": "str", "file": "str"}


def plugin_spec(p: Any) -> Spec:
    """The :class:`Spec` of a declared plugin :class:`~irqlab.plugins.api.Param`."""
    kind = _PARAM_KIND[p.type]
    store = "quantity" if kind in ("number", "time", "frequency") else "raw"
    return Spec(kind, integer=p.type == "int", min=p.min, max=p.max, choices=tuple(p.choices),
                store=store, file=p.type == "file", doc=p.doc, validate=getattr(p, "validate", None))


# --------------------------------------------------------------------------- literals


_NUM_RE = re.compile(r"(0[xX][0-9a-fA-F_]*|[0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?)"
                     r"[ \t]*([A-Za-zµμ][A-Za-z0-9_]*)?\Z")


@lru_cache(maxsize=8192)
def parse_quantity(text: str) -> Quantity:
    """A number with an optional unit (``10us``, ``0x50``, ``2.5GHz``, ``1000 cycles``)
    as a :class:`~irqlab.ir.Quantity` in base units; ValueError with a message if
    it is not one."""
    m = _NUM_RE.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a number")
    num, unit = m.group(1), (m.group(2) or "").strip()
    spelled = f"{num} {unit}" if unit in CYCLE_UNITS else f"{num}{unit}"
    try:
        if num[:2] in ("0x", "0X"):
            if len(num) < 3:
                raise ValueError
            exact = Decimal(int(num[2:], 16))
        else:
            exact = Decimal(num)
    except (ValueError, ArithmeticError):
        raise ValueError(f"'{num}' is not a valid number") from None
    scale = None
    if not unit:
        unit_name, scale = "", 0
    elif unit in TIME_UNITS:
        unit_name, scale = "s", _TIME_EXP[unit]
    elif unit.lower() in FREQ_UNITS:
        unit_name, scale = "Hz", _FREQ_EXP[unit.lower()]
    elif unit in CYCLE_UNITS:
        unit_name, scale = "cycles", 0
    if scale is not None:
        try:
            value = float(exact.scaleb(scale))
        except (ValueError, ArithmeticError):
            value = math.inf
        if not math.isfinite(value):
            raise ValueError(f"'{num}' is too large")
        return Quantity(value, unit_name, spelled)
    hint = did_you_mean(unit, [*TIME_UNITS, "Hz", "kHz", "MHz", "GHz", "cycles"])
    raise ValueError(f"unknown unit '{unit}' in '{text.strip()}'" + (f"; {hint}" if hint else
                     f" (units: {UNIT_WORDS})"))


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_value(text: str, span: Span | None = None) -> Any:
    """Text given on the command line or in a point: a literal, a word, or an expression."""
    t = text.strip()
    if _WORD_RE.match(t):
        return t
    if _NUM_RE.match(t):
        try:
            return parse_quantity(t)
        except ValueError as e:
            raise ScenarioError(str(e), span) from None
    if len(t) >= 2 and t[0] == t[-1] == '"':
        return t[1:-1]
    from irqlab.dsl.syntax import parse_expression

    return parse_expression(t, span)


# --------------------------------------------------------------------------- describing values


def describe(value: Any) -> str:
    """A value as the user would read it in a message."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Quantity):
        what = {"": "the number", "s": "the time", "cycles": "the time", "Hz": "the frequency"}[value.unit]
        return f"{what} {value}"
    if isinstance(value, str):
        return f"the word '{value}'"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, Expr):
        return "an expression"
    return repr(value)


def expected(spec: Spec) -> str:
    """What a spec accepts, in words."""
    if spec.kind == "number":
        return "a whole number" if spec.integer else "a number"
    if spec.kind == "time":
        return "a time such as 10us or 1000 cycles"
    if spec.kind == "frequency":
        return "a frequency such as 50kHz"
    if spec.kind == "bool":
        return "on or off"
    if spec.kind == "choice" and spec.choices:
        return "one of " + ", ".join(spec.choices)
    return "a word or a quoted string"


def _show(v: float, spec: Spec) -> str:
    if v == 0:
        return "0"
    if spec.kind == "time":
        return ir.format_quantity(Quantity(v, "s"))
    if spec.kind == "frequency":
        return ir.format_quantity(Quantity(v, "Hz"))
    if spec.hex and float(v).is_integer():
        return f"0x{int(v):X}"
    return ir.format_quantity(Quantity(v))


def check_value(value: Any, spec: Spec, what: str, span: Span | None = None,
                tsc_hz: float | None = None, base_dir: str | None = None) -> Any:
    """``value`` (evaluated: Quantity/str/bool, or a Python number) checked against
    ``spec`` and converted to how the IR stores it; a ScenarioError at ``span``."""
    if isinstance(value, Expr):
        raise ScenarioError(f"{what} is still an unevaluated expression", span)
    kind = spec.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in BOOL_WORDS:
            return BOOL_WORDS[value.lower()]
        raise ScenarioError(f"{what} takes on or off, not {describe(value)}", span,
                            hint=did_you_mean(value, BOOL_WORDS) if isinstance(value, str) else None)
    if kind in ("choice", "str"):
        if isinstance(value, bool):
            value = "on" if value else "off"
        if not isinstance(value, str):
            raise ScenarioError(f"{what} takes {expected(spec)}, not {describe(value)}", span)
        if kind == "choice" and spec.choices and value not in spec.choices:
            raise ScenarioError(f"{what} cannot be '{value}'", span,
                                hint=did_you_mean(value, spec.choices) or
                                f"it is one of {', '.join(spec.choices)}")
        if spec.file and value and not os.path.isabs(value):
            value = os.path.normpath(os.path.join(base_dir or os.getcwd(), value))
        if spec.file and value and spec.validate is not None:
            spec.validate(value, span)
        return value
    # numeric kinds
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        base = {"number": "", "time": "s", "frequency": "Hz"}[kind]
        value = Quantity(float(value), base)
    if not isinstance(value, Quantity):
        raise ScenarioError(f"{what} takes {expected(spec)}, not {describe(value)}", span)
    if value.unit == "" and value.value == 0 and kind in ("time", "frequency"):
        value = Quantity(0.0, "s" if kind == "time" else "Hz", value.text or "0")  # 0 needs no unit
    if value.dimension != kind:
        hint = None
        if value.unit == "" and kind in ("time", "frequency"):
            hint = f"write a unit, e.g. {value}{'us' if kind == 'time' else 'kHz'}"
        raise ScenarioError(f"{what} takes {expected(spec)}, not {describe(value)}", span, hint=hint)
    if not math.isfinite(value.value):
        raise ScenarioError(f"{what} is not a finite number", span)
    base_value = value.value
    if value.unit == "cycles" and tsc_hz:
        base_value = value.value / tsc_hz
    if kind == "time" and (value.unit != "cycles" or tsc_hz) and abs(base_value) > MAX_TIME_S:
        raise ScenarioError(f"{what} {value} is beyond the range of times the engine can hold",
                            span, hint=f"times are int64 picoseconds: at most {MAX_TIME_S:.6g} s "
                            f"(about {MAX_TIME_S / 86400:.0f} days)")
    if spec.integer and abs(value.value) > MAX_INT:
        raise ScenarioError(f"{what} {_shown(value, spec)} is beyond the range of whole numbers "
                            "the engine can hold", span, hint=f"at most {MAX_INT} (int64)")
    lo, hi = spec.min, spec.max
    if value.unit == "cycles" and not tsc_hz:
        lo = hi = None  # checked again once the TSC is known
    below = lo is not None and base_value < lo - 1e-12 * abs(lo)  # relative: float noise only
    above = hi is not None and base_value > hi + 1e-12 * abs(hi)
    if below or above:
        if kind == "number" and lo is not None and hi is not None:
            raise ScenarioError(f"{what} {_shown(value, spec)} is outside "
                                f"{_show(lo, spec)}-{_show(hi, spec)}", span)
        if below:
            raise ScenarioError(f"{what} must be at least {_show(lo, spec)}; got {value}", span)
        raise ScenarioError(f"{what} must be at most {_show(hi, spec)}; got {value}", span)
    if spec.integer:
        r = round(value.value)
        if abs(value.value - r) > 1e-9:
            raise ScenarioError(f"{what} must be a whole number; got {value}", span)
        if spec.store == "int":
            return int(r)
        return Quantity(float(r), value.unit, value.text)
    if spec.store == "int":  # pragma: no cover - int stores are integer specs
        return int(round(value.value))
    return value


def _shown(value: Quantity, spec: Spec) -> str:
    if spec.hex and value.unit == "" and float(value.value).is_integer() and value.value >= 0 and not value.text:
        return f"0x{int(value.value):X}"
    return str(value)


# --------------------------------------------------------------------------- evaluation


class _EvalError(Exception):
    pass


def evaluate(expr: Any, env: Mapping[str, Any], words: Any = ()) -> Any:
    """The value of ``expr`` (Quantity, str or bool) given ``env`` (name -> value).

    Names are looked up in ``env`` (bare parameter names and dotted paths);
    a name that is not there is a *word* (a choice such as ``split``) if it is
    in ``words`` or compared with ``==``/``!=`` to a word; otherwise it is an
    error with a did-you-mean. Units follow the physics: a time times a
    frequency is a number, a number divided by a time a frequency; cycles mix
    with seconds through ``machine.tsc`` in ``env``.
    """
    if not isinstance(expr, Expr):
        return _plain(expr)
    try:
        return _Evaluator(env, frozenset(words)).eval(expr)
    except RecursionError:
        raise ScenarioError("expression nested too deeply", expr.span) from None


def _plain(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, (str, Quantity)):
        return v
    if isinstance(v, (int, float)):
        return Quantity(float(v))
    return v


class _Evaluator:
    def __init__(self, env: Mapping[str, Any], words: frozenset[str]) -> None:
        self.env = env
        self.words = words

    def eval(self, e: Expr) -> Any:
        if isinstance(e, Num):
            return e.value
        if isinstance(e, Name):
            return self.name(e)
        if isinstance(e, Unary):
            return self.unary(e)
        if isinstance(e, Binary):
            return self.binary(e)
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, Within):
            return self.within(e)
        if isinstance(e, (Quantity, str, bool)):  # pragma: no cover - tolerated
            return e
        raise ScenarioError(f"cannot evaluate {type(e).__name__}", getattr(e, "span", None))

    def name(self, e: Name) -> Any:
        try:
            found = e.name in self.env
        except ScenarioError:
            raise
        if found:
            return _plain(self.env[e.name])
        if e.name in self.words:
            return e.name
        known = [k for k in self.env if "." not in k] if hasattr(self.env, "__iter__") else []
        hint = did_you_mean(e.name, known)
        if "." in e.name:
            hint = hint or did_you_mean(e.name, list(self.env))
        raise ScenarioError(f"unknown name '{e.name}'", e.span, hint=hint,
                            presumes=("", *e.name.split(".")), presumes_suffix=True)

    def unary(self, e: Unary) -> Any:
        v = self.eval(e.operand)
        if e.op == "not":
            if not isinstance(v, bool):
                raise ScenarioError(f"'not' needs true or false, not {describe(v)}", e.span)
            return not v
        if not isinstance(v, Quantity):
            raise ScenarioError(f"'{e.op}' needs a number, not {describe(v)}", e.span)
        if e.op == "%":
            if v.unit:
                raise ScenarioError(f"a percentage needs a plain number, not {describe(v)}", e.span)
            return Quantity(v.value / 100)
        return Quantity(-v.value if e.op == "-" else v.value, v.unit)

    def within(self, e: Within) -> bool:
        """``value within tolerance of target``: a percentage tolerance is relative to the target."""
        a, b = self.eval(e.value), self.eval(e.target)
        for v, node in ((a, e.value), (b, e.target)):
            if not isinstance(v, Quantity):
                raise ScenarioError(f"'within' needs numbers, not {describe(v)}", node.span)
        x, y, unit = self.align(a, b, e)
        tol = self.eval(e.tolerance)
        if not isinstance(tol, Quantity):
            raise ScenarioError(f"a tolerance is a number, not {describe(tol)}", e.tolerance.span)
        if isinstance(e.tolerance, Unary) and e.tolerance.op == "%":
            allowed = tol.value * abs(y)
        else:
            if tol.unit == "" and tol.value == 0:
                tol = Quantity(0.0, unit)
            _, allowed, _ = self.align(Quantity(y, unit), tol, e.tolerance)
        return abs(x - y) <= abs(allowed) * (1 + 1e-12)

    def _word_or_eval(self, e: Expr, other: Any) -> Any:
        if isinstance(e, Name) and isinstance(other, str) and e.name not in self.env:
            return e.name
        return self.eval(e)

    def binary(self, e: Binary) -> Any:
        op = e.op
        if op in ("and", "or"):
            a = self.eval(e.left)
            if not isinstance(a, bool):
                raise ScenarioError(f"'{op}' needs true or false on its left, not {describe(a)}", e.left.span)
            if (op == "and" and not a) or (op == "or" and a):
                return a
            b = self.eval(e.right)
            if not isinstance(b, bool):
                raise ScenarioError(f"'{op}' needs true or false on its right, not {describe(b)}", e.right.span)
            return b
        if op in ("==", "!="):
            if isinstance(e.left, Name) and e.left.name not in self.env and e.left.name not in self.words:
                b = self.eval(e.right)
                a = self._word_or_eval(e.left, b)
            else:
                a = self.eval(e.left)
                b = self._word_or_eval(e.right, a)
            if isinstance(a, Quantity) and isinstance(b, Quantity):
                x, y, _ = self.align(a, b, e)
                eq = math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0) or x == y
            elif type(a) is type(b):
                eq = a == b
            else:
                raise ScenarioError(f"cannot compare {describe(a)} with {describe(b)}", e.span)
            return eq if op == "==" else not eq
        a = self.eval(e.left)
        b = self.eval(e.right)
        if not isinstance(a, Quantity) or not isinstance(b, Quantity):
            bad = a if not isinstance(a, Quantity) else b
            raise ScenarioError(f"'{op}' needs numbers, not {describe(bad)}", e.span)
        try:
            return self.arith(op, a, b, e)
        except (OverflowError, ValueError) as ex:
            raise ScenarioError(f"cannot compute this: {ex}", e.span) from None
        except ZeroDivisionError:
            raise ScenarioError("division by zero", e.span) from None

    # units: exponent of seconds (s: 1, Hz: -1, number: 0); cycles handled apart
    _EXP = {"": 0, "s": 1, "Hz": -1}
    _UNIT = {0: "", 1: "s", -1: "Hz"}

    def tsc(self, e: Expr) -> float:
        t = self.env.get("machine.tsc") if hasattr(self.env, "get") else None
        if isinstance(t, Quantity) and t.unit == "Hz" and t.value > 0:
            return t.value
        raise ScenarioError("cannot mix cycles with other units here: the TSC frequency "
                            "(machine.tsc) is not known", e.span)

    def to_seconds(self, q: Quantity, e: Expr) -> Quantity:
        return Quantity(q.value / self.tsc(e), "s") if q.unit == "cycles" else q

    def align(self, a: Quantity, b: Quantity, e: Expr) -> tuple[float, float, str]:
        """Both in one unit for + - comparisons min max."""
        if a.unit == b.unit:
            return a.value, b.value, a.unit
        if {a.unit, b.unit} == {"s", "cycles"}:
            return self.to_seconds(a, e).value, self.to_seconds(b, e).value, "s"
        raise ScenarioError(f"cannot combine {describe(a)} with {describe(b)}: "
                            f"a {a.dimension} and a {b.dimension}", e.span)

    def arith(self, op: str, a: Quantity, b: Quantity, e: Expr) -> Any:
        if op in ("+", "-", "<", "<=", ">", ">=", "%"):
            x, y, unit = self.align(a, b, e)
            if op == "+":
                return self.finite(Quantity(x + y, unit), e)
            if op == "-":
                return self.finite(Quantity(x - y, unit), e)
            if op == "%":
                return Quantity(math.fmod(x, y) if y else _zero(), unit)
            return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
        if op == "**":
            if a.unit or b.unit:
                raise ScenarioError("'**' needs plain numbers", e.span)
            return self.finite(Quantity(float(a.value) ** float(b.value)), e)
        if op in ("*", "/", "//"):
            # cycles stay cycles when scaled by a plain number
            if a.unit == "cycles" or b.unit == "cycles":
                if op == "*" and (a.unit == "" or b.unit == ""):
                    return self.finite(Quantity(a.value * b.value, "cycles"), e)
                if op in ("/", "//") and b.unit == "":
                    v = a.value / b.value if b.value else _zero()
                    return self.finite(Quantity(math.floor(v) if op == "//" else v, "cycles"), e)
                if op in ("/", "//") and a.unit == b.unit == "cycles":
                    v = a.value / b.value if b.value else _zero()
                    return self.finite(Quantity(math.floor(v) if op == "//" else v), e)
                a, b = self.to_seconds(a, e), self.to_seconds(b, e)
            ea, eb = self._EXP[a.unit], self._EXP[b.unit]
            exp = ea + eb if op == "*" else ea - eb
            if exp not in self._UNIT:
                raise ScenarioError(f"{describe(a)} {op} {describe(b)} has no unit irqlab knows "
                                    "(times, frequencies and plain numbers only)", e.span)
            if op == "*":
                v = a.value * b.value
            else:
                if not b.value:
                    raise ZeroDivisionError
                v = a.value / b.value
                if op == "//":
                    v = math.floor(v)
            return self.finite(Quantity(v, self._UNIT[exp]), e)
        raise ScenarioError(f"unknown operator '{op}'", e.span)

    def finite(self, q: Quantity, e: Expr) -> Quantity:
        if not math.isfinite(q.value):
            raise ScenarioError("the result is too large", e.span)
        return q

    def quantify(self, e: Call) -> Any:
        """A quantifier over replications; only an expectation's evaluator has them."""
        raise ScenarioError(f"{e.func}() ranges over a run's replications: it belongs in an expect block",
                            e.span)

    def call(self, e: Call) -> Any:
        f = e.func
        if f in QUANTIFIERS:
            return self.quantify(e)
        if f not in FUNCTIONS:
            raise ScenarioError(f"unknown function '{f}'", e.span,
                                hint=did_you_mean(f, FUNCTIONS) or f"functions: {', '.join(FUNCTIONS)}")
        if f == "if":
            if len(e.args) != 3:
                raise ScenarioError("if(condition, then, else) takes three arguments", e.span)
            c = self.eval(e.args[0])
            if not isinstance(c, bool):
                raise ScenarioError(f"the condition of if() must be true or false, not {describe(c)}",
                                    e.args[0].span)
            return self.eval(e.args[1] if c else e.args[2])
        args = [self.eval(a) for a in e.args]
        for a, node in zip(args, e.args):
            if not isinstance(a, Quantity):
                raise ScenarioError(f"{f}() needs numbers, not {describe(a)}", node.span)
        if f in ("min", "max"):
            if not args:
                raise ScenarioError(f"{f}() needs at least one argument", e.span)
            best = args[0]
            for a in args[1:]:
                x, y, _ = self.align(best, a, e)
                if (y < x) if f == "min" else (y > x):
                    best = a
            return best
        if len(args) != 1:
            raise ScenarioError(f"{f}() takes one argument", e.span)
        a = args[0]
        if f == "abs":
            return Quantity(abs(a.value), a.unit)
        if a.unit:
            raise ScenarioError(f"{f}() needs a plain number, not {describe(a)}", e.span)
        try:
            if f == "sqrt":
                return Quantity(math.sqrt(a.value))
            if f == "log2":
                return Quantity(math.log2(a.value))
            if f == "log10":
                return Quantity(math.log10(a.value))
            if f == "floor":
                return Quantity(float(math.floor(a.value)))
            if f == "ceil":
                return Quantity(float(math.ceil(a.value)))
            return Quantity(float(round(a.value)))
        except (ValueError, OverflowError):
            raise ScenarioError(f"{f}({a}) is undefined", e.span) from None


def _zero() -> float:
    raise ZeroDivisionError


# --------------------------------------------------------------------------- paths


def _plugin_specs(use: ir.PluginUse) -> dict[str, Spec]:
    try:
        from irqlab.plugins.registry import registry

        entry = registry().find(use.kind, use.name)
    except Exception:  # noqa: BLE001 - a broken registry must not break paths()
        entry = None
    if entry is None or entry.cls is None:
        return {}
    return {p.name: plugin_spec(p) for p in entry.cls.params}


def _spec_of_value(v: Any) -> Spec:
    if isinstance(v, bool):
        return Spec("bool", store="raw")
    if isinstance(v, Quantity):
        return Spec(v.dimension if v.unit else "number")
    if isinstance(v, str):
        return Spec("choice", store="raw")
    if isinstance(v, int):
        return Spec("number", store="int", integer=True)
    return Spec("number")


def _raw_infos(scenario: ir.Scenario) -> dict[str, PathInfo]:
    """Every path with its value as it is in ``scenario`` (maybe an Expr)."""
    out: dict[str, PathInfo] = {}

    def add(path: str, value: Any, spec: Spec, span: Span) -> None:
        out[path] = PathInfo(path, value, spec.kind, spec.choices, span, spec.integer, spec.min,
                             spec.max, spec.doc, spec)

    m = scenario.machine
    for f, spec in MACHINE_SPECS.items():
        add(f"machine.{f}", getattr(m, f), spec, ir.field_span(m, f))
    for a in scenario.costs:
        add(f"costs.{a.name}", a.value, COST_SPEC, a.span)

    def plugin(prefix: str, use: ir.PluginUse | None) -> None:
        if use is None:
            return
        specs = _plugin_specs(use)
        for a in use.args:
            add(f"{prefix}.{a.name}", a.value, specs.get(a.name) or _spec_of_value(a.value),
                a.span if a.span != NO_SPAN else use.span)

    for d in scenario.devices:
        base = f"device.{d.name}"
        for f, spec in DEVICE_SPECS.items():
            v = getattr(d, f)
            if f == "gsi" and v is None:
                continue
            add(f"{base}.{f}", v, spec, ir.field_span(d, f))
        plugin(f"{base}.arrival", d.arrival)
        plugin(f"{base}.service", d.service_dist)
        plugin(f"{base}.model", d.model)
        plugin(f"{base}.policy", d.policy)
    for v in scenario.vcpus:
        for lv in v.levels:
            plugin(f"vcpu.{v.index}.{lv.level}.policy", lv.policy)
    for mu in scenario.mitigations:
        plugin(f"mitigation.{mu.name}", mu)
    r = scenario.run
    for f, spec in RUN_SPECS.items():
        add(f"run.{f}", getattr(r, f), spec, ir.field_span(r, f))
    for p in scenario.params:
        add(f"param.{p.name}", p.value, Spec("param", store="raw"), p.span)
    for k, act in enumerate(scenario.actions):  # guest actions (irqlab.dsl.routes)
        add(f"action.{k}.at", act.at, ACTION_TIME, act.span)
        add(f"action.{k}.every", act.every, ACTION_TIME, act.span)
    return out


def paths(scenario: ir.Scenario) -> dict[str, PathInfo]:
    """Every sweepable value of ``scenario`` by canonical path.

    Named parameters (``param.<name>``) get the kind of their value, evaluated
    with the scenario's own values when it is an expression.
    """
    infos = _raw_infos(scenario)
    params = [p for p in infos if p.startswith("param.")]
    if params:
        r = _Resolver(scenario, infos, {})
        for p in params:
            info = infos[p]
            try:
                v = r.get(p)
            except ScenarioError:
                v = info.value
            spec = _spec_of_value(v) if not isinstance(v, Expr) else Spec("number")
            infos[p] = replace(info, kind=spec.kind, spec=spec)
    return infos


def _suffix_index(infos: Mapping[str, PathInfo]) -> dict[str, list[str]]:
    idx: dict[str, list[str]] = {}
    for p in infos:
        parts = p.split(".")
        for i in range(1, len(parts)):
            idx.setdefault(".".join(parts[i:]), []).append(p)
    return idx


_PREFIXES = ("machine", "costs", "device", "vcpu", "mitigation", "run", "param", "action")


def canonical_path(scenario: ir.Scenario, path: str, span: Span | None = None) -> str:
    """The canonical dotted path ``path`` names in ``scenario`` (see the module doc)."""
    return _canonical(_raw_infos(scenario), path, span)


def _canonical(infos: Mapping[str, PathInfo], path: str, span: Span | None,
               index: dict[str, list[str]] | None = None) -> str:
    path = path.strip()
    if path in infos:
        return path
    if f"param.{path}" in infos:
        return f"param.{path}"
    head = path.split(".", 1)[0]
    if head not in _PREFIXES or "." not in path:
        cands = (index or _suffix_index(infos)).get(path, [])
        if len(cands) == 1:
            return cands[0]
        if len(cands) > 1:
            raise ScenarioError(f"'{path}' is ambiguous: it could be " + ", ".join(sorted(cands)), span,
                                hint="write the full path")
    hint = did_you_mean(path, list(infos) + [p[6:] for p in infos if p.startswith("param.")])
    if not hint:
        # a close suffix: 'qemu_eoi_throttle.treshold' -> 'qemu_eoi_throttle.threshold'
        sfx = list((index or _suffix_index(infos)).keys())
        close = did_you_mean(path, sfx)
        hint = close or _near_prefix_hint(path, infos)
    # what it names is undefined, and so is its owner when nothing in the scenario has
    # that owner (a mitigation never declared): later uses of either are echoes
    segs = tuple(path.split("."))
    owner = segs[:-1]
    known = owner and any(tuple(p.split("."))[:-1][-len(owner):] == owner for p in infos)
    part = ("", *(segs if known or not owner else owner))
    raise ScenarioError(f"no parameter '{path}' in this scenario", span, hint=hint,
                        breaks=(part,), presumes=("", *segs), presumes_suffix=True)


def _near_prefix_hint(path: str, infos: Mapping[str, PathInfo]) -> str | None:
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        pre = ".".join(parts[:i]) + "."
        under = sorted(p for p in infos if p.startswith(pre))
        if under:
            shown = ", ".join(p[len(pre):] for p in under[:8]) + (", ..." if len(under) > 8 else "")
            return f"'{pre[:-1]}' has: {shown}"
    return None


# --------------------------------------------------------------------------- resolving


class _Env(Mapping):
    """Names as expressions see them: bare parameter names and dotted paths,
    evaluated on demand."""

    def __init__(self, r: "_Resolver", span: Span | None) -> None:
        self.r = r
        self.span = span

    def _path(self, name: str) -> str | None:
        infos = self.r.infos
        if "." not in name:
            p = f"param.{name}"
            return p if p in infos else None
        if name in infos:
            return name
        try:
            return _canonical(infos, name, None, self.r.index)
        except ScenarioError:
            return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._path(name) is not None

    def __getitem__(self, name: str) -> Any:
        p = self._path(name)
        if p is None:
            raise KeyError(name)
        self.r.note_read(p)
        return self.r.get(p, self.span)

    def get(self, name: str, default: Any = None) -> Any:
        p = self._path(name)
        if p is None:
            return default
        self.r.note_read(p)
        try:
            return self.r.get(p, self.span)
        except ScenarioError:
            return default

    def __iter__(self) -> Iterator[str]:
        for p in self.r.infos:
            yield p[6:] if p.startswith("param.") else p

    def __len__(self) -> int:
        return len(self.r.infos)


class _Resolver:
    def __init__(self, scenario: ir.Scenario, infos: dict[str, PathInfo],
                 overrides: dict[str, tuple[Any, Span | None]]) -> None:
        self.scenario = scenario
        self.infos = infos
        self.overrides = overrides
        self.done: dict[str, Any] = {}
        self.active: list[str] = []
        self.reads: dict[str, set[str]] = {}  # path -> the paths its expression read
        self._index: dict[str, list[str]] | None = None
        self._words: frozenset[str] | None = None

    @property
    def index(self) -> dict[str, list[str]]:
        if self._index is None:
            self._index = _suffix_index(self.infos)
        return self._index

    def words_for(self, path: str) -> frozenset[str]:
        spec = self.infos[path].spec
        if spec is not None and spec.kind == "choice" and spec.choices:
            return frozenset(spec.choices)
        if spec is not None and spec.kind == "bool":
            return frozenset(BOOL_WORDS)
        if self._words is None:
            w: set[str] = set(BOOL_WORDS)
            for info in self.infos.values():
                w.update(info.choices)
            self._words = frozenset(w)
        return self._words

    def note_read(self, path: str) -> None:
        if self.active:
            self.reads.setdefault(self.active[-1], set()).add(path)

    def depends_on(self, path: str) -> set[str]:
        """Every path ``path``'s value was computed from, directly or not."""
        seen: set[str] = set()
        todo = list(self.reads.get(path, ()))
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.add(p)
                todo.extend(self.reads.get(p, ()))
        return seen

    def raw(self, path: str) -> Any:
        if path in self.overrides:
            return self.overrides[path][0]
        return self.infos[path].value

    def get(self, path: str, span: Span | None = None) -> Any:
        if path in self.done:
            return self.done[path]
        if path in self.active:
            cycle = self.active[self.active.index(path):] + [path]
            names = " -> ".join(p[6:] if p.startswith("param.") else p for p in cycle)
            raise ScenarioError(f"'{names.split(' -> ')[0]}' depends on itself: {names}",
                                span or self.infos[path].span)
        raw = self.raw(path)
        if isinstance(raw, Expr):
            self.active.append(path)
            try:
                v = evaluate(raw, _Env(self, raw.span), self.words_for(path))
            finally:
                self.active.pop()
        else:
            v = _plain(raw) if not isinstance(raw, int) or isinstance(raw, bool) else raw
        self.done[path] = v
        return v


def _span_for(path: str, info: PathInfo, overrides: dict[str, tuple[Any, Span | None]],
              value: Any) -> Span:
    if path in overrides and overrides[path][1] is not None:
        return overrides[path][1]  # type: ignore[return-value]
    if isinstance(value, Expr) and value.span != NO_SPAN:
        return value.span
    return info.span


def _what(path: str) -> str:
    return path[6:] if path.startswith("param.") else path


def sweep_spans(scenario: ir.Scenario, *, strict: bool = False) -> dict[str, Span]:
    """Canonical path -> the span of the first sweep axis, sample dimension or derived
    value that sets it. ``strict``: a path that names nothing is a ScenarioError at its
    span (otherwise it is left out)."""
    infos = _raw_infos(scenario) if strict else _tables(scenario)[0]
    return _sweep_spans(scenario, infos, strict)


def _sweep_spans(scenario: ir.Scenario, infos: dict[str, PathInfo], strict: bool = False) -> dict[str, Span]:
    sw = scenario.sweep
    if sw is None:
        return {}
    out: dict[str, Span] = {}
    index: dict[str, list[str]] | None = None

    def note(path: str, span: Span) -> None:
        nonlocal index
        if index is None:
            index = _suffix_index(infos)
        try:
            out.setdefault(_canonical(infos, path, span if strict else None, index), span)
        except ScenarioError:
            if strict:
                raise

    def walk(node: Any) -> None:
        if isinstance(node, ir.Axis):
            note(node.path, node.span)
        elif isinstance(node, ir.Sample):
            for d in node.dims:
                note(d.path, d.span)
        elif isinstance(node, (ir.Grid, ir.Zip, ir.Concat)):
            for item in node.items:
                walk(item)

    if sw.root is not None:
        walk(sw.root)
    for d in sw.derived:
        note(d.path, d.span)
    return out


# The path tables of the scenarios resolve() has seen, by identity: every point of a sweep
# resolves against the same base scenario. Entries go when their scenario does.
_TABLES: dict[int, tuple[Any, dict[str, PathInfo], dict[str, list[str]], dict[str, Span]]] = {}
# The scenarios resolve() returned (so the engine need not look for expressions in them).
_RESOLVED: "weakref.WeakValueDictionary[int, ir.Scenario]" = weakref.WeakValueDictionary()


def _tables(scenario: ir.Scenario):
    """(paths, suffix index, sweep spans) of ``scenario``, computed once per scenario object."""
    key = id(scenario)
    hit = _TABLES.get(key)
    if hit is not None and hit[0]() is scenario:
        return hit[1:]
    infos = _raw_infos(scenario)
    entry = (weakref.ref(scenario, lambda _, k=key: _TABLES.pop(k, None)), infos,
             _suffix_index(infos), _sweep_spans(scenario, infos))
    _TABLES[key] = entry
    return entry[1:]


def is_resolved(scenario: ir.Scenario) -> bool:
    """True if ``scenario`` is a result of :func:`resolve` (it holds no expression)."""
    return _RESOLVED.get(id(scenario)) is scenario


def resolve(scenario: ir.Scenario, overrides: Mapping[str, Any] | None = None, *,
            spans: Mapping[str, Span] | None = None,
            key_spans: Mapping[str, Span] | None = None) -> ir.Scenario:
    """``scenario`` with ``overrides`` applied, every expression evaluated and every
    value checked (type, unit, range, choices) and the scenario's cross-checks
    re-run; the sweep block is kept as it is. All problems are reported in one
    ScenarioError. ``spans`` (path -> span) says where an override's value came
    from; ``key_spans`` where its path was written (an unknown path is reported
    there; default: ``spans``)."""
    return _resolve(scenario, overrides, spans, key_spans=key_spans)


def _resolve(scenario: ir.Scenario, overrides: Mapping[str, Any] | None = None,
             spans: Mapping[str, Span] | None = None, infos: dict[str, PathInfo] | None = None,
             checked: bool = False, key_spans: Mapping[str, Span] | None = None) -> ir.Scenario:
    """resolve(), given the scenario's path table; ``checked``: its literal values were
    checked when it was lowered, so only expressions and overrides need checking."""
    sink = ErrorSink()
    index: dict[str, list[str]] | None = None
    if infos is None:
        cached, index, sweep_spans = _tables(scenario)
        infos = dict(cached)
    else:
        sweep_spans = _sweep_spans(scenario, infos) if overrides else {}
    ov: dict[str, tuple[Any, Span | None]] = {}
    for key, raw in (overrides or {}).items():
        given = (spans or {}).get(key)
        try:
            if index is None:
                index = _suffix_index(infos)
            path = _canonical(infos, key, (key_spans or {}).get(key, given), index)
        except ScenarioError as e:
            sink.extend(e)
            continue
        span = given or sweep_spans.get(path) or infos[path].span
        try:
            value = _override_value(raw, infos[path], span)
        except ScenarioError as e:
            sink.extend(e)
            continue
        ov[path] = (value, span)
    r = _Resolver(scenario, infos, ov)
    tsc = _tsc(r)
    base_dir = _base_dir(scenario)
    out: dict[str, Any] = {}
    failed: dict[str, ScenarioError] = {}  # reported after the loop, echoes left out
    for path, info in infos.items():
        raw = r.raw(path)
        try:
            v = r.get(path)
        except ScenarioError as e:
            failed[path] = e
            out[path] = info.value if not isinstance(info.value, Expr) else None
            continue
        spec = info.spec
        if spec is None or spec.kind == "param":
            if path in ov and not isinstance(info.value, Expr):
                _check_param_kind(path, info.value, v, _span_for(path, info, ov, raw), sink)
            out[path] = v
            continue
        if checked and path not in ov and not isinstance(raw, Expr) and \
                not (isinstance(raw, Quantity) and raw.unit == "cycles"):
            out[path] = v if spec.store != "int" or not isinstance(v, Quantity) else raw
            continue
        span = _span_for(path, info, ov, raw)
        where = span.file if spec.file and span and span.file and not span.file.startswith("<") else None
        try:
            out[path] = check_value(v, spec, _what(path), span, tsc,
                                    os.path.dirname(os.path.abspath(where)) if where else base_dir)
        except ScenarioError as e:
            if path in ov and not e.diagnostics[0].hint:
                e = ScenarioError(e.message, e.span, hint=f"{_what(path)} was set to {_fmt(ov[path][0])}")
            failed[path] = e
            out[path] = info.value if not isinstance(info.value, Expr) else None
    for path, e in failed.items():
        # an error in a value read by this one, and not reading it back, is the cause:
        # this one's own error would only echo it
        upstream = [d for d in r.depends_on(path) & failed.keys() if path not in r.depends_on(d)]
        if not upstream:
            sink.extend(e)
    if sink.errors:
        sink.raise_if_any()
    resolved = _rebuild(scenario, out)
    from irqlab.dsl.checks import check_scenario

    check_scenario(resolved, sink)
    sink.raise_if_any()
    _RESOLVED[id(resolved)] = resolved
    return resolved


def values(scenario: ir.Scenario, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every value of the resolved scenario by canonical path, plus each named
    parameter by its bare name: an environment for :func:`evaluate`."""
    res = resolve(scenario, overrides)
    out: dict[str, Any] = {}
    for path, info in _raw_infos(res).items():
        v = _plain(info.value) if not isinstance(info.value, bool) else info.value
        if isinstance(info.value, int) and not isinstance(info.value, bool):
            v = Quantity(float(info.value))
        out[path] = v
        if path.startswith("param."):
            out[path[6:]] = v
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v) if not isinstance(v, Expr) else "an expression"


def _check_param_kind(path: str, old: Any, new: Any, span: Span, sink: ErrorSink) -> None:
    o, n = _spec_of_value(_plain(old)), _spec_of_value(new)
    if o.kind != n.kind and not (o.kind == "choice" and n.kind == "bool"):
        sink.add(f"{_what(path)} is {describe(_plain(old))} in the scenario; it cannot be set to "
                 f"{describe(new)}", span)


def _tsc(r: _Resolver) -> float | None:
    try:
        t = r.get("machine.tsc")
    except ScenarioError:
        return None
    return t.value if isinstance(t, Quantity) and t.unit == "Hz" and t.value > 0 else None


def _base_dir(scenario: ir.Scenario) -> str:
    f = scenario.span.file
    if f and not f.startswith("<"):
        return os.path.dirname(os.path.abspath(f))
    return os.getcwd()


def check_literal(scenario: ir.Scenario, path: str, text: str, span: Span | None = None) -> None:
    """A ScenarioError at ``span`` if ``text``, a literal for canonical ``path``, can never
    be its value (wrong type, unit dimension, range or choice). Expressions and values in
    cycles (which need the TSC of each point) are left to each point's resolve."""
    info = _raw_infos(scenario).get(path)
    if info is None or info.spec is None or info.spec.kind == "param":
        return
    value = _override_value(text, info, span)
    if isinstance(value, Expr) or (isinstance(value, Quantity) and value.unit == "cycles"):
        return
    check_value(value, info.spec, _what(path), span)


def _override_value(raw: Any, info: PathInfo, span: Span | None) -> Any:
    if isinstance(raw, (Quantity, bool, Expr)):
        return raw
    if isinstance(raw, (int, float)):
        base = {"time": "s", "frequency": "Hz"}.get(info.kind, "")
        return Quantity(float(raw), base)
    if isinstance(raw, str):
        if info.kind in ("str",) and not raw.strip()[:1].isdigit():
            t = raw.strip()
            return t[1:-1] if len(t) >= 2 and t[0] == t[-1] == '"' else t
        return parse_value(raw, span)
    raise ScenarioError(f"cannot use {raw!r} as the value of {_what(info.path)}", span)


# --------------------------------------------------------------------------- rebuilding


def _rebuild(s: ir.Scenario, v: dict[str, Any]) -> ir.Scenario:
    def get(path: str, old: Any) -> Any:
        x = v.get(path, old)
        return old if x is None and old is not None and not isinstance(old, Expr) else x

    m = s.machine
    machine = replace(m, **{f: get(f"machine.{f}", getattr(m, f)) for f in MACHINE_SPECS})
    costs = tuple(replace(a, value=get(f"costs.{a.name}", a.value)) for a in s.costs)

    def plugin(prefix: str, use: ir.PluginUse | None) -> ir.PluginUse | None:
        if use is None:
            return None
        return replace(use, args=tuple(replace(a, value=get(f"{prefix}.{a.name}", a.value))
                                       for a in use.args))

    devices = []
    for d in s.devices:
        base = f"device.{d.name}"
        kw = {f: get(f"{base}.{f}", getattr(d, f)) for f in DEVICE_SPECS if f != "gsi"}
        kw["gsi"] = None if kw["delivery"] == "msi" else get(f"{base}.gsi", d.gsi)
        devices.append(replace(d, **kw, arrival=plugin(f"{base}.arrival", d.arrival),
                               model=plugin(f"{base}.model", d.model),
                               service_dist=plugin(f"{base}.service", d.service_dist),
                               policy=plugin(f"{base}.policy", d.policy)))
    vcpus = tuple(replace(c, levels=tuple(replace(lv, policy=plugin(f"vcpu.{c.index}.{lv.level}.policy",
                                                                    lv.policy))
                                          for lv in c.levels)) for c in s.vcpus)
    n = machine.vcpus
    if isinstance(n, int) and vcpus and n != len(vcpus) and "machine.vcpus" in v:
        first = vcpus[0]
        if all(c.levels == first.levels for c in vcpus):
            vcpus = tuple(replace(first, index=i) for i in range(n))
    r = s.run
    run = replace(r, **{f: get(f"run.{f}", getattr(r, f)) for f in RUN_SPECS})
    params = tuple(replace(p, value=get(f"param.{p.name}", p.value)) for p in s.params)
    mitigations = tuple(plugin(f"mitigation.{mu.name}", mu) for mu in s.mitigations)
    actions = tuple(replace(a, at=get(f"action.{k}.at", a.at), every=get(f"action.{k}.every", a.every))
                    for k, a in enumerate(s.actions))
    return replace(s, machine=machine, costs=costs, vcpus=vcpus, devices=tuple(devices),
                   mitigations=mitigations, run=run, params=params, actions=actions)
