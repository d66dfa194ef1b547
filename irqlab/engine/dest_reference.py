"""Destinations in the reference interpreter: a message reaches the vCPUs of its vector
group (logical, broadcast) or one of them (lowest priority). A mixin of
:class:`~irqlab.engine.reference.LaneSim`; rules in :mod:`irqlab.engine.dest` and
docs/model.md, "Destinations"; :mod:`irqlab.engine.dest_lockstep` is the same for the
lockstep executor.
"""

from __future__ import annotations

from irqlab.engine.dest import message_text


class RefDest:
    """State: ``arb[v]``, vCPU ``v``'s ``apic_arb_prio`` (lowest-priority acceptances)."""

    def dest_init(self) -> None:
        self.arb = [0] * self.p.n_vcpus

    def msg_of(self, g: int, dest: int | None = None) -> tuple[str, str]:
        return message_text(self.p.groups[g], dest)

    def deliver(self, g: int, level: bool, dest: int | None = None) -> bool:
        """``kvm_irq_delivery_to_apic``: accept group ``g``'s interrupt at every target (fixed)
        or at the one of lowest ``apic_arb_prio`` (lowest priority without vector hashing; the
        compiler has already picked the one of vector hashing). Returns whether any LAPIC
        set its IRR bit. ``dest``: a plain physical message's current destination, when
        guest actions move it (engine/routes.py)."""
        grp = self.p.groups[g]
        if grp.msg is None:
            return self.accept(grp.dest if dest is None else dest, g, level)
        chosen = grp.targets
        if grp.lowest and len(chosen) > 1:
            chosen = (min(chosen, key=lambda v: (self.arb[v], v)),)
        any_set = False
        for v in chosen:
            if grp.lowest:
                self.arb[v] += 1  # __apic_accept_irq, APIC_DM_LOWEST
            any_set = self.accept(v, g, level, "LowPrio" if grp.lowest else "Fixed") or any_set
        return any_set
