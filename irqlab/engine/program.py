"""Compiled programs and lanes.

A :class:`Program` is what the executors run: the scenario's structure
(vCPUs, vector groups with their handler programs, pins, devices, plugin
instances) plus ``params``, the numeric values that may differ from lane to
lane, by canonical dotted path, in engine units (times ``int`` picoseconds,
frequencies ``float`` Hz, counts ``int``). Two scenarios whose programs have
the same ``key`` differ only in those numbers and can share one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from irqlab.ir import Scenario
from irqlab.plugins.api import Plugin, Step

MODES = ("L0", "L1", "L2", "USER")
L0, L1, L2, USER = range(4)


@dataclass(frozen=True)
class Lane:
    """One run: the seed of its random streams and its parameter values.

    The lane's streams come from ``numpy.random.SeedSequence(seed,
    spawn_key=spawn_key)``. ``params`` overrides ``Program.params`` by path
    (values in engine units, as a compiled program gives them).
    """

    seed: int = 0
    spawn_key: tuple[int, ...] = ()
    params: Mapping[str, float | int] = field(default_factory=dict)


@dataclass
class DeviceInfo:
    """One device as the executors see it."""

    index: int
    name: str
    delivery: str  # ioapic | msi
    pin: int  # gsi, or -1 for MSI
    vector: int
    trigger: str  # edge | level
    dest: int
    group: int
    local: bool  # serviced at the receiving level (else forwarded to L2)
    lowers_line: bool
    service: str  # param path of the service time (a constant), or of the distribution's parameters
    service_dist: Plugin | None  # the service-time distribution; None: the constant ``service``
    arrival: Plugin
    arrival_path: str  # param path prefix of the arrival's parameters
    model: Plugin
    model_path: str
    vfio: bool = False  # INTx of a passed-through device (VFIO + KVM's resampling irqfd)
    targets: tuple[int, ...] = ()  # the vCPUs its interrupt reaches (irqlab.engine.dest); () = (dest,)
    lowest: bool = False  # lowest-priority delivery
    dest_mode: str = "physical"
    msg_dest: int = -1  # the destination field of its message (an APIC ID, a logical mask, 0xff)
    work_on: int = -1  # idle: the vCPU that runs its work (-1: the servicing one)


def spread(d: DeviceInfo) -> bool:
    """Whether ``d``'s message is other than a fixed one to one physical APIC ID."""
    return d.lowest or d.dest_mode != "physical" or d.msg_dest == 0xFF


@dataclass
class GroupInfo:
    """One vector (its devices share it): the LAPIC bit and the handler program.

    ``bit`` orders groups by vector, so the highest set bit of a LAPIC
    register is the highest-priority vector.
    """

    index: int
    vector: int
    level: bool  # delivered level-triggered (TMR set on acceptance)
    delivery: str
    pins: tuple[int, ...]
    devices: tuple[int, ...]
    dest: int
    local: bool
    steps: tuple[Step, ...]
    before: tuple[str | None, ...]  # param path of each step's delay, or None
    policy: str
    eoi_exit: bool  # the vector is in its vCPU's EOI-exit bitmap (APICv; compiler.eoi_exit_vectors)
    suppress: bool  # a level IOAPIC vector on a LAPIC whose SPIV bit 12 the guest has set
    body_dist: str = "constant"  # the policy's body time: constant, or drawn per invocation
    body_path: str = ""  # the policy's parameter prefix (body, body_cv)
    targets: tuple[int, ...] = ()  # the vCPUs its interrupt reaches; () = (dest,)
    lowest: bool = False  # lowest-priority delivery: one of ``targets`` (apic_arb_prio)
    msg: tuple[int, str] | None = None  # (destination field, mode) unless a plain physical fixed message
    l2_eoi: bool = False  # L2 EOIs this vector on L1's vLAPIC through L0 (policy l2_eoi; kernel_tpr.py)


@dataclass(frozen=True)
class ActionInfo:
    """A guest action (``at``): when (param paths) and its writes, in order. A write is
    ``(target, index, dest, mask)``: target ``ioapic`` (index = gsi) or ``msi`` (index =
    device index); ``dest`` -1 and ``mask`` -1 keep the field (mask 0 unmasks, 1 masks)."""

    index: int
    at: str
    every: str
    writes: tuple[tuple[str, int, int, int], ...]


@dataclass
class MitigationInfo:
    index: int
    label: str
    plugin: Plugin
    path: str
    timer_base: int  # index of its first timer among all timers


@dataclass
class Program:
    """A compiled scenario. See the module docstring."""

    scenario: Scenario
    key: str
    params: dict[str, float | int]
    param_types: dict[str, str]  # path -> int | float | time | frequency
    n_vcpus: int
    stack: tuple[str, ...]  # ("L0",), ("L0", "L1") or ("L0", "L1", "L2")
    n_pins: int
    split: bool
    apicv: bool
    x2apic: bool
    suppress_mode: str
    ack_on_exit: bool
    devices: list[DeviceInfo]
    groups: list[GroupInfo]
    mitigations: list[MitigationInfo]
    metrics: list[tuple[str, Plugin, str]]
    n_timers: int
    pin_group: tuple[int, ...]  # [n_pins] group index of a pin, -1 if unused
    pin_level: tuple[bool, ...]  # [n_pins] the pin is level-triggered
    series_fields: tuple[str, ...]
    histograms: bool = False  # BatchResult.devices[d]["latency_hist"]: int64[n, N_BINS]
    l1_irq_window: bool = False  # nested KVM-like L1: takes pending interrupts before each VMRESUME
    vendor: str = "intel"  # intel (VMX) or amd (SVM)
    resample_on_unmask: bool = True  # KVM fef8f2b90edb
    vfio_devices: tuple[int, ...] = ()  # device indices with VFIO INTx; host slot k is vfio_devices[k]
    lazy_eoi_level: bool = False  # KVM f458d039db7e's lazy EOI reaches level pins (kernel irqchip, APICv)
    actions: tuple[ActionInfo, ...] = ()  # guest actions during the run (engine/routes.py)
    eoi_scan: str = "pending_pir"  # ir.EOI_SCANS
    rte_update: str = "routes_first"  # ir.RTE_UPDATES
    timer_devices: tuple[tuple[int, str], ...] = ()  # (device index, "pit" | "rtc" | "stimer"): timers that catch up
    desched: tuple[int, ...] = ()  # mitigation indices of host-contention (``deschedule``) plugins
    idle: bool = False  # vCPUs run their work, then HLT (irqlab.engine.idle)
    vector_hashing: bool = True  # KVM's lowest-priority choice by vector (else by apic_arb_prio)
    ipi_group: int = -1  # the group of the reschedule IPI's vector (idle work handed to another vCPU)
    tpr: bool = False  # a nonzero task priority (lane parameter ``machine.tpr``; kernel_tpr.py)
    l2_exit: bool = False  # L2 exits to L1 every ``machine.l2_exit_every`` of its execution
    defer_svi: bool = True  # KVM 04bc93cf49d1 (vmcs01's SVI after an EOI emulated while L2 runs)
    vppr_refresh: bool = True  # KVM cda3960fbcc5 (nested VM-Enter refreshes L1's vPPR)

    @property
    def mechanisms(self) -> frozenset[str]:
        """The mechanisms beyond the founding semantics this program uses (issue 12: ``vfio``,
        ``amd``, ``lazy_eoi``; issue 13: ``routes`` (guest actions that change routes),
        ``timers_pit``, ``timers_rtc``, ``timers_stimer``, ``deschedule``, ``idle``, ``destinations``,
        ``tpr``, ``l2_exit``, ``l2_eoi``).
        An executor that implements only the founding semantics (the compiled kernel) must
        leave a program with any of them to the lockstep executor."""
        out = set()
        if self.vfio_devices:
            out.add("vfio")
        if self.vendor == "amd" and not self.bare:
            out.add("amd")
        if self.lazy_eoi_level:
            out.add("lazy_eoi")
        if self.actions:
            out.add("routes")
        out.update(f"timers_{kind}" for _, kind in self.timer_devices)  # timers_pit, timers_rtc, timers_stimer
        if self.desched:
            out.add("deschedule")
        if self.idle:
            out.add("idle")
        if any(g.msg is not None for g in self.groups):
            out.add("destinations")
        if self.tpr:
            out.add("tpr")
        if self.l2_exit:
            out.add("l2_exit")
        if any(g.l2_eoi for g in self.groups):
            out.add("l2_eoi")
        return frozenset(out)

    @property
    def nested(self) -> bool:
        return self.stack[-1] == "L2"

    @property
    def bare(self) -> bool:
        return self.stack == ("L0",)

    @property
    def innermost(self) -> int:
        return len(self.stack) - 1

    @property
    def receiving(self) -> int:
        return 0 if self.bare else 1

    def lane_params(self, lanes: Sequence[Lane]) -> dict[str, np.ndarray]:
        """Every parameter as an array over ``lanes`` (int64 or float64)."""
        out = {}
        n = len(lanes)
        for path, default in self.params.items():
            typ = self.param_types[path]
            dtype = np.float64 if typ in ("float", "frequency") else np.int64
            arr = np.array([ln.params.get(path, default) for ln in lanes], dtype=dtype)
            if n > 1 and (arr == arr[0]).all():
                arr = np.broadcast_to(arr[:1].copy(), (n,))  # shared by every lane: no per-lane memory
            out[path] = arr
        return out

    def lane_for(self, other: "Program", seed: int = 0, spawn_key: tuple[int, ...] = ()) -> Lane:
        """A lane of this program's batch that runs ``other`` (same key)."""
        if other.key != self.key:
            raise ValueError("programs with different keys cannot share a batch")
        return Lane(seed, spawn_key, dict(other.params))


def run_program(program: Program, lanes: Sequence[Lane], *, trace_lanes: tuple[int, ...] = (),
                backend: str | None = None) -> Any:
    """Run lanes with the named backend plugin (see :func:`irqlab.engine.run`)."""
    from irqlab.plugins.registry import registry

    name = backend or program.scenario.run.backend
    cls = registry().get("backend", name)
    return cls().run(program, list(lanes), trace_lanes=trace_lanes)
