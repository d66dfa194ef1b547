"""The reference interpreter's vCPU phases: guest runs, kicks, injection, the handler's
actions, EOIs, MMIO accesses and VM resumes (docs/model.md, one method per phase). A mixin
of :class:`irqlab.engine.reference.LaneSim`; the lockstep executor's are in
:mod:`irqlab.engine.lockstep_phases`."""

from __future__ import annotations

from irqlab.engine import phases as P
from irqlab.engine.context import call_plugin, is_body_step
from irqlab.engine.program import L0, L1, L2, USER
from irqlab.engine.stats import UEXIT_INDEX
from irqlab.plugins.api import NEVER
from irqlab.engine.refbase import ONE


class RefPhases:
    """The vCPU phase handlers of :class:`~irqlab.engine.reference.LaneSim`."""

    def ph_run_svc(self, v: int) -> None:
        """L2 has finished servicing a forwarded device."""
        t = self.t
        self.end_run(v, t)
        d = self.cur_fwd(v)
        self.svc_rem[d] = 0
        self.forwarded[d] = False
        self.device_service(d)
        g = self.p.devices[d].group
        done = not any(self.forwarded[i] for i in self.p.groups[g].devices)
        if self.waiting[g] and done:
            self.l2_eoi_write(v)
            self.grp[v] = g
            self.at(v, P.REFLECT, t + self.cost("vmexit"))
        elif done and self.p.groups[g].l2_eoi:
            self.l2_eoi_exit(v)
        else:
            self.start_run(v, t)

    def l2_exit(self, v: int, reason: str, qual: int = 0) -> None:
        """L2 exits to L0 with ``reason``: ``kvm_exit`` and ``kvm_nested_vmexit``; the
        preemption timer is disarmed."""
        self.exit(v, reason, self.l2_rip(v), qual)
        self.emit("kvm_nested_vmexit", f"rip {self.l2_rip(v):x} reason {reason} info1 0 info2 0 "
                  "int_info 0 int_info_err 0")
        self.pt_armed[v] = False
        self.switch(v, L0)

    def l2_eoi_write(self, v: int) -> None:
        """L2 writes its EOI (x2APIC MSR or APIC-access page) and exits."""
        self.l2_exit(v, *P.eoi_exit(self.p.x2apic))

    def ph_run_pt(self, v: int) -> None:
        """The preemption timer fires in L2 (an immediate exit, or a throttled one)."""
        self.end_run(v, self.t)
        self.l2_exit(v, "PREEMPTION_TIMER")
        self.at(v, P.L0_CHECK, self.t + self.cost("vmexit"))

    def ph_kick(self, v: int) -> None:
        """A new interrupt made the running guest exit (EXTERNAL_INTERRUPT)."""
        self.end_run(v, self.t)
        self.pt_armed[v] = False
        if self.p.nested:
            self.exit(v, "EXTERNAL_INTERRUPT", self.l2_rip(v))
            self.emit("kvm_nested_vmexit", f"rip {self.l2_rip(v):x} reason EXTERNAL_INTERRUPT info1 0 "
                      "info2 0 int_info 0 int_info_err 0")
            self.switch(v, L0)
            self.at(v, P.L0_CHECK, self.t + self.cost("vmexit"))
        else:
            self.exit(v, "EXTERNAL_INTERRUPT", P.RIP_GUEST_BASE + (self.rip[v] // 1000) * 4)
            self.switch(v, L0)
            self.at(v, P.L0_INJECT, self.t + self.cost("vmexit"))

    def ph_take(self, v: int) -> None:
        """The guest takes the highest deliverable interrupt itself (no exit)."""
        if self.run_start[v] != NEVER:
            self.end_run(v, self.t)
        if not self.deliverable(v):
            self.start_run(v, self.t)
            return
        g = self.ack(v)
        if self.p.bare:
            grp = self.p.groups[g]
            irq = grp.pins[0] if grp.pins else grp.vector
            name = self.p.devices[grp.devices[0]].name
            self.emit("irq_handler_entry", f"irq={irq} name={name}")
        self.start_handler(v, g, self.t)

    def ph_l0_check(self, v: int) -> None:
        """Nested: L0's check_nested_events after an L2 exit."""
        t = self.t
        if self.deliverable(v):
            if self.p.ack_on_exit:
                g = self.ack(v)
                info = 0x80000000 | self.vec(g)
            else:
                g, info = -1, 0
            self.emit("kvm_nested_vmexit_inject", f"reason EXTERNAL_INTERRUPT info1 0 info2 0 "
                      f"int_info {info:x} int_info_err 0")
            start = self.enter(v, L1, [(L0, self.cost("nested_exit"))])
            if g >= 0:
                self.start_handler(v, g, start)
            else:  # load_vmcs12_host_state: RFLAGS = X86_EFLAGS_FIXED, L1 runs with IF=0
                self.at(v, P.L1_STI, start + self.cost("l1_irq_off"))
        else:
            start = self.enter(v, L2)
            self.start_run(v, start)

    def ph_l0_inject(self, v: int) -> None:
        """L0 injects a pending interrupt on entry to L1, or just re-enters (a single-level
        guest runs on; a nested L1 enables interrupts and goes on to VMRESUME)."""
        if self.deliverable(v):
            g = self.ack(v)
            self.emit("kvm_inj_virq", f"irq {self.vec(g)}")
            start = self.enter(v, L1)
            self.start_handler(v, g, start)
        elif self.p.nested:
            self.at(v, P.L1_STI, self.enter(v, L1))
        else:
            start = self.enter(v, L1)
            self.start_run(v, start)

    def ph_l1_sti(self, v: int) -> None:
        """Nested L1 enables interrupts after handling an exit. A pending interrupt is taken
        through its IDT: with APICv by virtual-interrupt delivery (RVI, no exit), without by
        an INTERRUPT_WINDOW exit and an injection. Nothing pending: L1 resumes L2."""
        if not self.l1_deliverable(v):
            self.vmresume(v)
        else:
            self.l1_take(v)

    def l1_take(self, v: int) -> None:
        """L1, interrupts enabled, takes the highest deliverable interrupt through its IDT."""
        if self.p.apicv:
            self.start_handler(v, self.ack(v), self.t)
        else:
            self.exit(v, "INTERRUPT_WINDOW", P.RIP_L1_STI)
            self.switch(v, L0)
            self.at(v, P.L0_INJECT, self.t + self.cost("vmexit"))

    # handler programs

    def start_handler(self, v: int, g: int, t0: int) -> None:
        self.grp[v] = g
        self.pc[v] = 0
        self.schedule_step(v, t0)

    def schedule_step(self, v: int, t0: int) -> None:
        """Run the handler's step at ``pc`` after its delay, from ``t0``; FORWARD steps
        without a delay happen at once."""
        g = self.grp[v]
        steps = self.p.groups[g].steps
        delay = self.step_delay(g, self.pc[v])
        while steps[self.pc[v]].action == "FORWARD" and delay == 0:
            self.forward(g)
            self.pc[v] += 1
            delay = self.step_delay(g, self.pc[v])
        self.at(v, P.ACT, t0 + delay)

    def step_delay(self, g: int, pc: int) -> int:
        """The handler time before step ``pc``: its parameter, or a draw of the policy's random
        body time."""
        grp = self.p.groups[g]
        if not is_body_step(grp, pc):
            return self.before(g, pc)
        from irqlab.plugins.builtin.services import sample_by_cv

        return int(sample_by_cv(grp.body_dist, self.ctx_body[g], ONE, self.before(g, pc),
                                self.v[f"{grp.body_path}.body_cv"])[0])

    def advance(self, v: int, t0: int) -> None:
        self.pc[v] += 1
        self.schedule_step(v, t0)

    def forward(self, g: int) -> None:
        for di in self.p.groups[g].devices:
            if not self.forwarded[di]:
                self.forwarded[di] = True
                self.svc_rem[di] = self.service_time(di)

    def service_time(self, di: int) -> int:
        """How long this service of device ``di`` takes: its constant, or one draw of its
        distribution (a job starts now)."""
        d = self.p.devices[di]
        if d.service_dist is None:
            return self.v[d.service]
        return int(call_plugin(self.ctx_service[di], "service", d.service_dist.sample, ONE)[0])

    def ph_act(self, v: int) -> None:
        g, pc, t = self.grp[v], self.pc[v], self.t
        action = self.p.groups[g].steps[pc].action
        if action == "FORWARD":
            self.forward(g)
            self.advance(v, t)
        elif action == "SERVICE":
            dur = sum(self.service_time(di) for di in self.p.groups[g].devices if self.pending[di] > 0)
            self.at(v, P.SERVICE_DONE, t + dur)
        elif action == "EOI":
            self.guest_eoi(v)
        elif action in ("IOAPIC_EOI", "MASK", "UNMASK"):
            self.guest_mmio(v, action)
        elif action == "WAIT":
            self.waiting[g] = True
            self.wait_pc[g] = pc + 1
            self.vmresume(v)
        else:  # RETURN
            self.handler_return(v)

    def ph_service_done(self, v: int) -> None:
        g = self.grp[v]
        grp = self.p.groups[g]
        any_handled = False
        handled_pin: dict[int, bool] = {}
        for di in grp.devices:
            h = self.device_service(di, v)
            any_handled = any_handled or h
            pin = self.p.devices[di].pin
            if pin >= 0:
                handled_pin[pin] = handled_pin.get(pin, False) or h
        if not any_handled:
            self.stats.spurious[0] += 1
        for pin in sorted(handled_pin):
            self.mit_handler_done(v, pin, handled_pin[pin])
        self.advance(v, self.t)

    def guest_eoi(self, v: int) -> None:
        """The handler writes the LAPIC EOI register."""
        self.stats.eoi_count[0] += 1
        t = self.t
        if self.p.bare:
            g = self.lapic_eoi(v)
            if g >= 0:
                self.emit("irqlab_eoi", f"cpu {v} vector {self.vec(g)}")
                if self.tmr[v] >> g & 1:
                    self.eoi_broadcast(self.vec(g))
            self.advance(v, t + self.cost("eoi"))
            return
        rip = P.RIP_L1_EOI
        if self.p.apicv:
            g = self.high(self.isr[v]) if self.isr[v] else -1
            if g >= 0 and self.eoi_bits[v] >> g & 1:
                self.lapic_eoi(v)
                self.exit(v, "EOI_INDUCED", rip, self.vec(g))
                self.eoi_vec[v] = g
                self.switch(v, L0)
                self.at(v, P.EOI_L0, t + self.cost("vmexit") + self.cost("eoi"))
            else:
                self.lapic_eoi(v)
                if g >= 0:
                    self.eoi_unseen(v, g)
                self.advance(v, t)
            return
        reason, qual = P.eoi_exit(self.p.x2apic)
        self.exit(v, reason, rip, qual)
        self.eoi_vec[v] = -2
        self.switch(v, L0)
        self.at(v, P.EOI_L0, t + self.cost("vmexit") + self.cost("eoi"))

    def ph_eoi_l0(self, v: int) -> None:
        """L0 emulates the EOI; a level vector's EOI goes on to the IOAPIC."""
        g = self.eoi_vec[v]
        if g == -2:
            g = self.lapic_eoi(v)
            self.l2_eoi_svi(v, g)
        broadcast = False
        if g >= 0:
            self.emit("kvm_eoi", f"apicid {v} vector {self.vec(g)}")
            self.timer_eoi(g)
            level = bool(self.tmr[v] >> g & 1)
            grp = self.p.groups[g]
            honoured = grp.suppress and (self.p.suppress_mode == "on" or not self.p.split)
            broadcast = level and grp.delivery == "ioapic" and not honoured
        self.eoi_vec[v] = g
        if broadcast and self.p.split:
            self.stats.uexits[0, UEXIT_INDEX["KVM_EXIT_IOAPIC_EOI"]] += 1
            self.emit("kvm_userspace_exit", "reason KVM_EXIT_IOAPIC_EOI (26)")
            self.switch(v, USER)
            self.at(v, P.EOI_USER, self.t + self.cost("userspace_exit") // 2)
        elif broadcast:
            self.eoi_broadcast(self.vec(g))
            self.eoi_return(v, L0, self.cost("ioapic"))
        else:
            self.eoi_return(v, L0, 0)

    def eoi_return(self, v: int, mode: int, extra: int) -> None:
        """Back from an EOI exit after ``extra`` more time in ``mode`` (L0 or userspace): into
        L1's handler, or after an EOI L2 wrote (tpr_reference) on to L0's nested-event check."""
        if self.l2_eoi[v]:
            self.l2_eoi_back(v, extra)
        else:
            self.advance(v, self.enter(v, L1, [(mode, extra)]))

    def ph_eoi_user(self, v: int) -> None:
        """QEMU: ioapic_eoi_broadcast, then back to KVM and into the guest."""
        self.eoi_broadcast(self.vec(self.eoi_vec[v]))
        rest = self.cost("userspace_exit") - self.cost("userspace_exit") // 2
        self.eoi_return(v, USER, self.cost("ioapic") + rest)

    def guest_mmio(self, v: int, action: str) -> None:
        """The handler writes an IOAPIC register (EOI register or redirection entry): each
        access of :data:`~irqlab.engine.phases.MMIO_ACCESSES` is an MMIO exit."""
        t = self.t
        self.mmio_action[v] = action
        n, _ = P.MMIO_ACCESSES[action]
        if self.p.bare:
            self.ioapic_write(v, action)
            self.advance(v, t + n * self.cost("mmio"))
            return
        self.mmio_step[v] = 0
        self.mmio_exit(v)

    def mmio_exit(self, v: int) -> None:
        self.exit(v, "EPT_MISCONFIG", P.RIP_L1_MMIO, 0)
        self.switch(v, L0)
        self.at(v, P.MMIO_L0, self.t + self.cost("vmexit") + self.cost("mmio"))

    def mmio_access(self, v: int) -> None:
        """The IOAPIC side of the current access: only the acting one changes state."""
        action = self.mmio_action[v]
        if self.mmio_step[v] == P.MMIO_ACCESSES[action][1]:
            self.ioapic_write(v, action)

    def mmio_next(self, v: int, start: int) -> None:
        """Back in the guest at ``start``: the next access, or the handler's next step."""
        self.mmio_step[v] += 1
        if self.mmio_step[v] < P.MMIO_ACCESSES[self.mmio_action[v]][0]:
            self.at(v, P.MMIO_NEXT, start)
        else:
            self.advance(v, start)

    def ph_mmio_next(self, v: int) -> None:
        self.mmio_exit(v)

    def ioapic_write(self, v: int, action: str) -> None:
        g = self.grp[v]
        grp = self.p.groups[g]
        if action == "IOAPIC_EOI":
            if self.p.split or self.p.bare:
                self.emit("irqlab_ioapic_eoi", f"vector {grp.vector}")
                self.eoi_broadcast(grp.vector)
            else:  # KVM's IOAPIC is version 0x11: ioapic_mmio_write ignores offset 0x40
                self.emit("irqlab_ioapic_eoi", f"vector {grp.vector} ignored")
        else:
            for pin in grp.pins:
                self.redirect_write(pin, action == "MASK")

    def ph_mmio_l0(self, v: int) -> None:
        if self.p.split:
            self.stats.uexits[0, UEXIT_INDEX["KVM_EXIT_MMIO"]] += 1
            self.emit("kvm_userspace_exit", "reason KVM_EXIT_MMIO (6)")
            self.switch(v, USER)
            self.at(v, P.MMIO_USER, self.t + self.cost("userspace_exit") // 2)
        else:
            self.mmio_access(v)
            start = self.enter(v, L1, [(L0, self.cost("ioapic"))])
            self.mmio_next(v, start)

    def ph_mmio_user(self, v: int) -> None:
        self.mmio_access(v)
        rest = self.cost("userspace_exit") - self.cost("userspace_exit") // 2
        start = self.enter(v, L1, [(USER, self.cost("ioapic") + rest)])
        self.mmio_next(v, start)

    def handler_return(self, v: int) -> None:
        """End of the handler: VMRESUME (nested L1) or iret."""
        g = self.grp[v]
        if self.p.nested:
            self.vmresume(v)
            return
        if self.p.bare:
            grp = self.p.groups[g]
            irq = grp.pins[0] if grp.pins else grp.vector
            self.emit("irq_handler_exit", f"irq={irq} ret=handled")
        self.grp[v] = -1
        if self.deliverable(v):
            if self.p.bare or self.p.apicv:
                self.at(v, P.TAKE, self.t)
            else:
                self.exit(v, "INTERRUPT_WINDOW", P.RIP_L1_IRET)
                self.switch(v, L0)
                self.at(v, P.L0_INJECT, self.t + self.cost("vmexit"))
        else:
            self.start_run(v, self.t)

    def vmresume(self, v: int) -> None:
        """L1 executes VMRESUME; a KVM-like L1 first takes its pending interrupts."""
        if self.p.l1_irq_window and self.l1_deliverable(v):
            self.l1_take(v)
            return
        self.grp[v] = -1
        self.exit(v, "VMRESUME", P.RIP_L1_VMRESUME)
        self.switch(v, L0)
        self.at(v, P.VMRESUME_L0, self.t + self.cost("vmexit") + self.cost("nested_entry"))

    def ph_vmresume_l0(self, v: int) -> None:
        """L0 enters L2; with an interrupt pending for L1 it asks for an immediate exit."""
        if self.vmresume_pending(v):
            self.stats.immediate[0] += 1
            amd = self.p.vendor == "amd"  # SVM: a self-IPI, no preemption timer (mech_reference)
            timer = self.cost("self_ipi") if amd else self.mit_immediate(v)
            start = self.enter(v, L2)
            self.pt_armed[v] = True
            self.pt_deadline[v] = start + max(timer, 0)
        else:
            start = self.enter(v, L2)
        self.start_run(v, start)

    def ph_reflect(self, v: int) -> None:
        """L0 reflects L2's completion exit to L1, which continues the waiting handler."""
        g = self.grp[v]
        reason = P.eoi_exit(self.p.x2apic)[0]
        self.emit("kvm_nested_vmexit_inject", f"reason {reason} info1 0 info2 0 int_info 0 int_info_err 0")
        start = self.enter(v, L1, [(L0, self.cost("nested_exit"))])
        self.waiting[g] = False
        self.pc[v] = self.wait_pc[g]
        self.schedule_step(v, start)
