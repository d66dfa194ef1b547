"""Destinations in the lockstep executor, rule for rule as
:mod:`irqlab.engine.kernel_dest`; a mixin of :class:`~irqlab.engine.lockstep.Lockstep`.
Shapes: ``lanes`` int64[n].
"""

from __future__ import annotations

import numpy as np

from irqlab.engine.dest import lowest_by_arb, message_text


class LockstepDest:
    """State: ``arb`` int64[L*V], each vCPU's ``apic_arb_prio``."""

    def dest_init(self) -> None:
        self.arb = np.zeros(self.L * self.V, np.int64)

    def msg_of(self, g: int, dest: int | None = None) -> tuple[str, str]:
        return message_text(self.p.groups[g], dest)

    def deliver(self, lanes, g: int, level: bool, dest: int | None = None):
        """Returns bool[n]: some LAPIC set its IRR bit. ``dest``: a plain physical message's
        current destination in all of ``lanes`` (guest actions move it: engine/routes.py)."""
        grp = self.p.groups[g]
        if grp.msg is None:
            return self.accept(lanes, grp.dest if dest is None else dest, g, level)
        how = "LowPrio" if grp.lowest else "Fixed"
        any_set = np.zeros(len(lanes), bool)
        if grp.lowest and len(grp.targets) > 1:
            tv = np.array(grp.targets, np.int64)
            pick = tv[lowest_by_arb(self.arb[lanes[:, None] * self.V + tv[None, :]])]
            for v in grp.targets:
                sel = np.flatnonzero(pick == v)
                if len(sel):
                    self.arb[lanes[sel] * self.V + v] += 1
                    any_set[sel] = self.accept(lanes[sel], v, g, level, how)
            return any_set
        for v in grp.targets:
            if grp.lowest:
                self.arb[lanes * self.V + v] += 1
            any_set |= self.accept(lanes, v, g, level, how)
        return any_set
