"""Issue-12 mechanisms in the reference interpreter: VFIO INTx through KVM's resampling
irqfd, and the AMD immediate exit. A mixin of :class:`~irqlab.engine.reference.LaneSim`;
:mod:`irqlab.engine.mech_lockstep` is the same for the lockstep executor.

docs/model.md, "Passthrough INTx (VFIO)" and "AMD SVM", states the rules.
"""

from __future__ import annotations

from irqlab.engine import phases as P
from irqlab.engine.idle import NAMES as IDLE_NAMES
# ZT_DEPTH: nested turns of a same-instant cycle that prove it never ends (the real kernel overflows
# its stack); ZT_EVENTS: events of a lane at one instant that make a zero-time loop (docs/model.md:
# Choice); ZT_HIST: the last events before it, searched for the cycle's period
from irqlab.engine.kernel_ids import ZT_DEPTH, ZT_EVENTS, ZT_HIST  # noqa: F401
from irqlab.plugins.api import NEVER

RESAMPLE_SOURCE = 1  # KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID (include/linux/kvm_host.h)


def describe_cycle(hist: list[tuple[str, int]]) -> tuple[int, str]:
    """The shortest period of the event names in ``hist`` [(name, records after it)]
    (half of it if none repeats): (records per turn, "name -> name ...")."""
    names = [n for n, _ in hist]
    p = next((k for k in range(1, len(names) // 2) if names[-k:] == names[-2 * k:-k]), len(names) // 2 - 1)
    return hist[-1][1] - hist[-1 - p][1], " -> ".join(names[-p:])


class RefMechanisms:
    """State: ``host_t[k]`` the host slot of VFIO device ``vfio_devices[k]`` (when KVM's
    irqfd asserts the GSI), ``host_masked[d]`` (VFIO masked the host line),
    ``rs_up[pin]`` (the resampler's source holds the GSI high)."""

    def mech_init(self) -> None:
        pr = self.p
        self.host_t = [NEVER] * len(pr.vfio_devices)
        self.host_slot = {di: k for k, di in enumerate(pr.vfio_devices)}
        self.host_masked = [False] * len(pr.devices)
        self.rs_up = [False] * pr.n_pins
        self.pin_vfio = {pin: [di for di in pr.vfio_devices if pr.devices[di].pin == pin]
                         for pin in self.used_pins}
        self.zt_depth = 0  # nesting of lazy EOI updates in the current instant
        self.zt_log: list[str] = []  # records emitted while zt_depth > 0
        self.zt_turn = 0  # index in zt_log where the innermost turn began
        self.zt_last_t = -1  # the instant of the last event, and how many events ran at it
        self.zt_same = 0
        self.zt_hist: list[tuple[str, int]] = []

    # ------------------------------------------------------------------ VFIO INTx

    def vfio_rise(self, di: int) -> None:
        """The passed-through device asserts its line: the host's ``vfio_intx_handler``
        masks it and signals the irqfd, which asserts the GSI ``costs.vfio`` later."""
        if self.host_masked[di]:
            return
        self.host_masked[di] = True
        self.emit("irqlab_vfio_intx", f"dev {self.p.devices[di].name} masked")
        k = self.host_slot[di]
        self.host_t[k] = min(self.host_t[k], self.t + self.cost("vfio"))

    def host_event(self, k: int) -> None:
        """KVM's irqfd injects: ``kvm_set_irq(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID, gsi, 1)``."""
        pin = self.p.devices[self.p.vfio_devices[k]].pin
        if not self.rs_up[pin]:
            self.rs_up[pin] = True
            self.p_line[pin] += 1
        self.kvm_set_irq(pin, 1, RESAMPLE_SOURCE)

    def kvm_set_irq(self, pin: int, level: int, source: int) -> None:
        """``kvm_set_irq`` from ``source``: the trace shows the requested level, the IOAPIC
        sees the OR of every source's line (``__kvm_irq_line_state``)."""
        self.emit("kvm_set_irq", f"gsi {pin} level {level} source {source}")
        self.line_effect(pin, 1 if self.p_line[pin] > 0 else 0)

    def resampler_ack(self, pin: int) -> None:
        """KVM's ack notifier for a GSI with a resampler (``irqfd_resampler_ack``): de-assert
        the resampler's source, then signal the resamplefd (VFIO unmasks the host line)."""
        if not self.pin_vfio.get(pin):
            return
        self.emit("kvm_ack_irq", f"irqchip IOAPIC pin {pin}")
        if self.rs_up[pin]:
            self.rs_up[pin] = False
            self.p_line[pin] -= 1
        self.kvm_set_irq(pin, 0, RESAMPLE_SOURCE)
        self.vfio_unmask(pin)

    def vfio_unmask(self, pin: int) -> None:
        """VFIO's ``vfio_pci_intx_unmask_handler`` for each device on ``pin``: unmask the host
        line; a device still asserting fires again (masked again, irqfd ``costs.vfio`` later)."""
        for di in self.pin_vfio[pin]:
            if not self.host_masked[di]:
                continue
            still = self.asserted[di]
            self.emit("irqlab_vfio_unmask", f"dev {self.p.devices[di].name} line {int(still)}")
            self.host_masked[di] = False
            if still:
                self.vfio_rise(di)

    def unmask_resample(self, pin: int) -> bool:
        """KVM fef8f2b90edb (``ioapic_write_indirect``): unmasking a level pin with ``irr`` set
        and Remote IRR clear that has a resampler clears ``irr`` and notifies the resampler
        instead of delivering. Returns whether it applied (else the pin is serviced)."""
        if not (self.p.resample_on_unmask and self.pin_vfio.get(pin)):
            return False
        self.emit("irqlab_resample", f"pin {pin}")
        self.p_irr[pin] = False
        self.vfio_unmask(pin)
        return True

    # ------------------------------------------------------------------ lazy EOI, zero-time cycles

    def lazy_eoi(self, pin: int) -> None:
        """``ioapic_set_irq`` with APICv/AVIC active (f458d039db7e, ``ioapic_lazy_update_eoi``):
        before raising ``irr``, a pin whose vector is no longer pending EOI at its destination
        (in neither IRR nor ISR, ``kvm_apic_pending_eoi``) gets ``kvm_ioapic_update_eoi_one``,
        ack notifiers included. 8be8f932e3db restricted it to edge pins, where it changes
        nothing in this model (no Remote IRR, no resampler); ``lazy_eoi all`` applies it to
        level pins. A resampler's ack re-enters ``ioapic_set_irq`` while another source holds
        the line: a cycle in zero time, stopped at :data:`ZT_DEPTH` nested turns."""
        if not (self.p.lazy_eoi_level and self.p.pin_level[pin]) or self.stats.zt_loop[0]:
            return
        g = self.p.pin_group[pin]
        v = self.p.groups[g].dest
        if (self.irr[v] | self.isr[v]) >> g & 1:
            return
        if self.zt_depth >= ZT_DEPTH:
            self.zero_time_loop()
            return
        self.zt_depth += 1
        self.emit("irqlab_lazy_eoi", f"pin {pin} vec {self.p.groups[g].vector}")
        self.zt_turn = len(self.zt_log) - 1
        self.eoi_one(pin)
        self.zt_depth -= 1
        if not self.zt_depth:
            self.zt_log.clear()

    def zero_time_loop(self) -> None:
        """Stop the run here: the records since the last turn began are one turn of a cycle
        that takes no simulated time (outcome ``zero_time_loop``, never a hang)."""
        cycle = self.zt_log[self.zt_turn:]
        self.stats.zt_loop[0] = True
        self.stats.zt_cycle[0] = len(cycle)
        self.emit("irqlab_zero_time_loop", f"{len(cycle)} records per turn, {ZT_DEPTH} turns nested: "
                  + " -> ".join(cycle))

    def same_instant(self, name: str | None) -> bool:
        """After an event: count the lane's events at one instant (``name``: the event's, when
        it is among the last :data:`ZT_HIST` before :data:`ZT_EVENTS`); at ZT_EVENTS report
        the cycle they repeat (outcome ``zero_time_loop``) and return True."""
        if self.t != self.zt_last_t:
            self.zt_last_t, self.zt_same = self.t, 0
            self.zt_hist.clear()
            return False
        self.zt_same += 1
        if name is None:
            return False
        self.zt_hist.append((name, int(self.stats.events[0])))
        if self.zt_same < ZT_EVENTS:
            return False
        n, text = describe_cycle(self.zt_hist)
        self.stats.zt_loop[0] = True
        self.stats.zt_cycle[0] = n
        self.emit("irqlab_zero_time_loop", f"{n} records per turn, {ZT_EVENTS} events at one instant: {text}")
        return True

    def deep_in_instant(self) -> bool:
        """Whether the next event (at ``self.t``) is among the last ZT_HIST before ZT_EVENTS."""
        return self.t == self.zt_last_t and self.zt_same + 1 > ZT_EVENTS - ZT_HIST

    def event_name(self, kind: str, i: int) -> str:
        """An event's name in a zero-time cycle: its slot, and a vCPU's phase."""
        if kind == "vcpu":
            ph = self.phase[i]
            if ph == P.ACT:
                return f"vcpu {i} ACT {self.p.groups[self.grp[i]].steps[self.pc[i]].action}"
            return f"vcpu {i} {P.NAMES.get(ph) or IDLE_NAMES[ph]}"
        if kind == "arrival":
            return f"arrival {self.p.devices[i].name}"
        if kind == "host":
            return f"vfio {self.p.devices[self.p.vfio_devices[i]].name}"
        return f"{kind} {i}"
