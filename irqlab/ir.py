"""The scenario IR: what a .scn file means, as frozen dataclasses.

The DSL lowers text to these nodes; the engine compiles them; the sweep layer
rewrites them by dotted path. Every node carries the :class:`Span` it came
from (excluded from equality, so a reformatted file lowers to an equal IR).

Values
------
A value is one of: :class:`Quantity` (a number with a unit), ``str`` (a
choice such as ``split`` or ``level``), ``bool``, or an :class:`Expr` that
still refers to named parameters (see :mod:`irqlab.resolve`). The engine only
ever sees *resolved* scenarios, in which no :class:`Expr` remains.

Dotted paths
------------
Every sweepable value has one canonical path, shared by sweeps, ``--set``,
compiled lane parameters and result columns:

==============================  ==========================================
``machine.<field>``             ``machine.irqchip``, ``machine.tsc``
``costs.<name>``                ``costs.vmexit``
``device.<dev>.<field>``        ``device.uhci.service``
``device.<dev>.arrival.<p>``    ``device.uhci.arrival.rate``
``device.<dev>.service.<p>``    ``device.nic.service.mean`` (a service distribution)
``device.<dev>.policy.<p>``     a per-device handler policy's parameter
``vcpu.<i>.<level>.policy.<p>`` ``vcpu.0.L1.policy.body``
``mitigation.<name>.<p>``       ``mitigation.qemu_eoi_throttle.threshold``
``run.<field>``                 ``run.duration``
``param.<name>``                a named parameter
==============================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from irqlab.errors import NO_SPAN, Span

LEVELS = ("L0", "L1", "L2")
IRQCHIP_MODES = ("kernel", "split")
SUPPRESS_MODES = ("off", "quirk", "on")
VENDORS = ("intel", "amd")
LAZY_EOI = ("off", "edge", "all")
# KVM's EOI-exit bitmap scan after a route change (docs/model.md, "Guest actions: route changes"):
# pending_pir: f3ced000a2df (PIR synced, vectors pending EOI kept); pending: 0fc5a36dd6b3 /
# fceb3a36c29a without it (the split scan misses the PIR); route: neither (the new route only)
EOI_SCANS = ("pending_pir", "pending", "route")
# QEMU ioapic_mem_write on a redirection write: routes_first (54ad31fb0a0a) or service_first
RTE_UPDATES = ("routes_first", "service_first")
TRIGGERS = ("edge", "level")
DELIVERIES = ("ioapic", "msi")
POLARITIES = ("high", "low")
LOWERS = ("before_eoi", "after_eoi", "never")

PS_PER_S = 10**12


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


def _field_spans():
    return field(default=(), compare=False, repr=False)


def field_span(node: object, name: str) -> Span:
    """The span of field ``name`` of a node with ``field_spans`` (where the user
    wrote it), else the node's own span."""
    for n, sp in getattr(node, "field_spans", ()):
        if n == name:
            return sp
    return getattr(node, "span", NO_SPAN)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Quantity:
    """A number and its unit, in base units.

    ``unit`` is one of ``""`` (a plain number), ``"s"`` (time, value in
    seconds), ``"Hz"`` (frequency) or ``"cycles"`` (time counted in TSC cycles,
    converted once the TSC frequency is known). ``text`` keeps the spelling
    the user wrote, for error messages and formatting.
    """

    value: float
    unit: str = ""
    text: str = field(default="", compare=False)

    @property
    def dimension(self) -> str:
        return {"": "number", "s": "time", "cycles": "time", "Hz": "frequency"}[self.unit]

    def to_ps(self, tsc_hz: float) -> int:
        """This time as whole picoseconds (cycles converted at ``tsc_hz``)."""
        if self.unit == "s":
            return int(round(self.value * PS_PER_S))
        if self.unit == "cycles":
            return int(round(self.value * PS_PER_S / tsc_hz))
        raise TypeError(f"{self} is not a time")

    def __str__(self) -> str:
        return self.text or format_quantity(self)


def format_quantity(q: Quantity) -> str:
    """Canonical spelling of a quantity: the largest unit that keeps it readable."""
    v = q.value
    if q.unit == "s":
        for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
            if abs(v) >= scale or unit == "ns":
                return f"{_num(v / scale)}{unit}"
    if q.unit == "Hz":
        for unit, scale in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3), ("Hz", 1.0)):
            if abs(v) >= scale or unit == "Hz":
                return f"{_num(v / scale)}{unit}"
    if q.unit == "cycles":
        return f"{_num(v)} cycles"
    return _num(v)


def _num(x: float) -> str:
    r = round(x, 9)
    if float(r).is_integer():
        return str(int(r))
    return repr(float(r)).rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Expr:
    """Base of expression nodes (unevaluated values that use named parameters)."""

    span: Span = _span()


@dataclass(frozen=True)
class Num(Expr):
    value: Quantity = Quantity(0.0)


@dataclass(frozen=True)
class Name(Expr):
    """A reference to a named parameter or a choice word."""

    name: str = ""


@dataclass(frozen=True)
class Unary(Expr):
    op: str = "-"  # - + not, or % (a percentage: 1% is 0.01)
    operand: Expr = field(default_factory=Expr)


@dataclass(frozen=True)
class Binary(Expr):
    op: str = "+"  # + - * / // % ** == != < <= > >= and or
    left: Expr = field(default_factory=Expr)
    right: Expr = field(default_factory=Expr)


@dataclass(frozen=True)
class Call(Expr):
    func: str = ""  # min max abs log2 log10 sqrt floor ceil round if
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Within(Expr):
    """``value within tolerance of target``: true if ``|value - target| <= tolerance``,
    where a tolerance written as a percentage (``1%``) is relative to ``|target|``."""

    value: Expr = field(default_factory=Expr)
    tolerance: Expr = field(default_factory=Expr)
    target: Expr = field(default_factory=Expr)


Value = Union[Quantity, str, bool, Expr]


# --------------------------------------------------------------------------- plugins


@dataclass(frozen=True)
class Arg:
    """One ``name value`` pair inside a plugin block."""

    name: str
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class PluginUse:
    """A use of a plugin (policy, mitigation, arrival, device model, metric).

    After lowering, ``args`` holds every parameter the plugin declares, with
    defaults filled in, in declaration order.
    """

    kind: str
    name: str
    args: tuple[Arg, ...] = ()
    span: Span = _span()

    def get(self, name: str, default: object = None) -> object:
        for a in self.args:
            if a.name == name:
                return a.value
        return default

    def arg(self, name: str) -> Arg | None:
        for a in self.args:
            if a.name == name:
                return a
        return None


# --------------------------------------------------------------------------- machine


@dataclass(frozen=True)
class Machine:
    """The virtual machine's interrupt hardware and the host's KVM settings.

    ``suppress_eoi_broadcast``: ``off`` (Directed EOI not advertised), ``quirk``
    (advertised but ignored: KVM's legacy split-irqchip behaviour before
    6517dfbcc918), ``on`` (advertised and honoured:
    ``KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST``).
    """

    irqchip: str = "split"
    apicv: bool = True
    x2apic: bool = True
    suppress_eoi_broadcast: str = "off"
    tsc: Quantity = Quantity(2.5e9, "Hz", "2.5GHz")
    preemption_timer_rate: int = 5
    vcpus: int = 1
    ioapic_pins: int = 24
    ack_on_exit: bool = True
    vendor: str = "intel"  # intel (VMX) or amd (SVM): docs/model.md, "AMD SVM"
    resample_on_unmask: bool = True  # KVM fef8f2b90edb: an unmask resamples a VFIO INTx pin
    lazy_eoi: str = "edge"  # APICv/AVIC lazy EOI in ioapic_set_irq: off, edge (8be8f932e3db), all (f458d039db7e)
    eoi_scan: str = "pending_pir"  # EOI_SCANS: KVM's rescan of the EOI-exit bitmaps after a route change
    rte_update: str = "routes_first"  # RTE_UPDATES: QEMU's order of KVM route update and re-service
    idle: bool = False  # vCPUs run their devices' work, then HLT (docs/model.md, "Idle vCPUs")
    halt_poll: Quantity = Quantity(200e-6, "s", "200us")  # KVM halt_poll_ns (KVM_HALT_POLL_NS_DEFAULT, x86)
    halt_poll_grow: int = 2  # halt_poll_ns_grow
    halt_poll_grow_start: Quantity = Quantity(10e-6, "s", "10us")  # halt_poll_ns_grow_start
    halt_poll_shrink: int = 2  # halt_poll_ns_shrink
    wakeup: Quantity = Quantity(10e-6, "s", "10us")  # a blocked vCPU thread's wake-up latency (Choice)
    apic_dfr: str = "flat"  # xAPIC logical destinations: flat or cluster model (DFR)
    vector_hashing: bool = True  # KVM's vector_hashing module parameter (lowest priority)
    tpr: int = 0  # the receiving level's task priority (SDM 10.8.3.1): docs/model.md, "Task and processor priority"
    l2_exit_every: Quantity = Quantity(0.0, "s", "0s")  # L2 execution between exits L1 handles (0: none)
    defer_svi: bool = True  # KVM 04bc93cf49d1: an EOI emulated while L2 runs updates vmcs01's SVI at nested exit
    vppr_refresh: bool = True  # KVM cda3960fbcc5: nested VM-Enter refreshes L1's vPPR (kvm_apic_has_interrupt)
    span: Span = _span()
    field_spans: tuple[tuple[str, Span], ...] = _field_spans()  # where each field was written


# Transition costs: name -> (default, meaning). Defaults are in cycles so
# they scale with the TSC; sources in docs/model.md.
COSTS: dict[str, tuple[Quantity, str]] = {
    "vmexit": (Quantity(1000, "cycles"), "hardware VM exit plus KVM's exit dispatch (L0 time)"),
    "vmentry": (Quantity(1000, "cycles"), "KVM's VM entry (L0 time)"),
    "nested_exit": (Quantity(4500, "cycles"), "L0 emulating an L2->L1 exit (nested_vmx_vmexit)"),
    "nested_entry": (Quantity(4500, "cycles"), "L0 emulating L1's VMRESUME (nested_vmx_run)"),
    "userspace_exit": (Quantity(3800, "cycles"), "KVM -> QEMU -> KVM round trip (userspace time)"),
    "eoi": (Quantity(300, "cycles"), "L0 emulating a LAPIC EOI write"),
    "ioapic": (Quantity(500, "cycles"), "IOAPIC work for one EOI broadcast or register write"),
    "mmio": (Quantity(1500, "cycles"), "L0 decoding and emulating one MMIO access"),
    "handler": (Quantity(2000, "cycles"), "default interrupt-handler body before its first action"),
    "resume": (Quantity(500, "cycles"), "a handler's way back: iret, or L1's path to VMRESUME"),
    "l1_irq_off": (Quantity(1000, "cycles"), "L1 with interrupts off after an emulated exit without "
                   "ack-on-exit, until it enables them"),
    "vfio": (Quantity(12500, "cycles"), "host side of VFIO INTx: from the host line's interrupt (or "
             "its unmask with the line high) to KVM's GSI assertion by the irqfd"),
    "self_ipi": (Quantity(500, "cycles"), "AMD: L2 execution before the self-IPI of an immediate exit "
                 "forces the #VMEXIT(INTR)"),
}

# Named cost sets (``costs { profile NAME }``): each sets every cost it names, the others keep
# their COSTS default. Sources and derivations in docs/model.md ("Cost profiles").
COST_PROFILES: dict[str, dict[str, Quantity]] = {
    # irqlab's defaults: SplitX (Nehalem X5570, 2011), inl_from_qemu (2016), Bonzini 2019; the rest guesses
    "default": {k: q for k, (q, _) in COSTS.items()},
    # nested costs from the nested cpuid round trip before Bonzini's 2019 VMX optimizations (14,886 cycles)
    "bonzini2019_before": {"nested_exit": Quantity(5443, "cycles"), "nested_entry": Quantity(5443, "cycles")},
    # ... and after them (13,142 cycles)
    "bonzini2019_after": {"nested_exit": Quantity(4571, "cycles"), "nested_entry": Quantity(4571, "cycles")},
}


@dataclass(frozen=True)
class LevelSpec:
    """One virtualization level on a vCPU: ``L1 hyperv { policy eoi_before_lower }``."""

    level: str
    name: str = ""
    policy: PluginUse | None = None
    span: Span = _span()


def service_levels(levels: tuple[str, ...]) -> tuple[str, ...]:
    """Levels that may service a device delivered to a vCPU with ``levels`` (outermost
    first): the receiving level and the levels it runs (bare metal: L0; a guest: L1, and
    L2 if nested); () if the stack lacks its receiving level."""
    receiving = "L0" if not levels or levels[-1] == "L0" else "L1"
    return levels[levels.index(receiving):] if receiving in levels else ()


@dataclass(frozen=True)
class Vcpu:
    """A vCPU and its stack of levels, outermost first.

    ``(L0,)`` is bare metal; ``(L0, L1)`` a guest; ``(L0, L1, L2)`` a nested
    guest. L0 (KVM) is implied when L1 is present.
    """

    index: int
    levels: tuple[LevelSpec, ...] = ()
    span: Span = _span()

    @property
    def receiving_level(self) -> str:
        """The level whose (virtual) LAPIC the VM's interrupts arrive at."""
        return "L0" if self.innermost == "L0" else "L1"

    @property
    def innermost(self) -> str:
        return self.levels[-1].level if self.levels else "L0"

    @property
    def service_levels(self) -> tuple[str, ...]:
        """:func:`service_levels` of this vCPU's levels."""
        return service_levels(tuple(lv.level for lv in self.levels))

    def level(self, name: str) -> LevelSpec | None:
        for lv in self.levels:
            if lv.level == name:
                return lv
        return None


@dataclass(frozen=True)
class Device:
    """A device and the interrupt it raises.

    ``delivery`` is ``ioapic`` (through pin ``gsi``) or ``msi``. ``serviced_by``
    names the level whose driver services the device and lowers its line,
    taking ``service`` of that level's execution time. ``policy`` overrides the
    receiving level's handler policy for this device's vector (``lowers
    before_eoi``/``after_eoi`` in the source are shorthands for
    ``lower_then_eoi``/``eoi_before_lower``); ``lowers_line`` false models a
    driver that never lowers the line (a screaming device).
    """

    name: str
    vector: int = 0x20
    delivery: str = "ioapic"
    gsi: int | None = None
    trigger: str = "edge"
    polarity: str = "high"
    dest: int = 0
    arrival: PluginUse = field(default_factory=lambda: PluginUse("arrival", "once"))
    model: PluginUse = field(default_factory=lambda: PluginUse("device", "generic"))
    serviced_by: str = "L1"
    service: Quantity = Quantity(1e-6, "s", "1us")
    service_dist: PluginUse | None = None  # a service-time distribution; replaces ``service``
    policy: PluginUse | None = None
    lowers_line: bool = True
    vfio: bool = False  # a passed-through device's INTx: VFIO + KVM's resampling irqfd
    work: Quantity = Quantity(0.0, "s", "0us")  # idle vCPUs: guest work each handled service makes available
    work_on: int = -1  # idle vCPUs: the vCPU that runs the work (-1: the one that serviced it; else a reschedule IPI)
    dest_mode: str = "physical"  # physical (dest: an APIC ID; 0xff broadcast) or logical (dest: a mask)
    delivery_mode: str = "fixed"  # fixed (every matching LAPIC) or lowest (one of them)
    span: Span = _span()
    field_spans: tuple[tuple[str, Span], ...] = _field_spans()  # where each field was written


# What a time series can sample (cumulative counts and times, or levels at the instant).
SERIES_FIELDS = ("l2_time_ns", "l1_time_ns", "l0_time_ns", "userspace_time_ns", "eoi_count",
                 "exits_total", "interrupts_raised", "interrupts_delivered", "pending", "irr", "line")


@dataclass(frozen=True)
class SeriesSpec:
    """Time series to record: snapshot ``fields`` every ``every``."""

    every: Quantity = Quantity(1e-3, "s", "1ms")
    fields: tuple[str, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class RunSpec:
    """What to run: duration, replications, seed, limits and what to record."""

    duration: Quantity = Quantity(1.0, "s", "1s")
    replications: int = 1
    seed: int = 0
    max_events: int = 10_000_000
    livelock_window: Quantity = Quantity(0.01, "s", "10ms")
    metrics: tuple[PluginUse, ...] = ()
    series: SeriesSpec | None = None
    histograms: bool = False  # keep each device's latency histogram per run
    backend: str = "auto"
    span: Span = _span()
    field_spans: tuple[tuple[str, Span], ...] = _field_spans()  # where each field was written


# --------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class Axis:
    """``path = [v1, v2, ...]``: one swept parameter and its values."""

    path: str
    values: tuple[Value, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Dist:
    """A sampled dimension: ``path in [low, high]`` (``log`` scale, ``int``) or a choice."""

    path: str
    low: Value | None = None
    high: Value | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Value, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class SweepNode:
    span: Span = _span()


@dataclass(frozen=True)
class Grid(SweepNode):
    """Cartesian product of the children (axes or nested nodes)."""

    items: tuple[Union[Axis, SweepNode], ...] = ()


@dataclass(frozen=True)
class Zip(SweepNode):
    """Paired axes: the i-th point takes the i-th value of every axis."""

    items: tuple[Union[Axis, SweepNode], ...] = ()


@dataclass(frozen=True)
class Concat(SweepNode):
    """The points of each part, one after the other."""

    items: tuple[SweepNode, ...] = ()


@dataclass(frozen=True)
class Sample(SweepNode):
    """``n`` points drawn uniformly at random or by Latin-hypercube sampling."""

    method: str = "random"  # random | lhs
    n: int = 1
    seed: int = 0
    dims: tuple[Dist, ...] = ()


@dataclass(frozen=True)
class Derived:
    """``path = expression`` evaluated at every point (after the axes)."""

    path: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Expectation:
    """One assertion of an ``expect`` block over a run's metrics (see
    :mod:`irqlab.expect`): ``expr`` is true or false; ``text`` is how the user
    wrote it (for reports)."""

    expr: Expr
    text: str = field(default="", compare=False)
    span: Span = _span()


@dataclass(frozen=True)
class Sweep:
    """A sweep: points from ``root``, filtered by ``constraints``, with ``derived``
    values computed per point, each run ``replications`` times (None: the run
    block's replications). ``expect`` is checked on every run and stored as columns."""

    root: SweepNode | None = None
    constraints: tuple[Expr, ...] = ()
    derived: tuple[Derived, ...] = ()
    replications: int | None = None
    span: Span = _span()
    expect: tuple[Expectation, ...] = ()


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class ParamDef:
    """``param name = expression``: a named, sweepable parameter."""

    name: str
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class Scenario:
    """A whole scenario. ``costs`` holds every name in :data:`COSTS`."""

    name: str
    machine: Machine = Machine()
    costs: tuple[Arg, ...] = ()
    vcpus: tuple[Vcpu, ...] = ()
    devices: tuple[Device, ...] = ()
    mitigations: tuple[PluginUse, ...] = ()
    run: RunSpec = RunSpec()
    sweep: Sweep | None = None
    params: tuple[ParamDef, ...] = ()
    span: Span = _span()
    source: str = field(default="", compare=False, repr=False)
    expect: tuple[Expectation, ...] = ()  # checked by `irqlab test` over the run's replications
    actions: tuple["Action", ...] = ()  # guest actions during the run (`at T { ... }`)

    def cost(self, name: str) -> Quantity:
        for a in self.costs:
            if a.name == name:
                assert isinstance(a.value, Quantity)
                return a.value
        return COSTS[name][0]

    def device(self, name: str) -> Device | None:
        for d in self.devices:
            if d.name == name:
                return d
        return None


# --------------------------------------------------------------------------- guest actions


@dataclass(frozen=True)
class RouteWrite:
    """One guest write inside an ``at`` action: an IOAPIC redirection entry
    (``ioapic GSI [dest N] [mask|unmask]``) or a device's MSI message (``msi DEVICE dest N``).
    ``dest``/``mask`` None: that field keeps its value."""

    target: str  # ioapic | msi
    gsi: int = -1
    device: str = ""
    dest: int | None = None
    mask: bool | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Action:
    """``at TIME [every PERIOD] { writes }``: the guest makes ``writes``, in order, at ``at``
    and then every ``every`` (0: once). Sweepable as ``action.<k>.at`` / ``action.<k>.every``."""

    at: Value
    every: Value = Quantity(0.0, "s", "0")
    writes: tuple[RouteWrite, ...] = ()
    span: Span = _span()
