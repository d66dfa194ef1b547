"""Issue 13, mechanism 4 in the reference interpreter: task and processor priority, L2's
exits to L1, an L2 that EOIs L1's vLAPIC, and the nested vPPR that goes stale with
vmcs01's SVI (case G). A mixin of :class:`~irqlab.engine.reference.LaneSim`; :mod:`irqlab.engine.tpr_lockstep`
is the same for the lockstep executor.

docs/model.md, "Task and processor priority (issue 13)", states the rules.
"""

from __future__ import annotations

from irqlab.engine import phases as P
from irqlab.engine.program import L0, L1


class RefPriority:
    """State: ``tpr_cls`` the receiving level's TPR[7:4] (``machine.tpr >> 4``, the same on
    every vCPU); ``exit_rem[v]`` L2 execution left before its next exit to L1;
    ``svi_stale[v]`` the group whose vector vmcs01's SVI still holds after L0 emulated its
    EOI for L2 (-1: SVI is right); ``l2_eoi[v]`` the EOI exit being handled is L2's."""

    def prio_init(self) -> None:
        self.tpr_cls = int(self.v.get("machine.tpr", 0)) >> 4
        V = self.p.n_vcpus
        self.exit_rem = [self.v.get("machine.l2_exit_every", 0)] * V
        self.svi_stale = [-1] * V
        self.l2_eoi = [False] * V
        self.svi_on = any(g.l2_eoi for g in self.p.groups) and self.p.apicv and not self.p.defer_svi

    def ppr_class(self, v: int) -> int:
        """PPR[7:4] of vCPU ``v`` (SDM 10.8.3.1; KVM lapic.c ``__apic_update_ppr``): PPR is
        TPR if TPR[7:4] >= ISRV[7:4], else ISRV & 0xF0, so its class is the larger of the
        two classes (ISRV: the highest in-service vector, 0 if none)."""
        isr = self.isr[v]
        isrv = self.vec(self.high(isr)) >> 4 if isr else 0
        return max(self.tpr_cls, isrv)

    def deliverable(self, v: int) -> bool:
        """Whether the highest pending vector of ``v`` can be dispatched: its class is above
        PPR[7:4] (SDM 10.8.3.1; KVM lapic.c ``apic_has_interrupt_for_ppr``:
        ``(highest_irr & 0xF0) > ppr``)."""
        irr = self.irr[v]
        if not irr:
            return False
        if not self.isr[v] and not self.tpr_cls:
            return True
        return (self.p.groups[irr.bit_length() - 1].vector >> 4) > self.ppr_class(v)

    def l1_deliverable(self, v: int) -> bool:
        """Whether L1 can take its highest pending vector itself. With APICv that is
        virtual-interrupt delivery (SDM 29.2.1): RVI's class must be above vPPR's, and every
        VM entry to L1 recomputes vPPR from vmcs01's SVI (PPR virtualization, SDM 29.1.3),
        so a stale SVI keeps vectors of its class and below waiting."""
        if not self.deliverable(v):
            return False
        s = self.svi_stale[v]
        return s < 0 or (self.vec(self.high(self.irr[v])) >> 4) > (self.vec(s) >> 4)

    def vmresume_pending(self, v: int) -> bool:
        """L0 emulating L1's VMRESUME asks for event evaluation, hence an immediate exit, when
        (KVM vmx/nested.c ``nested_vmx_enter_non_root_mode``) ``kvm_apic_has_interrupt``
        finds one after refreshing PPR (cda3960fbcc5, ``vppr_refresh``); before it, with
        APICv, only when RVI's class is above the vPPR register (``vmx_has_apicv_interrupt``),
        which holds what the last entry to L1 computed from vmcs01's SVI."""
        return self.deliverable(v) if self.p.vppr_refresh else self.l1_deliverable(v)

    def svi_sync(self, v: int) -> None:
        """vmcs01's SVI follows ISR again: an acknowledge or an EOI with vmcs01 loaded
        (``vmx_hwapic_isr_update``; EOI virtualization sets SVI to the highest VISR bit)."""
        self.svi_stale[v] = -1

    # ------------------------------------------------------------------ L2's exits to L1

    def exit_schedule(self, v: int, t0: int) -> None:
        """After ``start_run``: L2's next exit to L1 comes ``exit_rem`` of execution after
        ``t0``, unless a service or the preemption timer comes first (or at the same time)."""
        t = t0 + self.exit_rem[v]
        if t < self.vt[v]:
            self.at(v, P.RUN_EXIT, t)

    def ph_run_exit(self, v: int) -> None:
        """L2 makes an MMIO access that L1 emulates (an ``EPT_MISCONFIG`` exit, reflected):
        L0 emulates the exit to L1, which handles it for ``costs.handler``."""
        t = self.t
        self.end_run(v, t)
        self.exit_rem[v] = self.v["machine.l2_exit_every"]
        self.l2_exit(v, "EPT_MISCONFIG")
        vmexit = self.cost("vmexit")
        self.emit("kvm_nested_vmexit_inject", "reason EPT_MISCONFIG info1 0 info2 0 int_info 0 int_info_err 0",
                  t=t + vmexit)
        start = self.enter(v, L1, [(L0, vmexit + self.cost("nested_exit"))])
        self.at(v, P.L1_EXIT, start + self.cost("handler"))

    def ph_l1_exit(self, v: int) -> None:
        self.vmresume(v)

    # ------------------------------------------------------------------ L2's EOI of L1's vector

    def l2_eoi_exit(self, v: int) -> None:
        """L2 has serviced the devices of a vector it EOIs itself (policy ``l2_eoi``): its
        write of the x2APIC EOI MSR, which L1 does not intercept, exits to L0, which emulates
        it on L1's vLAPIC (``kvm_lapic_reg_write`` -> ``apic_set_eoi``)."""
        self.stats.eoi_count[0] += 1
        self.l2_eoi_write(v)
        self.eoi_vec[v] = -2
        self.l2_eoi[v] = True
        self.at(v, P.EOI_L0, self.t + self.cost("vmexit") + self.cost("eoi"))

    def l2_eoi_svi(self, v: int, g: int) -> None:
        """After L0 emulated L2's EOI of group ``g``: with APICv, KVM before 04bc93cf49d1
        updated SVI only in the loaded VMCS (vmcs02), so vmcs01's SVI keeps ``g``'s vector
        ("KVM: nVMX: Defer SVI update to vmcs01 on EOI when L2 is active w/o VID")."""
        if self.svi_on and self.l2_eoi[v] and g >= 0:
            self.svi_stale[v] = g

    def l2_eoi_back(self, v: int, extra: int) -> None:
        """Back from L2's EOI exit after ``extra`` more time: L0 goes on with its check of
        nested events (``apic_set_eoi`` requested KVM_REQ_EVENT) instead of entering L1."""
        self.l2_eoi[v] = False
        self.at(v, P.L0_CHECK if self.mode[v] == L0 else P.EOI_BACK, self.t + extra)

    def ph_eoi_back(self, v: int) -> None:
        self.switch(v, L0)
        self.ph_l0_check(v)
