"""Periodic timer devices that catch up on missed ticks, and host contention.

The device models ``pit`` and ``stimer`` name a device as a timer: its arrival process
is the host timer's expiry (use ``arrival periodic``), and what an expiry does (inject,
hold for reinjection, drop) is engine semantics, run by every executor
(:mod:`irqlab.engine.timers_lockstep`, :mod:`irqlab.engine.kernel_timers`).
``deschedule`` takes a vCPU off its host CPU for given stretches. docs/model.md,
"Timers that catch up, and host contention", states the rules and their sources.
"""

from __future__ import annotations

import numpy as np

from irqlab.engine import kernel_ids as K
from irqlab.plugins.api import DeviceModel, Mitigation, Param


class _TimerModel(DeviceModel):
    """A tick's work: one service handles one delivered tick."""

    timer_kind = ""  # the engine's name of the timer semantics

    def on_arrival(self, ctx, lanes):  # the engine handles a timer's expiry itself
        return np.ones(len(lanes), dtype=bool)

    @classmethod
    def check(cls, site):
        if not site.serviced_locally:
            yield ("a timer tick is handled where it is received: serviced_by the receiving level", None)

    def on_service(self, ctx, lanes):
        pending = ctx.pending(lanes)
        ctx.set_pending(lanes, np.maximum(pending - 1, 0))
        return pending > 0, np.ones(len(lanes), dtype=bool)


class Pit(_TimerModel):
    """KVM's in-kernel i8254 channel 0 (arch/x86/kvm/i8254.c). With ``reinject 1`` (KVM's
    default) every expiry counts a pending tick and a tick is injected only once the
    guest has acknowledged the previous one (``pit_do_work``); the guest's EOI runs the
    ack notifier ``kvm_pit_ack_irq``, which reinjects at once while ticks are pending.
    With ``reinject 0`` every expiry pulses the line (a pulse that finds irr set is lost)."""

    name = "pit"
    version = "1.0"
    timer_kind = "pit"
    kernel_kind = K.DEV_TIMER  # irqlab.engine.kernel_timers runs it natively
    params = (Param("reinject", "int", 1, "1: KVM_REINJECT_CONTROL pit_reinject (the default); 0: off",
                    min=0, max=1),)

    @classmethod
    def check(cls, site):
        if site.irqchip != "kernel":
            yield ("the pit model is KVM's in-kernel PIT: it needs irqchip kernel "
                   "(create_pit_timer does nothing without the in-kernel IOAPIC)", None)
        if site.delivery != "ioapic" or site.trigger != "edge":
            yield ("the PIT drives an edge-triggered IOAPIC pin: give 'gsi N' and 'trigger edge'", None)
        if site.apicv:
            yield ("KVM inhibits APICv while the PIT reinjects (APICV_INHIBIT_REASON_PIT_REINJ): "
                   "set machine { apicv off }", None)
        yield from super().check(site)


class Stimer(_TimerModel):
    """A Hyper-V SynIC periodic timer in KVM (arch/x86/kvm/hyperv.c): its message goes to a
    SINT message slot and the SINT's vector is injected; a slot still busy makes KVM retry
    at the guest's EOI (``retry 1``, before 7deec5e0df74) or drop the tick (``retry 0``)."""

    name = "stimer"
    version = "1.0"
    timer_kind = "stimer"
    kernel_kind = K.DEV_TIMER  # irqlab.engine.kernel_timers runs it natively
    params = (Param("retry", "int", 0, "1: retry delivery into a busy slot (before 7deec5e0df74); "
                    "0: drop the tick (periodic timers since 7deec5e0df74)", min=0, max=1),)

    @classmethod
    def check(cls, site):
        if site.irqchip == "none":
            yield ("the stimer model is KVM's SynIC: a bare-metal scenario has no KVM", None)
        if site.delivery != "msi":
            yield ("a SynIC timer message is injected straight into the LAPIC: declare the device "
                   "with 'msi' (no gsi)", None)
        yield from super().check(site)


class Deschedule(Mitigation):
    """Host contention: the host takes ``vcpu`` off its CPU for ``length`` every ``period``
    from ``start``. Not a mitigation: it is declared with the ``mitigation`` statement
    because that statement carries a plugin's sweepable parameters."""

    name = "deschedule"
    version = "1.0"
    host_contention = True
    kernel_kind = K.MIT_DESCHEDULE  # irqlab.engine.kernel_timers runs it natively
    params = (
        Param("vcpu", "int", 0, "the vCPU the host deschedules", min=0),
        Param("start", "time", 0.0, "when the first stretch begins", min=0),
        Param("period", "time", doc="time from one stretch's start to the next's", min=1e-12),
        Param("length", "time", doc="how long each stretch lasts (0: never descheduled)", min=0),
    )

    @classmethod
    def check(cls, site):
        if site.irqchip == "none":
            yield ("deschedule models a vCPU thread of a host: a bare-metal scenario has none", None)


class Rtc(_TimerModel):
    """QEMU's MC146818 RTC periodic interrupt (hw/rtc/mc146818rtc.c) on KVM's in-kernel
    IOAPIC. With ``slew 1`` (``-rtc driftfix=slew``, LOST_TICK_POLICY_SLEW) a tick KVM
    reports as coalesced (the last RTC interrupt not yet EOIed: KVM's RTC EOI tracking)
    is counted and reinjected on the guest's read of register C (up to 20 in a row) and
    by a coalesced-tick timer; ``slew 0`` raises the line and forgets."""

    name = "rtc"
    version = "1.0"
    timer_kind = "rtc"
    kernel_kind = K.DEV_TIMER  # irqlab.engine.kernel_timers runs it natively
    params = (Param("slew", "int", 1, "1: lost_tick_policy slew (driftfix=slew); 0: discard", min=0, max=1),)

    @classmethod
    def check(cls, site):
        if site.irqchip != "kernel":
            yield ("the rtc model needs KVM's in-kernel IOAPIC, which tracks the RTC's EOIs to "
                   "report coalesced ticks (rtc_irq_check_coalesced): set irqchip kernel", None)
        if site.delivery != "ioapic" or site.trigger != "edge":
            yield ("the RTC drives ISA IRQ 8: give 'gsi 8' and 'trigger edge'", None)
        yield from super().check(site)
