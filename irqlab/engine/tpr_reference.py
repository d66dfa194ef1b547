"""Issue 13, mechanism 4 in the reference interpreter: task and processor priority.
A mixin of :class:`~irqlab.engine.reference.LaneSim`; :mod:`irqlab.engine.tpr_lockstep`
is the same for the lockstep executor.

docs/model.md, "Task and processor priority (issue 13)", states the rules.
"""

from __future__ import annotations


class RefPriority:
    """State: ``tpr_cls`` the receiving level's TPR[7:4] (``machine.tpr >> 4``, the same on
    every vCPU)."""

    def prio_init(self) -> None:
        self.tpr_cls = int(self.v.get("machine.tpr", 0)) >> 4

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
        if not self.irr[v]:
            return False
        return (self.vec(self.high(self.irr[v])) >> 4) > self.ppr_class(v)
