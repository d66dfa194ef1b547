"""Issue 13, mechanism 4 in the lockstep executor, rule for rule as
:mod:`irqlab.engine.tpr_reference` (read its docstrings for the rules); a mixin of
:class:`~irqlab.engine.lockstep.Lockstep`. Shapes: ``f`` int64[n] flat vCPU rows.
"""

from __future__ import annotations

import numpy as np


def high_bit(x: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of each int64 (< 2**53), -1 for 0."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1


class LockstepPriority:
    """State: ``tpr_cls`` int64[L*V], TPR[7:4] of each vCPU row (None: TPR 0 everywhere)."""

    def prio_init(self) -> None:
        self.tpr_cls = None
        if self.p.tpr:
            self.tpr_cls = np.repeat(np.asarray(self.params["machine.tpr"], np.int64) >> 4, self.V)

    def ppr_class(self, f):
        """PPR[7:4] of rows ``f``: the larger of TPR[7:4] and the highest in-service class
        (-1 with TPR 0 and nothing in service: every vector is then above it)."""
        isrv = self.gcls[high_bit(self.isr[f])]
        return isrv if self.tpr_cls is None else np.maximum(isrv, self.tpr_cls[f])

    def deliverable(self, f):
        return self.gcls[high_bit(self.irr[f])] > self.ppr_class(f)
