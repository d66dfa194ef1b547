"""Issue 13, mechanism 4 in the lockstep executor, rule for rule as
:mod:`irqlab.engine.kernel_tpr` (docs/model.md states the rules); a mixin of
:class:`~irqlab.engine.lockstep.Lockstep`. Shapes: ``f`` int64[n] flat vCPU rows.
"""

from __future__ import annotations

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine.lockstep_base import high_bit, sub
from irqlab.engine.program import L0, L1, USER


class LockstepPriority:
    """State: ``tpr_cls`` int64[L*V], TPR[7:4] of each vCPU row (None: TPR 0 everywhere);
    ``exit_rem`` int64[L*V]; ``svi_stale`` int64[L*V] (-1: SVI is right); ``l2_eoi``
    bool[L*V]. The rules are kernel_tpr's."""

    def prio_init(self) -> None:
        self.tpr_cls = None
        if self.p.tpr:
            self.tpr_cls = np.repeat(np.asarray(self.params["machine.tpr"], np.int64) >> 4, self.V)
        LV = self.L * self.V
        self.exit_every = None
        self.exit_rem = np.zeros(LV, np.int64)
        if self.p.l2_exit:
            self.exit_every = np.asarray(self.params["machine.l2_exit_every"], np.int64)
            self.exit_rem[:] = np.repeat(self.exit_every, self.V)
        self.svi_stale = np.full(LV, -1, np.int64)
        self.l2_eoi = np.zeros(LV, bool)
        self.g_l2_eoi = np.array([g.l2_eoi for g in self.p.groups] + [False], bool)
        self.l2_eoi_on = bool(self.g_l2_eoi.any())
        self.svi_on = self.l2_eoi_on and self.p.apicv and not self.p.defer_svi  # SVI can go stale

    def ppr_class(self, f):
        """PPR[7:4] of rows ``f``: the larger of TPR[7:4] and the highest in-service class
        (-1 with TPR 0 and nothing in service: every vector is then above it)."""
        isrv = self.gcls[high_bit(self.isr[f])]
        return isrv if self.tpr_cls is None else np.maximum(isrv, self.tpr_cls[f])

    def deliverable(self, f):
        ppr = self.gcls[high_bit(self.isr[f])]
        if self.tpr_cls is not None:
            ppr = np.maximum(ppr, self.tpr_cls[f])
        return self.gcls[high_bit(self.irr[f])] > ppr

    def l1_deliverable(self, f):
        if not self.svi_on:
            return self.deliverable(f)
        irr_cls = self.gcls[high_bit(self.irr[f])]
        return (irr_cls > self.ppr_class(f)) & (irr_cls > self.gcls[self.svi_stale[f]])

    def vmresume_pending(self, f):
        return self.deliverable(f) if self.p.vppr_refresh else self.l1_deliverable(f)

    def svi_sync(self, f) -> None:
        self.svi_stale[f] = -1

    # ------------------------------------------------------------------ L2's exits to L1

    def exit_schedule(self, lanes, f, t0) -> None:
        v = f % self.V
        t = t0 + self.exit_rem[f]
        first = t < self.T[self.c_vcpu + v, lanes]
        if first.any():
            self.phase[f[first]] = P.RUN_EXIT
            self.tset(self.c_vcpu + sub(v, first), lanes[first], t[first])

    def ph_run_exit(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        self.exit_rem[f] = self.exit_every[lanes]
        self.l2_exit(lanes, f, "EPT_MISCONFIG")
        vmexit = self.c["vmexit"][lanes]
        self.emit(lanes, "kvm_nested_vmexit_inject", "reason EPT_MISCONFIG info1 0 info2 0 int_info 0 "
                  "int_info_err 0", t=t + vmexit)
        start = self.enter(lanes, f, L1, L0, vmexit + self.c["nested_exit"][lanes])
        self.at(lanes, v, P.L1_EXIT, start + self.c["handler"][lanes])

    def ph_l1_exit(self, lanes, f, v):
        self.vmresume(lanes, f, v)

    # ------------------------------------------------------------------ L2's EOI of L1's vector

    def l2_eoi_exit(self, lanes, f, v) -> None:
        self.stats.eoi_count[lanes] += 1
        self.l2_eoi_write(lanes, f)
        self.eoi_vec[f] = -2
        self.l2_eoi[f] = True
        self.at(lanes, v, P.EOI_L0, self.now[lanes] + self.c["vmexit"][lanes] + self.c["eoi"][lanes])

    def l2_eoi_svi(self, f, g) -> None:
        if self.svi_on:
            stale = self.l2_eoi[f] & (g >= 0)
            self.svi_stale[f[stale]] = g[stale]

    def eoi_return(self, lanes, f, v, mode: int, extra=None) -> None:
        """Back from an EOI exit after ``extra`` more time in ``mode``: into L1's handler, or
        after an EOI L2 wrote on to L0's nested-event check (kernel_tpr.eoi_return)."""
        back = self.l2_eoi[f] if self.l2_eoi_on else None
        if back is not None and back.any():
            bl, bf = lanes[back], f[back]
            self.l2_eoi[bf] = False
            t = self.now[bl] + (0 if extra is None else extra[back])
            self.at(bl, sub(v, back), P.L0_CHECK if mode == L0 else P.EOI_BACK, t)
            go = ~back
            lanes, f, v = lanes[go], f[go], sub(v, go)
            extra = None if extra is None else extra[go]
            if not len(lanes):
                return
        self.advance(lanes, f, self.enter(lanes, f, L1, mode, extra))

    def ph_eoi_back(self, lanes, f, v):
        self.exit_to(lanes, f, USER, L0)
        self.ph_l0_check(lanes, f, v)
