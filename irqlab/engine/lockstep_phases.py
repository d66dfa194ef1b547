"""The lockstep executor's vCPU phases: guest runs, kicks, injection, the handler's actions,
EOIs, MMIO accesses and VM resumes. A mixin of :class:`irqlab.engine.lockstep.Lockstep`,
the same rules as :mod:`irqlab.engine.kernel` (docs/model.md) over lane arrays."""

from __future__ import annotations

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine.lockstep_base import high_bit, sub
from irqlab.engine.context import call_plugin
from irqlab.engine.program import L0, L1, L2, USER
from irqlab.engine.stats import UEXIT_INDEX
from irqlab.plugins.api import NEVER, HandlerEvent
from irqlab.engine.lockstep_base import (
    A_EOI, A_FORWARD, A_IOAPIC_EOI, A_MASK, A_RETURN, A_SERVICE, A_UNMASK, A_WAIT, ACT0, I64,
    N_PHASES,
)


class LockstepPhases:
    """The vCPU phase handlers of :class:`~irqlab.engine.lockstep.Lockstep`."""

    def _phase_table(self):
        tab = {
            P.RUN_SVC: self.ph_run_svc, P.RUN_PT: self.ph_run_pt, P.KICK: self.ph_kick, P.TAKE: self.ph_take,
            P.L0_CHECK: self.ph_l0_check, P.L0_INJECT: self.ph_l0_inject, P.SERVICE_DONE: self.ph_service_done,
            P.EOI_L0: self.ph_eoi_l0, P.EOI_USER: self.ph_eoi_user, P.MMIO_L0: self.ph_mmio_l0,
            P.MMIO_USER: self.ph_mmio_user, P.VMRESUME_L0: self.ph_vmresume_l0, P.REFLECT: self.ph_reflect,
            P.MMIO_NEXT: self.ph_mmio_next, P.L1_STI: self.ph_l1_sti, P.RUN_EXIT: self.ph_run_exit,
            P.L1_EXIT: self.ph_l1_exit, P.EOI_BACK: self.ph_eoi_back,
            ACT0 + A_SERVICE: self.act_service, ACT0 + A_EOI: self.act_eoi,
            ACT0 + A_IOAPIC_EOI: self.act_mmio, ACT0 + A_MASK: self.act_mmio, ACT0 + A_UNMASK: self.act_mmio,
            ACT0 + A_FORWARD: self.act_forward, ACT0 + A_WAIT: self.act_wait, ACT0 + A_RETURN: self.act_return,
            **self.idle_phases(),
        }
        return [tab.get(i) for i in range(N_PHASES)]

    def ph_run_svc(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        cur = self.cur_fwd(lanes, v)
        self.svc_rem[lanes, cur] = 0
        self.forwarded[lanes, cur] = False
        for d in self.p.devices:
            sel = cur == d.index
            if sel.any():
                self.device_service(lanes[sel], d.index)
        g = self.dev_group[cur]
        done = np.ones(len(lanes), bool)
        for d in self.p.devices:
            done &= ~((g == d.group) & self.forwarded[lanes, d.index])
        ex = self.waiting[lanes, g] & done
        if ex.any():
            el, ef, eg = lanes[ex], f[ex], g[ex]
            self.l2_eoi_write(el, ef)
            self.grp[ef] = eg
            self.at(el, ef % self.V, P.REFLECT, self.now[el] + self.c["vmexit"][el])
        go = ~ex
        if self.l2_eoi_on:
            l2e = go & done & self.g_l2_eoi[g]
            if l2e.any():
                self.l2_eoi_exit(lanes[l2e], f[l2e], f[l2e] % self.V)
            go &= ~l2e
        if go.any():
            self.start_run(lanes[go], f[go], t[go])

    def l2_exit(self, lanes, f, reason: str, qual: int = 0):
        """L2 exits to L0 with ``reason``: ``kvm_exit`` and ``kvm_nested_vmexit``; the
        preemption timer is disarmed."""
        rip = self.l2_rip(f)
        self.exit(lanes, reason, rip, qual)
        self.emit(lanes, "kvm_nested_vmexit", "rip {:x} reason {} info1 0 info2 0 int_info 0 int_info_err 0",
                  rip, reason)
        self.pt_armed[f] = False
        self.exit_to(lanes, f, L2, L0)

    def l2_eoi_write(self, lanes, f):
        """L2 writes its EOI (x2APIC MSR or APIC-access page) and exits."""
        self.l2_exit(lanes, f, *P.eoi_exit(self.p.x2apic))

    def ph_run_pt(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        self.l2_exit(lanes, f, "PREEMPTION_TIMER")
        self.at(lanes, v, P.L0_CHECK, t + self.c["vmexit"][lanes])

    def ph_kick(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        self.pt_armed[f] = False
        if self.p.nested:
            rip = self.l2_rip(f)
            self.exit(lanes, "EXTERNAL_INTERRUPT", rip)
            self.emit(lanes, "kvm_nested_vmexit", "rip {:x} reason EXTERNAL_INTERRUPT info1 0 info2 0 "
                      "int_info 0 int_info_err 0", rip)
            self.exit_to(lanes, f, L2, L0)
            self.at(lanes, v, P.L0_CHECK, t + self.c["vmexit"][lanes])
        else:
            self.exit(lanes, "EXTERNAL_INTERRUPT", self.rip_of(f, P.RIP_GUEST_BASE))
            self.exit_to(lanes, f, L1, L0)
            self.at(lanes, v, P.L0_INJECT, t + self.c["vmexit"][lanes])

    def ph_take(self, lanes, f, v):
        t = self.now[lanes]
        open_run = self.run_start[f] != NEVER
        if open_run.any():
            self.end_run(lanes[open_run], f[open_run], t[open_run])
        ok = self.deliverable(f)
        if (~ok).any():
            self.start_run(lanes[~ok], f[~ok], t[~ok])
        if ok.any():
            lanes, f, t = lanes[ok], f[ok], t[ok]
            g = self.ack(f)
            if self.p.bare:
                self.irq_handler_event(lanes, g, "irq_handler_entry", "irq={} name={}")
            self.start_handler(lanes, f, g, t)

    def irq_handler_event(self, lanes, g, event, fmt):
        if not self.tracing:
            self.stats.events[lanes] += 1
            return
        irq = np.array([grp.pins[0] if grp.pins else grp.vector for grp in self.p.groups], I64)[g]
        name = np.array([self.p.devices[grp.devices[0]].name for grp in self.p.groups], object)[g]
        self.emit(lanes, event, fmt, irq, name)

    def ph_l0_check(self, lanes, f, v):
        ok = self.deliverable(f)
        if ok.any():
            al, af = lanes[ok], f[ok]
            if self.p.ack_on_exit:
                g = self.ack(af)
                info = 0x80000000 | self.gvec[g]
            else:
                g, info = None, 0
            self.emit(al, "kvm_nested_vmexit_inject", "reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info {:x} "
                      "int_info_err 0", info)
            start = self.enter(al, af, L1, L0, self.c["nested_exit"][al])
            if g is not None:
                self.start_handler(al, af, g, start)
            else:  # load_vmcs12_host_state: RFLAGS = X86_EFLAGS_FIXED, L1 runs with IF=0
                self.at(al, sub(v, ok), P.L1_STI, start + self.c["l1_irq_off"][al])
        no = ~ok
        if no.any():
            nl, nf = lanes[no], f[no]
            start = self.enter(nl, nf, L2, L0)
            self.start_run(nl, nf, start)

    def ph_l0_inject(self, lanes, f, v):
        ok = self.deliverable(f)
        if ok.any():
            al, af = lanes[ok], f[ok]
            g = self.ack(af)
            self.emit(al, "kvm_inj_virq", "irq {}", self.gvec[g])
            start = self.enter(al, af, L1, L0)
            self.start_handler(al, af, g, start)
        no = ~ok
        if no.any():
            nl, nf = lanes[no], f[no]
            start = self.enter(nl, nf, L1, L0)
            if self.p.nested:
                self.at(nl, sub(v, no), P.L1_STI, start)
            else:
                self.start_run(nl, nf, start)

    def ph_l1_sti(self, lanes, f, v):
        ok = self.l1_deliverable(f)
        if (~ok).any():
            self.vmresume(lanes[~ok], f[~ok], sub(v, ~ok))
        if ok.any():
            self.l1_take(lanes[ok], f[ok], sub(v, ok))

    def l1_take(self, lanes, f, v):
        if self.p.apicv:
            self.start_handler(lanes, f, self.ack(f), self.now[lanes])
        else:
            self.exit(lanes, "INTERRUPT_WINDOW", P.RIP_L1_STI)
            self.exit_to(lanes, f, L1, L0)
            self.at(lanes, v, P.L0_INJECT, self.now[lanes] + self.c["vmexit"][lanes])

    # handler programs

    def start_handler(self, lanes, f, g, t0):
        self.grp[f] = g
        self.pc[f] = 0
        self.schedule_step(lanes, f, t0)

    def schedule_step(self, lanes, f, t0):
        gp = self.grp[f] * self.maxpc + self.pc[f]
        code = self.act_flat[gp]
        delay = self.step_delays(lanes, f, gp)
        inline = (code == A_FORWARD) & (delay == 0)
        while inline.any():
            idx = np.flatnonzero(inline)
            il, ifl = lanes[idx], f[idx]
            self.forward(il, self.grp[ifl])
            self.pc[ifl] += 1
            gpi = self.grp[ifl] * self.maxpc + self.pc[ifl]
            code[idx] = self.act_flat[gpi]
            delay[idx] = self.step_delays(il, ifl, gpi)
            inline[:] = False
            inline[idx] = (code[idx] == A_FORWARD) & (delay[idx] == 0)
        self.phase[f] = ACT0 + code
        self.tset(self.c_vcpu + (f % self.V if self.V > 1 else 0), lanes, t0 + delay)

    def step_delays(self, lanes, f, gp):
        """``int64[n]``: the handler time before each lane's step ``gp`` (group * maxpc + pc):
        its parameter, or a draw of the policy's random body time."""
        delay = self.before_flat[gp if self.before_same else lanes * (self.G1 * self.maxpc) + gp]
        if self.body_steps:
            from irqlab.plugins.builtin.services import sample_by_cv

            delay = delay.copy()
            for g, k in self.body_steps:
                hit = np.flatnonzero(gp == g.index * self.maxpc + k)
                if len(hit):
                    hl = lanes[hit]
                    delay[hit] = sample_by_cv(g.body_dist, self.ctx_body[g.index], hl, delay[hit],
                                              self.params[f"{g.body_path}.body_cv"][hl])
        return delay

    def advance(self, lanes, f, t0):
        self.pc[f] += 1
        self.schedule_step(lanes, f, t0)

    def forward(self, lanes, g):
        for grp in self.p.groups:
            sel = lanes[g == grp.index] if len(self.p.groups) > 1 else lanes
            for di in grp.devices:
                new = sel[~self.forwarded[sel, di]]
                self.forwarded[new, di] = True
                self.svc_rem[new, di] = self.service_times(new, di)

    def service_times(self, lanes, di: int):
        """``int64[n]``: how long this service of device ``di`` takes in ``lanes``."""
        d = self.p.devices[di]
        if d.service_dist is None or not len(lanes):
            return self.service_ps[lanes, di]
        return np.asarray(call_plugin(self.ctx_service[di], "service", d.service_dist.sample, lanes), I64)

    def act_forward(self, lanes, f, v):
        self.forward(lanes, self.grp[f])
        self.advance(lanes, f, self.now[lanes])

    def act_service(self, lanes, f, v):
        g = self.grp[f]
        dur = np.zeros(len(lanes), I64)
        for grp in self.p.groups:
            ing = g == grp.index
            for di in grp.devices:
                busy = ing & (self.pending[lanes, di] > 0)
                if busy.any():
                    dur[busy] += self.service_times(lanes[busy], di)
        self.at(lanes, v, P.SERVICE_DONE, self.now[lanes] + dur)

    def ph_service_done(self, lanes, f, v):
        g = self.grp[f]
        for grp in self.p.groups:
            sel = g == grp.index
            if not sel.any():
                continue
            gl, gf = lanes[sel], f[sel]
            any_h = np.zeros(len(gl), bool)
            handled_pin: dict[int, np.ndarray] = {}
            for di in grp.devices:
                h = self.device_service(gl, di, gf)
                any_h |= h
                pin = self.p.devices[di].pin
                if pin >= 0:
                    handled_pin[pin] = handled_pin.get(pin, np.zeros(len(gl), bool)) | h
            self.stats.spurious[gl[~any_h]] += 1
            for pin in sorted(handled_pin):
                for m, ctx in self.hooks["handler_done"]:
                    ev = HandlerEvent(gl, gf % self.V, np.full(len(gl), pin, I64), handled_pin[pin].copy())
                    call_plugin(ctx, "mitigation", m.plugin.on_handler_done, ev)
        self.advance(lanes, f, self.now[lanes])

    def act_eoi(self, lanes, f, v):
        self.stats.eoi_count[lanes] += 1
        t = self.now[lanes]
        if self.p.bare:
            g = self.lapic_eoi(f)
            has = g >= 0
            if has.any():
                hl, hg = lanes[has], g[has]
                self.emit(hl, "irqlab_eoi", "cpu {} vector {}", sub(v, has), self.gvec[hg])
                lvl = ((self.tmr[f[has]] >> hg) & 1) == 1
                if lvl.any():
                    self.eoi_broadcast(hl[lvl], self.gvec[hg[lvl]])
            self.advance(lanes, f, t + self.c["eoi"][lanes])
            return
        if self.p.apicv:
            g = high_bit(self.isr[f])
            if self.routes_on:
                ex = (g >= 0) & ((self.eoi_bits[f] >> np.maximum(g, 0)) & 1 == 1)
            else:
                ex = (g >= 0) & self.g_eoi_exit[g]
            self.lapic_eoi(f)
            if (~ex).any():
                nl, nf = lanes[~ex], f[~ex]
                self.eoi_unseen(nl, g[~ex])
                self.advance(nl, nf, t[~ex])
            if ex.any():
                el, ef = lanes[ex], f[ex]
                self.exit(el, "EOI_INDUCED", P.RIP_L1_EOI, self.gvec[g[ex]])
                self.eoi_vec[ef] = g[ex]
                self.exit_to(el, ef, L1, L0)
                self.at(el, sub(v, ex), P.EOI_L0, t[ex] + self.c["vmexit"][el] + self.c["eoi"][el])
            return
        reason, qual = P.eoi_exit(self.p.x2apic)
        self.exit(lanes, reason, P.RIP_L1_EOI, qual)
        self.eoi_vec[f] = -2
        self.exit_to(lanes, f, L1, L0)
        self.at(lanes, v, P.EOI_L0, t + self.c["vmexit"][lanes] + self.c["eoi"][lanes])

    def ph_eoi_l0(self, lanes, f, v):
        g = self.eoi_vec[f]
        trap = g == -2
        if trap.any():
            g[trap] = self.lapic_eoi(f[trap])
            self.l2_eoi_svi(f[trap], g[trap])
        has = g >= 0
        if has.any():
            self.emit(lanes[has], "kvm_eoi", "apicid {} vector {}", sub(v, has), self.gvec[g[has]])
            if self.tkind:
                self.timer_eoi(lanes[has], g[has])
        level = has & (((self.tmr[f] >> np.maximum(g, 0)) & 1) == 1)
        broadcast = level & self.g_broadcast_ok[g]
        self.eoi_vec[f] = g
        if broadcast.any():
            bl, bf = lanes[broadcast], f[broadcast]
            if self.p.split:
                self.stats.uexits[bl, UEXIT_INDEX["KVM_EXIT_IOAPIC_EOI"]] += 1
                self.emit(bl, "kvm_userspace_exit", "reason KVM_EXIT_IOAPIC_EOI (26)")
                self.exit_to(bl, bf, L0, USER)
                self.at(bl, sub(v, broadcast), P.EOI_USER, self.now[bl] + self.c_half_user[bl])
            else:
                self.eoi_broadcast(bl, self.gvec[g[broadcast]])
                self.eoi_return(bl, bf, sub(v, broadcast), L0, self.c["ioapic"][bl])
        rest = ~broadcast
        if rest.any():
            self.eoi_return(lanes[rest], f[rest], sub(v, rest), L0)

    def ph_eoi_user(self, lanes, f, v):
        self.eoi_broadcast(lanes, self.gvec[self.eoi_vec[f]])
        self.eoi_return(lanes, f, v, USER, self.c["ioapic"][lanes] + self.c_rest_user[lanes])

    def act_mmio(self, lanes, f, v):
        t = self.now[lanes]
        self.mmio_action[f] = self.act_flat[self.grp[f] * self.maxpc + self.pc[f]]
        if self.p.bare:
            self.ioapic_write(lanes, f)
            self.advance(lanes, f, t + self.mmio_n[self.mmio_action[f]] * self.c["mmio"][lanes])
            return
        self.mmio_step[f] = 0
        self.ph_mmio_next(lanes, f, v)

    def ph_mmio_next(self, lanes, f, v):
        self.exit(lanes, "EPT_MISCONFIG", P.RIP_L1_MMIO, 0)
        self.exit_to(lanes, f, L1, L0)
        self.at(lanes, v, P.MMIO_L0, self.now[lanes] + self.c["vmexit"][lanes] + self.c["mmio"][lanes])

    def mmio_access(self, lanes, f):
        act = self.mmio_step[f] == self.mmio_effect[self.mmio_action[f]]
        if act.any():
            self.ioapic_write(lanes[act], f[act])

    def mmio_next(self, lanes, f, start):
        self.mmio_step[f] += 1
        more = self.mmio_step[f] < self.mmio_n[self.mmio_action[f]]
        if more.any():
            ml, mf = lanes[more], f[more]
            self.at(ml, mf % self.V if self.V > 1 else 0, P.MMIO_NEXT, start[more])
        if (~more).any():
            self.advance(lanes[~more], f[~more], start[~more])

    def ioapic_write(self, lanes, f):
        action = self.mmio_action[f]
        g = self.grp[f]
        ioeoi = action == A_IOAPIC_EOI
        if ioeoi.any():
            if self.p.split or self.p.bare:
                self.emit(lanes[ioeoi], "irqlab_ioapic_eoi", "vector {}", self.gvec[g[ioeoi]])
                self.eoi_broadcast(lanes[ioeoi], self.gvec[g[ioeoi]])
            else:  # KVM's IOAPIC is version 0x11: ioapic_mmio_write ignores offset 0x40
                self.emit(lanes[ioeoi], "irqlab_ioapic_eoi", "vector {} ignored", self.gvec[g[ioeoi]])
        for grp in self.p.groups:
            for code, masked in ((A_MASK, True), (A_UNMASK, False)):
                sel = lanes[(action == code) & (g == grp.index)]
                if len(sel):
                    for pin in grp.pins:
                        self.redirect_write(sel, pin, masked)

    def ph_mmio_l0(self, lanes, f, v):
        if self.p.split:
            self.stats.uexits[lanes, UEXIT_INDEX["KVM_EXIT_MMIO"]] += 1
            self.emit(lanes, "kvm_userspace_exit", "reason KVM_EXIT_MMIO (6)")
            self.exit_to(lanes, f, L0, USER)
            self.at(lanes, v, P.MMIO_USER, self.now[lanes] + self.c_half_user[lanes])
        else:
            self.mmio_access(lanes, f)
            start = self.enter(lanes, f, L1, L0, self.c["ioapic"][lanes])
            self.mmio_next(lanes, f, start)

    def ph_mmio_user(self, lanes, f, v):
        self.mmio_access(lanes, f)
        start = self.enter(lanes, f, L1, USER, self.c["ioapic"][lanes] + self.c_rest_user[lanes])
        self.mmio_next(lanes, f, start)

    def act_wait(self, lanes, f, v):
        g = self.grp[f]
        self.waiting[lanes, g] = True
        self.wait_pc[lanes, g] = self.pc[f] + 1
        self.vmresume(lanes, f, v)

    def act_return(self, lanes, f, v):
        if self.p.nested:
            self.vmresume(lanes, f, v)
            return
        if self.p.bare:
            self.irq_handler_event(lanes, self.grp[f], "irq_handler_exit", "irq={} ret=handled")
        self.grp[f] = -1
        t = self.now[lanes]
        ok = self.deliverable(f)
        if ok.any():
            al = lanes[ok]
            if self.p.bare or self.p.apicv:
                self.at(al, sub(v, ok), P.TAKE, t[ok])
            else:
                af = f[ok]
                self.exit(al, "INTERRUPT_WINDOW", P.RIP_L1_IRET)
                self.exit_to(al, af, L1, L0)
                self.at(al, sub(v, ok), P.L0_INJECT, t[ok] + self.c["vmexit"][al])
        no = ~ok
        if no.any():
            self.start_run(lanes[no], f[no], t[no])

    def vmresume(self, lanes, f, v):
        if self.p.l1_irq_window:
            ok = self.l1_deliverable(f)
            if ok.any():
                self.l1_take(lanes[ok], f[ok], sub(v, ok))
                lanes, f, v = lanes[~ok], f[~ok], sub(v, ~ok)
                if not len(lanes):
                    return
        self.grp[f] = -1
        self.exit(lanes, "VMRESUME", P.RIP_L1_VMRESUME)
        self.exit_to(lanes, f, L1, L0)
        self.at(lanes, v, P.VMRESUME_L0, self.now[lanes] + self.c["vmexit"][lanes] + self.c["nested_entry"][lanes])

    def ph_vmresume_l0(self, lanes, f, v):
        ok = self.vmresume_pending(f)
        timer = None
        if ok.any():
            self.stats.immediate[lanes[ok]] += 1
            if self.p.vendor == "amd":  # SVM: a self-IPI, no preemption timer (kernel.py, vcpu_event)
                timer = self.c["self_ipi"][lanes[ok]]
            elif self.hooks["immediate_exit"]:
                timer = self.mit_immediate(lanes[ok], f[ok])
        start = self.enter(lanes, f, L2, L0)
        if ok.any():
            af = f[ok]
            self.pt_armed[af] = True
            self.pt_deadline[af] = start[ok] + (np.maximum(timer, 0) if timer is not None else 0)
        self.start_run(lanes, f, start)

    def ph_reflect(self, lanes, f, v):
        g = self.grp[f]
        reason = P.eoi_exit(self.p.x2apic)[0]
        self.emit(lanes, "kvm_nested_vmexit_inject", "reason {} info1 0 info2 0 int_info 0 int_info_err 0", reason)
        start = self.enter(lanes, f, L1, L0, self.c["nested_exit"][lanes])
        self.waiting[lanes, g] = False
        self.pc[f] = self.wait_pc[lanes, g]
        self.schedule_step(lanes, f, start)
