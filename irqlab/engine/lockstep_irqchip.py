"""The lockstep executor's interrupt controllers: LAPIC acceptance and EOI, IOAPIC pins, lines
and redirection writes, and the mitigation hooks on them. A mixin of
:class:`irqlab.engine.lockstep.Lockstep`, the same rules as the kernel's (:mod:`irqlab.engine.kernel_ioapic`)
over lane arrays ``[L, ...]`` (vCPU rows ``f = lane * V + v``)."""

from __future__ import annotations

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine import idle as I
from irqlab.engine.lockstep_base import high_bit
from irqlab.engine.context import call_plugin
from irqlab.plugins.api import DeliverEvent, EoiEvent, ImmediateExitEvent, RedirectEvent

from irqlab.engine.lockstep_base import I64, ONE


class LockstepIrqchip:
    """The LAPIC and IOAPIC methods of :class:`~irqlab.engine.lockstep.Lockstep`."""

    def trace_lapic(self, lanes, f) -> None:
        """Trace counters: vectors pending (IRR) and in service (ISR) at vCPU ``f``."""
        for i in np.flatnonzero(self.traced[lanes]):
            lane, fi = int(lanes[i]), int(f[i])
            t, v = int(self.now[lane]), fi % self.V
            self.traces[lane].counters.append((t, f"vCPU {v} IRR", bin(int(self.irr[fi])).count("1")))
            self.traces[lane].counters.append((t, f"vCPU {v} ISR", bin(int(self.isr[fi])).count("1")))

    def ack(self, f):
        g = high_bit(self.irr[f])
        bit = np.left_shift(ONE, g)
        self.irr[f] &= ~bit
        self.isr[f] |= bit
        if self.svi_on:
            self.svi_sync(f)
        if self.tracing:
            self.trace_lapic(self.lane_of(f), f)
        return g

    def lapic_eoi(self, f):
        g = high_bit(self.isr[f])
        bit = np.where(g >= 0, np.left_shift(ONE, np.maximum(g, 0)), 0)
        self.isr[f] &= ~bit
        if self.svi_on:
            self.svi_sync(f)
        if self.tracing:
            has = g >= 0
            self.trace_lapic(self.lane_of(f[has]), f[has])
        return g

    def lane_of(self, f):
        return f // self.V if self.V > 1 else f

    def accept(self, lanes, v: int, g: int, level: bool, how: str = "Fixed"):
        """Vector group ``g`` arrives at vCPU ``v``'s LAPIC in ``lanes``; returns bool[n],
        whether it set the IRR bit (else it merged into the one pending)."""
        trig = "level" if level else "edge"
        vec = self.p.groups[g].vector
        if self.p.bare:
            self.emit(lanes, "irqlab_apic_accept", "cpu {} vec {} ({})", v, vec, trig)
        else:
            self.emit(lanes, "kvm_apic_accept_irq", "apicid {} vec {} ({}|{})", v, vec, how, trig)
        f = lanes * self.V + v
        bit = I64(1 << g)
        if level:
            self.tmr[f] |= bit
        else:
            self.tmr[f] &= ~bit
        dup = (self.irr[f] & bit) != 0
        accepted = ~dup
        if dup.any():
            lanes, f = lanes[accepted], f[accepted]
        if self.routes_on:
            self.posted(lanes, f, bit)
        self.irr[f] |= bit
        if self.tracing:
            self.trace_lapic(lanes, f)
        self.notify(lanes, v)
        return accepted

    def count_delivery(self, lanes, devs, accepted) -> None:
        """Book one delivery of the pin or MSI of devices ``devs`` (see the reference)."""
        s = self.stats
        taken = np.zeros(len(lanes), bool)
        for di in devs:
            fr = self.fresh[lanes, di]
            if not fr.any():
                continue
            self.fresh[lanes[fr], di] = False
            ok = fr & accepted & ~taken
            merged = fr & ~ok
            s.dev_delivered[lanes[ok], di] += 1
            s.delivered[lanes[ok]] += 1
            s.dev_coalesced[lanes[merged], di] += 1
            s.coalesced[lanes[merged]] += 1
            taken |= fr
        re = ~taken & accepted
        if re.any():
            rl = lanes[re]
            who = np.full(len(rl), devs[0], I64)
            for di in reversed(devs):
                who = np.where(self.asserted[rl, di], di, who)
            s.dev_redelivered[rl, who] += 1
            s.delivered[rl] += 1

    def merge(self, lanes, di: int) -> None:
        """Arrivals at device ``di`` in ``lanes`` merged into an interrupt already raised."""
        self.stats.dev_coalesced[lanes, di] += 1
        self.stats.coalesced[lanes] += 1

    def notify(self, lanes, v: int) -> None:
        if self.p.idle:
            lanes = self.idle_notify(lanes, v)
        f = lanes * self.V + v
        run = self.phase[f] <= P.RUN_PT
        if self.p.idle:
            run |= self.phase[f] == I.HLT
        if self.p.l2_exit:
            run |= self.phase[f] == P.RUN_EXIT
        if self.ds:
            run = self.not_descheduled(f, run)
        if not run.all():
            lanes, f = lanes[run], f[run]
        if not len(lanes):
            return
        at = np.maximum(self.now[lanes], self.since[f])
        if self.p.nested or (not self.p.bare and not self.p.apicv):
            self.phase[f] = P.KICK
            self.tset(self.c_vcpu + v, lanes, at)
        else:
            ok = self.deliverable(f)
            self.phase[f[ok]] = P.TAKE
            self.T[self.c_vcpu + v][lanes[ok]] = at[ok]

    # ================================================================== IOAPIC

    def set_line(self, lanes, pin: int, level: int) -> None:
        if self.tracing:
            for i in np.flatnonzero(self.traced[lanes]):
                lane = int(lanes[i])
                self.traces[lane].counters.append((int(self.now[lane]), f"gsi {pin} line", level))
        if self.p.bare:
            self.emit(lanes, "irqlab_line", "gsi {} level {}", pin, level)
        elif self.p.split:
            self.emit(lanes, "ioapic_set_irq", "vector: {} level: {}", pin, level)
        else:
            self.emit(lanes, "kvm_set_irq", "gsi {} level {} source 0", pin, level)
        self.line_effect(lanes, pin, level)

    def line_effect(self, lanes, pin: int, level: int) -> None:
        """The IOAPIC sees ``pin``'s line (the OR of its sources) at ``level`` in ``lanes``."""
        if self.p.pin_level[pin]:
            if level:
                self.lazy_eoi(lanes, pin)
                self.p_irr[lanes, self.pk[pin]] = True
                if self.p.split:
                    go = lanes[~self.p_rirr[lanes, self.pk[pin]]]
                    if len(go):
                        self.service_all(go)
                else:
                    self.service(lanes, pin)
            else:
                self.p_irr[lanes, self.pk[pin]] = False
        elif not level:
            if not (self.p.split or self.p.bare):
                self.p_irr[lanes, self.pk[pin]] = False  # KVM: the pulse's falling half clears an edge pin's irr
        elif level:
            if self.p.split or self.p.bare:
                go = lanes[~self.p_masked[lanes, self.pk[pin]]]
                self.p_irr[go, self.pk[pin]] = True
                if len(go):
                    self.service_all(go) if self.p.split else self.service(go, pin)
            else:
                old = self.p_irr[lanes, self.pk[pin]]
                self.edge_merged[lanes[old]] = True
                go = lanes[~old]
                self.p_irr[go, self.pk[pin]] = True
                if len(go):
                    self.service(go, pin)

    def service_all(self, lanes, level_only: bool = False) -> None:
        for pin in self.used_pins:
            if level_only and not self.p.pin_level[pin]:
                continue
            if len(lanes):
                self.service(lanes, pin)

    def service(self, lanes, pin: int) -> None:
        level = self.p.pin_level[pin]
        ok = ~self.p_masked[lanes, self.pk[pin]] & self.p_irr[lanes, self.pk[pin]]
        if level:
            ok &= ~self.p_rirr[lanes, self.pk[pin]]
        lanes = lanes[ok]
        if not len(lanes):
            return
        if self.hooks["deliver"]:
            block = self.mit_deliver(lanes, pin)
            lanes = lanes[~block]
            if not len(lanes):
                return
        if level:
            self.p_rirr[lanes, self.pk[pin]] = True
        else:
            self.p_irr[lanes, self.pk[pin]] = False
        g = self.p.pin_group[pin]
        grp = self.p.groups[g]
        if not self.routes_on:
            self.deliver_pin(lanes, pin, g, level, grp.dest)
            return
        col = self.pk[pin]
        dests = self.kdest[lanes, col]
        for v in np.unique(dests).tolist():
            sub = lanes[dests == v]
            self.stats.misrouted[sub[self.rte_dest[sub, col] != v]] += 1  # a stale KVM route
            self.deliver_pin(sub, pin, g, level, v)

    def deliver_pin(self, lanes, pin: int, g: int, level: bool, dest: int) -> None:
        """``service``'s delivery of ``pin`` (group ``g``) to vCPU ``dest`` in ``lanes``."""
        grp = self.p.groups[g]
        trig = "level" if level else "edge"
        if self.p.bare:
            self.emit(lanes, "irqlab_ioapic_deliver", "pin {} vec {} ({})", pin, grp.vector, trig)
        elif self.p.split:
            dst, how = self.msg_of(g, dest)
            self.emit(lanes, "kvm_set_irq", "gsi {} level 1 source 0", pin)
            self.emit(lanes, "kvm_msi_set_irq", "dst {} vec {} ({}|{})", dst, grp.vector, how, trig)
        else:
            dst, how = self.msg_of(g, dest)
            self.emit(lanes, "kvm_ioapic_set_irq", "pin {} dst {} vec {} ({}|{})", pin, dst, grp.vector, how, trig)
        self.count_delivery(lanes, self.pin_devs[pin], self.deliver(lanes, g, level, dest))
        if self.p.split and not level:
            self.emit(lanes, "kvm_set_irq", "gsi {} level 0 source 0", pin)

    def eoi_broadcast(self, lanes, vec) -> None:
        """EOI of vector ``vec`` (array aligned with ``lanes``) reaches the IOAPIC."""
        for pin in self.used_pins:
            if not self.p.pin_level[pin]:
                continue
            sel = lanes[vec == self.p.groups[self.p.pin_group[pin]].vector]
            if self.p.split:
                sel = sel[self.p_rirr[sel, self.pk[pin]]]
            if not len(sel):
                continue
            self.eoi_one(sel, pin)

    def eoi_one(self, sel, pin: int) -> None:
        """The EOI of level ``pin`` in lanes ``sel`` (see the reference)."""
        if not self.p.split:
            self.resampler_ack(sel, pin)  # kvm_ioapic_update_eoi_one: ack notifiers first
        self.p_rirr[sel, self.pk[pin]] = False
        if self.routes_on:
            self.rirr_cleared(sel, pin)
        asserted = ~self.p_masked[sel, self.pk[pin]] & self.p_irr[sel, self.pk[pin]]
        defer = self.mit_eoi(sel, pin, asserted) if self.hooks["ioapic_eoi"] else np.zeros(len(sel), bool)
        go = sel[asserted & ~defer]
        if len(go):
            self.service_all(go) if self.p.split else self.service(go, pin)

    def redirect_write(self, lanes, pin: int, masked: bool, dest: int | None = None) -> None:
        col = self.pk[pin]
        if dest is None:
            self.emit(lanes, "irqlab_redirect", "pin {} masked {}", pin, int(masked))
        else:
            self.emit(lanes, "irqlab_redirect", "pin {} masked {} dest {}", pin, int(masked), dest)
        old = self.rte_dest[lanes, col].copy() if self.routes_on else None
        self.p_masked[lanes, col] = masked
        if dest is not None:
            self.rte_dest[lanes, col] = dest
        if self.hooks["redirect"]:
            for m, ctx in self.hooks["redirect"]:
                call_plugin(ctx, "mitigation", m.plugin.on_redirect,
                            RedirectEvent(lanes, np.full(len(lanes), pin, I64)))
        if self.p.split:
            first = self.routes_on and self.p.rte_update == "routes_first"
            if first:
                self.update_kvm_routes(lanes)
            self.service_all(lanes)
            if self.routes_on and not first:
                self.update_kvm_routes(lanes)
            return
        self.kdest[lanes, col] = self.rte_dest[lanes, col]
        self.redirect_service(lanes, pin, masked)
        if self.routes_on:
            which = np.zeros((len(lanes), self.V), bool)
            which[np.arange(len(lanes)), old] = True
            which[np.arange(len(lanes)), self.rte_dest[lanes, col]] = True
            self.request_scan(lanes, which)

    def redirect_service(self, lanes, pin: int, masked: bool) -> None:
        """KVM ``ioapic_write_indirect``: a level pin unmasked with ``irr`` set and Remote IRR
        clear is serviced (or resampled, fef8f2b90edb)."""
        if not masked and self.p.pin_level[pin]:
            go = lanes[self.p_irr[lanes, self.pk[pin]] & ~self.p_rirr[lanes, self.pk[pin]]]
            if len(go):
                go = self.unmask_resample(go, pin)
            if len(go):
                self.service(go, pin)

    # ================================================================== mitigation hooks

    def mit_deliver(self, lanes, pin):
        block = np.zeros(len(lanes), bool)
        for m, ctx in self.hooks["deliver"]:
            ev = DeliverEvent(lanes, np.full(len(lanes), pin, I64), np.zeros(len(lanes), bool))
            call_plugin(ctx, "mitigation", m.plugin.on_deliver, ev)
            block |= ev.block
        return block

    def mit_eoi(self, lanes, pin, asserted):
        defer = np.zeros(len(lanes), bool)
        for m, ctx in self.hooks["ioapic_eoi"]:
            ev = EoiEvent(lanes, np.full(len(lanes), pin, I64), asserted.copy(), np.zeros(len(lanes), bool))
            call_plugin(ctx, "mitigation", m.plugin.on_ioapic_eoi, ev)
            defer |= ev.defer
        return defer

    def mit_immediate(self, lanes, f):
        timer = np.zeros(len(lanes), I64)
        for m, ctx in self.hooks["immediate_exit"]:
            ev = ImmediateExitEvent(lanes, f % self.V, self.rip[f].copy(), timer.copy())
            call_plugin(ctx, "mitigation", m.plugin.on_immediate_exit, ev)
            timer = np.asarray(ev.timer, I64)
        return timer
