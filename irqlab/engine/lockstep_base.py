"""Constants and small helpers of the lockstep executor shared by its modules (:mod:`irqlab.engine.lockstep`
and its mixins :mod:`~irqlab.engine.lockstep_irqchip`, :mod:`~irqlab.engine.lockstep_phases`)."""

from __future__ import annotations

import numpy as np

from irqlab.engine import idle as I
from irqlab.plugins.api import ACTIONS

I64 = np.int64
A_SERVICE, A_EOI, A_IOAPIC_EOI, A_MASK, A_UNMASK, A_FORWARD, A_WAIT, A_RETURN = (
    ACTIONS.index(a) for a in ("SERVICE", "EOI", "IOAPIC_EOI", "MASK", "UNMASK", "FORWARD", "WAIT", "RETURN"))
ACT0 = 20  # phase of handler action a is ACT0 + a
# A step runs the groups of lanes (same next event code) at least this fraction of the
# largest group's size; the others wait and grow (0: run every group every step).
COHORT = 0.5
N_PHASES = max(ACT0 + len(ACTIONS), I.END)
ONE = I64(1)


def high_bit(x: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of each int64 (< 2**53), -1 for 0."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1


def sub(v, mask):
    """``v[mask]`` for a per-lane vCPU array; a scalar vCPU index stays as it is."""
    return v[mask] if isinstance(v, np.ndarray) else v
