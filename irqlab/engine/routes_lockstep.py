"""Guest actions that change routes in the lockstep executor, rule for rule as
:mod:`irqlab.engine.kernel_routes` (docs/model.md states the rules); a mixin
of :class:`~irqlab.engine.lockstep.Lockstep`. Shapes: ``lanes`` int64[n]; ``f`` the flat
vCPU index ``lane * V + v``.

State: ``rte_dest``, ``kdest`` int64[L, NP] (pin columns ``pk``), ``msi_dest`` int64[L, D],
``eoi_bits``, ``pir``, ``entry_at`` int64[L*V], ``scan_req`` bool[L*V], ``dead_since`` int64[L, NP];
action slots ``T[c_act + k]``. Rescans are rare (route changes), so they run lane by lane.
"""

from __future__ import annotations

import numpy as np

from irqlab.engine.program import L1, L2
from irqlab.engine.routes import KEEP, bitmap_text, scan_bits
from irqlab.plugins.api import NEVER

I64 = np.int64


class LockstepRoutes:
    def routes_init(self) -> None:
        pr, L, V = self.p, self.L, self.V
        self.routes_on = bool(pr.actions)
        NP = self.p_irr.shape[1]
        row = np.zeros(NP, I64)
        for d in pr.devices:
            if d.pin >= 0:
                row[self.pk[d.pin]] = d.dest
        self.rte_dest = np.tile(row, (L, 1))
        self.kdest = self.rte_dest.copy()
        self.msi_dest = np.tile(np.array([d.dest for d in pr.devices], I64), (L, 1)).reshape(L, len(pr.devices))
        bits = np.zeros(V, I64)
        for g in pr.groups:
            if g.eoi_exit:
                for v in g.targets or (g.dest,):  # every vCPU the route matches (kvm_apic_match_dest)
                    bits[v] |= 1 << g.index
        self.eoi_bits = np.tile(bits, L)
        self.scan_req = np.zeros(L * V, bool)
        self.pir = np.zeros(L * V, I64)
        self.entry_at = np.zeros(L * V, I64)
        self.dead_since = np.full((L, NP), NEVER, I64)
        for a in pr.actions:
            self.T[self.c_act + a.index] = self.params[a.at]
        self.group_of_vector = {g.vector: g.index for g in pr.groups}

    # ------------------------------------------------------------------ actions

    def action_event(self, lanes, k: int) -> None:
        a = self.p.actions[k]
        self.set_other(self.c_act + k, lanes, NEVER)
        for target, idx, dest, mask in a.writes:
            if target == "ioapic":
                if mask == KEEP:
                    cur = self.p_masked[lanes, self.pk[idx]]
                    for m in (False, True):
                        sub = lanes[cur == m]
                        if len(sub):
                            self.redirect_write(sub, idx, m, None if dest == KEEP else dest)
                else:
                    self.redirect_write(lanes, idx, bool(mask), None if dest == KEEP else dest)
            else:
                self.emit(lanes, "irqlab_msi_write", "dev {} dest {}", self.p.devices[idx].name, dest)
                self.msi_dest[lanes, idx] = dest
        every = self.params[a.every][lanes]
        self.set_other(self.c_act + k, lanes, np.where(every > 0, self.now[lanes] + every, NEVER))

    def update_kvm_routes(self, lanes) -> None:
        for pin in self.used_pins:
            col = self.pk[pin]
            up = lanes[~self.p_masked[lanes, col]]
            self.kdest[up, col] = self.rte_dest[up, col]
        self.request_scan(lanes, np.ones((len(lanes), self.V), bool))

    def request_scan(self, lanes, which) -> None:
        """KVM_REQ_SCAN_IOAPIC on the vCPUs ``which`` bool[n, V] of each lane."""
        if self.p.bare:
            return
        for v in range(self.V):
            sel = lanes[which[:, v]]
            f = sel * self.V + v
            self.settle(sel, f)
            now = self.in_guest(sel, f)
            if now.any():
                self.route_scan(sel[now], f[now])
            self.scan_req[f[~now]] = True

    def in_guest(self, lanes, f):
        return ((self.mode[f] == L1) | (self.mode[f] == L2)) & (self.now[lanes] >= self.entry_at[f])

    def route_scan(self, lanes, f, at=None) -> None:
        """Rescan the vCPUs ``f``; ``at`` int64[n]: the records' times (default: now)."""
        pr = self.p
        mode = pr.eoi_scan
        sync = mode == "pending_pir" or (mode == "pending" and not pr.split)
        table = self.kdest if pr.split else self.rte_dest
        for i, (lane, fi) in enumerate(zip(lanes.tolist(), f.tolist())):
            v = fi % self.V
            if sync:
                self.pir[fi] = 0
            pending = 0 if mode == "route" else (int(self.irr[fi]) & ~int(self.pir[fi])) | int(self.isr[fi])
            routes = [(pin, pr.groups[pr.pin_group[pin]].vector, int(table[lane, self.pk[pin]]),
                       pr.pin_level[pin]) for pin in self.used_pins]
            bits = scan_bits(routes, v, "split" if pr.split else "kernel", pending, self.group_of_vector)
            self.scan_req[fi] = False
            self.eoi_bits[fi] = bits
            self.emit(np.array([lane], I64), "irqlab_eoi_exitmap", "vcpu {} vectors {}", v,
                      bitmap_text(pr.groups, bits), thread=v, t=None if at is None else int(at[i]))

    # ------------------------------------------------------------------ hooks

    def settle(self, lanes, f) -> None:
        todo = (self.scan_req[f] | (self.pir[f] != 0)) & self.in_guest(lanes, f)
        if not todo.any():
            return
        tl, tf = lanes[todo], f[todo]
        req = self.scan_req[tf]
        if req.any():
            self.route_scan(tl[req], tf[req], self.entry_at[tf[req]])
        self.pir[tf] = 0

    def posted(self, lanes, f, bit) -> None:
        if self.p.apicv and not self.p.bare:
            self.settle(lanes, f)
            out = ~self.in_guest(lanes, f)
            self.pir[f[out]] |= bit

    def eoi_unseen(self, lanes, g) -> None:
        """``g`` int64[n] the groups whose EOI did not exit (-1: none)."""
        if not self.routes_on:
            return
        for gv in np.unique(g[g >= 0]).tolist():
            sel = lanes[g == gv]
            held = np.zeros(len(sel), bool)
            for u in range(self.V):
                fu = sel * self.V + u
                held |= ((self.irr[fu] | self.isr[fu]) >> gv) & 1 == 1
            for pin in self.p.groups[gv].pins:
                if not self.p.pin_level[pin]:
                    continue
                col = self.pk[pin]
                dead = sel[self.p_rirr[sel, col] & ~held & (self.dead_since[sel, col] == NEVER)]
                self.dead_since[dead, col] = self.now[dead]

    def rirr_cleared(self, sel, pin: int) -> None:
        col = self.pk[pin]
        ds = self.dead_since[sel, col]
        m = ds != NEVER
        if m.any():
            ml = sel[m]
            self.stats.dead_ps[ml] += self.now[ml] - ds[m]
            self.dead_since[ml, col] = NEVER

    def routes_finish(self, lanes, t_end) -> None:
        for col in range(self.dead_since.shape[1]):
            ds = self.dead_since[lanes, col]
            m = (ds != NEVER) & (t_end > ds)
            self.stats.dead_ps[lanes[m]] += (t_end - ds)[m]
