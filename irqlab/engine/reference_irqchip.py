"""The reference interpreter's interrupt controllers: LAPIC acceptance and EOI, IOAPIC pins,
lines and redirection writes, and the mitigation hooks on them. A mixin of
:class:`irqlab.engine.reference.LaneSim` (one lane, scalar state); the lockstep executor's
are in :mod:`irqlab.engine.lockstep_irqchip`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine import idle as I
from irqlab.engine.context import call_plugin
from irqlab.plugins.api import DeliverEvent, EoiEvent, HandlerEvent, ImmediateExitEvent, RedirectEvent
from irqlab.engine.refbase import ONE


class RefIrqchip:
    """The LAPIC and IOAPIC methods of :class:`~irqlab.engine.reference.LaneSim`."""

    def ack(self, v: int) -> int:
        g = self.high(self.irr[v])
        self.irr[v] &= ~(1 << g)
        self.isr[v] |= 1 << g
        if self.svi_on:
            self.svi_sync(v)
        self.trace_lapic(v)
        return g

    def lapic_eoi(self, v: int) -> int:
        if not self.isr[v]:
            return -1
        g = self.high(self.isr[v])
        self.isr[v] &= ~(1 << g)
        if self.svi_on:
            self.svi_sync(v)
        self.trace_lapic(v)
        return g

    def accept(self, v: int, g: int, level: bool, how: str = "Fixed") -> bool:
        """An interrupt for vector group ``g`` arrives at vCPU ``v``'s LAPIC; returns whether
        it set the IRR bit (False: merged into the one already pending)."""
        trig = "level" if level else "edge"
        if self.p.bare:
            self.emit("irqlab_apic_accept", f"cpu {v} vec {self.vec(g)} ({trig})")
        else:
            self.emit("kvm_apic_accept_irq", f"apicid {v} vec {self.vec(g)} ({how}|{trig})")
        bit = 1 << g
        if level:
            self.tmr[v] |= bit
        else:
            self.tmr[v] &= ~bit
        if self.irr[v] & bit:
            return False
        self.posted(v, bit)
        self.irr[v] |= bit
        self.trace_lapic(v)
        self.notify(v)
        return True

    def count_delivery(self, devs: Sequence[int], accepted: bool) -> None:
        """Book one delivery of the pin or MSI of devices ``devs`` to a LAPIC
        (docs/model.md, Metrics): it delivers the first device with a fresh interrupt
        and merges the others' (coalesced); with none fresh it is a re-delivery of a
        line still asserted (``redelivered``). A re-delivery merged into a pending IRR
        bit is nobody's arrival and is not counted."""
        s = self.stats
        taken = False
        for di in devs:
            if self.fresh[di]:
                self.fresh[di] = False
                if accepted and not taken:
                    s.dev_delivered[0, di] += 1
                    s.delivered[0] += 1
                else:
                    s.dev_coalesced[0, di] += 1
                    s.coalesced[0] += 1
                taken = True
        if not taken and accepted:
            di = next((i for i in devs if self.asserted[i]), devs[0])
            s.dev_redelivered[0, di] += 1
            s.delivered[0] += 1

    def merge(self, di: int) -> None:
        """Arrival at device ``di`` merged into an interrupt already raised."""
        self.stats.dev_coalesced[0, di] += 1
        self.stats.coalesced[0] += 1

    def notify(self, v: int) -> None:
        """A new interrupt is pending at ``v``: a running guest is interrupted."""
        if self.p.idle and self.idle_notify(v):
            return
        if self.phase[v] not in I.RUNNING or self.descheduled(v):
            return
        at = max(self.t, self.since[v])
        if self.p.nested or (not self.p.bare and not self.p.apicv):
            self.phase[v], self.vt[v] = P.KICK, at
        elif self.deliverable(v):
            self.phase[v], self.vt[v] = P.TAKE, at

    # ------------------------------------------------------------------ IOAPIC

    def trace_lapic(self, v: int) -> None:
        """Trace counters: vectors pending (IRR) and in service (ISR) at vCPU ``v``."""
        if self.trace is not None:
            self.trace.counters.append((self.t, f"vCPU {v} IRR", bin(self.irr[v]).count("1")))
            self.trace.counters.append((self.t, f"vCPU {v} ISR", bin(self.isr[v]).count("1")))

    def set_line(self, pin: int, level: int) -> None:
        """A device line at ``pin`` changes (the OR of its devices' lines)."""
        if self.trace is not None:
            self.trace.counters.append((self.t, f"gsi {pin} line", level))
        if self.p.bare:
            self.emit("irqlab_line", f"gsi {pin} level {level}")
        elif self.p.split:
            self.emit("ioapic_set_irq", f"vector: {pin} level: {level}")
        else:
            self.emit("kvm_set_irq", f"gsi {pin} level {level} source 0")
        self.line_effect(pin, level)

    def line_effect(self, pin: int, level: int) -> None:
        """The IOAPIC sees ``pin``'s line (the OR of its sources) at ``level``."""
        if self.p.pin_level[pin]:
            if level:
                self.lazy_eoi(pin)
                self.p_irr[pin] = True
                if self.p.split:
                    if not self.p_rirr[pin]:
                        self.service_all()
                else:
                    self.service(pin)
            else:
                self.p_irr[pin] = False
        elif not level:
            if not (self.p.split or self.p.bare):
                self.p_irr[pin] = False  # KVM: the pulse's falling half clears an edge pin's irr
        elif level:
            if self.p.split or self.p.bare:
                if not self.p_masked[pin]:
                    self.p_irr[pin] = True
                    self.service_all() if self.p.split else self.service(pin)
            else:
                if self.p_irr[pin]:
                    self.edge_merged = True
                else:
                    self.p_irr[pin] = True
                    self.service(pin)

    def service_all(self, level_only: bool = False) -> None:
        for pin in self.used_pins:
            if level_only and not self.p.pin_level[pin]:
                continue
            self.service(pin)

    def service(self, pin: int) -> None:
        """Deliver ``pin`` if it is pending and deliverable (QEMU/KVM ``ioapic_service``)."""
        level = self.p.pin_level[pin]
        if self.p_masked[pin] or not self.p_irr[pin] or (level and self.p_rirr[pin]):
            return
        if self.mit_deliver(pin):
            return
        if level:
            self.p_rirr[pin] = True
        else:
            self.p_irr[pin] = False
        g = self.p.pin_group[pin]
        grp = self.p.groups[g]
        dest = self.kdest[pin]
        trig = "level" if level else "edge"
        if self.p.bare:
            self.emit("irqlab_ioapic_deliver", f"pin {pin} vec {grp.vector} ({trig})")
        elif self.p.split:
            dst, how = self.msg_of(g, dest)
            self.emit("kvm_set_irq", f"gsi {pin} level 1 source 0")
            self.emit("kvm_msi_set_irq", f"dst {dst} vec {grp.vector} ({how}|{trig})")
        else:
            dst, how = self.msg_of(g, dest)
            self.emit("kvm_ioapic_set_irq", f"pin {pin} dst {dst} vec {grp.vector} ({how}|{trig})")
        if dest != self.rte_dest[pin]:
            self.stats.misrouted[0] += 1  # a stale KVM route (routes_reference)
        self.count_delivery(self.pin_devs[pin], self.deliver(g, level, dest))
        if self.p.split and not level:
            self.emit("kvm_set_irq", f"gsi {pin} level 0 source 0")

    def eoi_broadcast(self, vector: int) -> None:
        """An EOI for ``vector`` reaches the IOAPIC (QEMU ``ioapic_eoi_broadcast`` or
        KVM ``kvm_ioapic_update_eoi``)."""
        for pin in self.used_pins:
            if not self.p.pin_level[pin] or self.vec(self.p.pin_group[pin]) != vector:
                continue
            if self.p.split and not self.p_rirr[pin]:
                continue
            self.eoi_one(pin)

    def eoi_one(self, pin: int) -> None:
        """The EOI of level ``pin`` (QEMU's loop body; KVM ``kvm_ioapic_update_eoi_one``)."""
        if not self.p.split:
            self.resampler_ack(pin)  # kvm_ioapic_update_eoi_one: ack notifiers first
        self.p_rirr[pin] = False
        self.rirr_cleared(pin)
        asserted = (not self.p_masked[pin]) and self.p_irr[pin]
        defer = self.mit_eoi(pin, asserted)
        if asserted and not defer:
            self.service_all() if self.p.split else self.service(pin)

    def redirect_write(self, pin: int, masked: bool, dest: int | None = None) -> None:
        """A write of ``pin``'s redirection entry (QEMU ``ioapic_mem_write``, KVM
        ``ioapic_write_indirect``); ``dest`` None keeps the destination."""
        self.emit("irqlab_redirect", f"pin {pin} masked {int(masked)}" + ("" if dest is None else f" dest {dest}"))
        old = self.rte_dest[pin]
        self.p_masked[pin] = masked
        if dest is not None:
            self.rte_dest[pin] = dest
        self.mit_redirect(pin)
        if self.p.split:
            first = self.routes_on and self.p.rte_update == "routes_first"
            if first:
                self.update_kvm_routes()
            self.service_all()
            if self.routes_on and not first:
                self.update_kvm_routes()
            return
        self.kdest[pin] = self.rte_dest[pin]
        if (not masked and self.p.pin_level[pin] and self.p_irr[pin] and not self.p_rirr[pin]):
            if not self.unmask_resample(pin):
                self.service(pin)
        if self.routes_on:
            self.request_scan((old, self.rte_dest[pin]))

    # ------------------------------------------------------------------ mitigation hooks

    def _hook(self, hook: str):
        for m in self.p.mitigations:
            if hook in type(m.plugin).hooks:
                yield m, self.ctx_mit[m.index]

    def mit_deliver(self, pin: int) -> bool:
        block = False
        for m, ctx in self._hook("deliver"):
            ev = DeliverEvent(ONE, np.array([pin]), np.zeros(1, bool))
            call_plugin(ctx, "mitigation", m.plugin.on_deliver, ev)
            block = block or bool(ev.block[0])
        return block

    def mit_eoi(self, pin: int, asserted: bool) -> bool:
        defer = False
        for m, ctx in self._hook("ioapic_eoi"):
            ev = EoiEvent(ONE, np.array([pin]), np.array([asserted]), np.zeros(1, bool))
            call_plugin(ctx, "mitigation", m.plugin.on_ioapic_eoi, ev)
            defer = defer or bool(ev.defer[0])
        return defer

    def mit_redirect(self, pin: int) -> None:
        for m, ctx in self._hook("redirect"):
            call_plugin(ctx, "mitigation", m.plugin.on_redirect, RedirectEvent(ONE, np.array([pin])))

    def mit_immediate(self, v: int) -> int:
        timer = 0
        for m, ctx in self._hook("immediate_exit"):
            ev = ImmediateExitEvent(ONE, np.array([v]), np.array([self.rip[v]]), np.array([timer]))
            call_plugin(ctx, "mitigation", m.plugin.on_immediate_exit, ev)
            timer = int(ev.timer[0])
        return timer

    def mit_handler_done(self, v: int, pin: int, handled: bool) -> None:
        for m, ctx in self._hook("handler_done"):
            ev = HandlerEvent(ONE, np.array([v]), np.array([pin]), np.array([handled]))
            call_plugin(ctx, "mitigation", m.plugin.on_handler_done, ev)
