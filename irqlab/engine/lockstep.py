"""The lockstep executor: many lanes advance together, one event per lane per step.

State is a set of NumPy arrays shaped ``[L, ...]`` (lanes first; vCPU state
flattened to ``[L*V]`` with ``f = lane*V + v``). Each step:

1. every active lane picks its next event: the earliest of its slots
   ``T[S, L]`` (END, SAMPLE, device arrivals, timers, vCPUs; ties go to the
   lower slot), exactly as the kernel orders them;
2. lanes are grouped by *event code* (the slot kind, or the vCPU's phase);
3. the larger groups run (see ``COHORT``): each group's handler updates its
   lanes' rows with element-wise operations. Lanes of small groups wait for a
   later step, so that groups grow into cohorts that share handler calls.

A lane's rows are only ever touched by its own events, and every operation is
element-wise, so a lane computes the same bits whichever batch it runs in.
The semantics are the per-lane kernel's (:mod:`irqlab.engine.kernel`), rule for rule.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine.dest_lockstep import LockstepDest
from irqlab.engine.idle_lockstep import LockstepIdle
from irqlab.engine.mech_lockstep import LockstepMechanisms
from irqlab.engine.routes_lockstep import LockstepRoutes
from irqlab.engine.timers_lockstep import LockstepTimers, n_timer_slots
from irqlab.engine.tpr_lockstep import LockstepPriority
from irqlab.engine.context import (
    PluginFailure, body_contexts, call_plugin, check_fingerprints, init_plugins, is_body_step, plugin_contexts,
    plugin_fingerprints, service_contexts,
)
from irqlab.engine.program import L0, USER, Lane, Program
from irqlab.engine.result import BatchResult
from irqlab.engine.rng import lane_keys, uniform
from irqlab.engine.stats import EXIT_INDEX, Stats, finish_batch
from irqlab.engine.trace import KWORKER, QEMU, Trace
from irqlab.engine.vendor import record_text
from irqlab.plugins.api import ACTIONS, NEVER, TimerEvent
from irqlab.engine.lockstep_base import A_RETURN, COHORT, I64, N_PHASES
from irqlab.engine.lockstep_irqchip import LockstepIrqchip
from irqlab.engine.lockstep_phases import LockstepPhases


class Lockstep(LockstepIrqchip, LockstepPhases, LockstepMechanisms, LockstepRoutes, LockstepTimers, LockstepIdle,
               LockstepDest, LockstepPriority):
    """One batch of lanes of one program."""

    def __init__(self, program: Program, lanes: Sequence[Lane], trace_lanes: tuple[int, ...] = ()) -> None:
        pr = self.p = self.program = program
        L = self.L = len(lanes)
        V = self.V = pr.n_vcpus
        D, G, Pn, K = len(pr.devices), len(pr.groups), pr.n_pins, pr.n_timers
        if G > 52:
            raise ValueError("at most 52 distinct vectors per scenario")
        self.params = pr.lane_params(lanes)
        self.lanes = lanes  # for their seeds, read at the first random draw
        self.keys: np.ndarray | None = None  # derived on the first random draw
        self.counters: dict[int, np.ndarray] = {}
        self.stats = Stats.zeros(L, pr)
        self.now = np.zeros(L, I64)
        self.thread = np.zeros(L, I64)  # [L] the thread (vCPU, QEMU, kworker) of each lane's event
        self.owner = QEMU if pr.split else KWORKER
        # slots
        self.c_sample = 1
        self.c_arr = 2
        self.c_tim = 2 + D
        self.c_host = 2 + D + K  # VFIO host slots (mech_lockstep), then the slots below, then the vCPUs
        self.c_act = self.c_host + len(pr.vfio_devices)  # guest actions (routes_lockstep)
        self.c_ts = self.c_act + len(pr.actions)  # timer slots (timers_lockstep)
        self.c_vcpu = self.c_ts + n_timer_slots(pr)
        S = self.S = self.c_vcpu + V
        self.T = np.full((S, L), NEVER, I64)  # slot-major: T[slot][lanes] is a 1-D gather
        self.T[0] = self.params["run.duration"]
        # The earliest non-vCPU slot of each lane, cached: those slots change rarely
        # (arrivals, timers), so a step mostly compares it with the vCPU's time.
        self.t_other = np.zeros(L, I64)
        self.s_other = np.zeros(L, I64)
        self.dirty = np.ones(L, bool)
        # vCPUs, flat [L*V]
        LV = L * V
        inner = pr.innermost
        self.phase = np.full(LV, P.RUN_IDLE, I64)
        self.mode = np.full(LV, inner, I64)
        self.since = np.zeros(LV, I64)
        # the last entry's prefix segments (mode, ps), to undo what lies beyond the run's end
        # whether the last entry came from userspace (its time before L0's vmentry)
        self.pre_user = np.zeros(LV, bool)
        self.grp = np.full(LV, -1, I64)
        self.pc = np.zeros(LV, I64)
        self.run_start = np.zeros(LV, I64)
        self.pt_armed = np.zeros(LV, bool)
        self.pt_deadline = np.full(LV, NEVER, I64)
        self.rip = np.zeros(LV, I64)
        self.eoi_vec = np.full(LV, -1, I64)
        self.mmio_action = np.zeros(LV, I64)
        self.mmio_step = np.zeros(LV, I64)
        self.mmio_n = np.zeros(len(ACTIONS), I64)  # by action code: accesses, and the acting one
        self.mmio_effect = np.zeros(len(ACTIONS), I64)
        for name, (n, k) in P.MMIO_ACCESSES.items():
            self.mmio_n[ACTIONS.index(name)], self.mmio_effect[ACTIONS.index(name)] = n, k
        self.irq_seen = np.zeros(LV, bool)
        self.stall_start = np.full(LV, NEVER, I64)
        self.accm = [np.zeros(LV, I64) for _ in range(4)]  # time per mode, [L*V] each
        self.stall_max = self.stats.stall_max.reshape(LV)
        # LAPICs
        self.irr = np.zeros(LV, I64)
        self.isr = np.zeros(LV, I64)
        self.tmr = np.zeros(LV, I64)
        # IOAPIC: only the pins devices use, [L, n_used + 1]; pk maps gsi -> column, and
        # pins nobody uses share the last column (reads are 0, writes are ignored)
        self.used_pins = sorted({d.pin for d in pr.devices if d.pin >= 0})
        NP = len(self.used_pins) + 1
        self.pk = [len(self.used_pins)] * Pn
        for k, pin in enumerate(self.used_pins):
            self.pk[pin] = k
        self.pk_arr = np.array(self.pk, I64)
        self.p_irr = np.zeros((L, NP), bool)
        self.p_rirr = np.zeros((L, NP), bool)
        self.p_masked = np.zeros((L, NP), bool)
        self.p_line = np.zeros((L, NP), np.int16)
        # devices [L, D]
        self.pending = np.zeros((L, D), I64)
        self.asserted = np.zeros((L, D), bool)
        self.forwarded = np.zeros((L, D), bool)
        self.svc_rem = np.zeros((L, D), I64)
        self.episode = np.full((L, D), NEVER, I64)
        self.fresh = np.zeros((L, D), bool)  # an arrival raised an interrupt not yet delivered or merged
        self.edge_merged = np.zeros(L, bool)  # set_line: a KVM edge found irr already set
        self.pin_devs = {pin: [d.index for d in pr.devices if d.pin == pin] for pin in self.used_pins}
        self.service_ps = (np.stack([self.params[d.service] if d.service_dist is None else np.zeros(L, I64)
                                     for d in pr.devices], 1) if D else np.zeros((L, 0), I64))
        # groups
        self.waiting = np.zeros((L, max(G, 1)), bool)
        self.wait_pc = np.zeros((L, max(G, 1)), I64)
        maxpc = max((len(g.steps) for g in pr.groups), default=1)
        self.act_code = np.full((max(G, 1), maxpc), A_RETURN, I64)
        self.before_ps = np.zeros((L, max(G, 1), maxpc), I64)
        for g in pr.groups:
            for k, st in enumerate(g.steps):
                self.act_code[g.index, k] = ACTIONS.index(st.action)
                if g.before[k] is not None:
                    self.before_ps[:, g.index, k] = self.params[g.before[k]]
        self.maxpc = maxpc
        self.act_flat = self.act_code.ravel()
        # handler-step delays: one table if every lane has the same, else per lane
        self.before_same = bool((self.before_ps == self.before_ps[:1]).all()) if L else True
        if self.before_same:
            self.before_ps = self.before_ps[:1]
        self.before_flat = self.before_ps.reshape(-1)
        self.G1 = max(G, 1)
        self.gcls = np.array([g.vector >> 4 for g in pr.groups] + [-1], I64)
        self.gvec = np.array([g.vector for g in pr.groups] + [0], I64)
        self.g_eoi_exit = np.array([g.eoi_exit for g in pr.groups] + [False], bool)
        self.g_broadcast_ok = np.array(
            [g.delivery == "ioapic" and not (g.suppress and (pr.suppress_mode == "on" or not pr.split))
             for g in pr.groups] + [False], bool)
        self.dev_group = np.array([d.group for d in pr.devices], I64)
        # costs [L]
        self.c = {name[6:]: self.params[name] for name in self.params if name.startswith("costs.")}
        self.c_half_user = self.c["userspace_exit"] // 2
        self.c_rest_user = self.c["userspace_exit"] - self.c_half_user
        self.max_events = self.params["run.max_events"]
        # tracing
        self.traced = np.zeros(L, bool)
        self.traces: dict[int, Trace] = {}
        for i in trace_lanes:
            if 0 <= i < L:
                self.traced[i] = True
                self.traces[i] = Trace()
        self.tracing = bool(self.traces)
        if self.tracing:
            for i in self.traces:
                for v in range(V):
                    self.traces[i].modes.append((0, v, inner))
        # series
        self.samples: dict[int, list[tuple[float, ...]]] = {}  # lane -> its samples, once it has one
        # plugins
        self.ctx_arrival, self.ctx_model, self.ctx_mit = plugin_contexts(self, L)
        self.ctx_service = service_contexts(self, L)
        self.ctx_body = body_contexts(self, L)
        self.body_steps = [(g, k) for g in pr.groups for k in range(len(g.steps)) if is_body_step(g, k)]
        self.mech_init()
        self.routes_init()
        self.timers_init()
        self.idle_init()
        self.dest_init()
        self.prio_init()
        self.hooks = {h: [(m, self.ctx_mit[m.index]) for m in pr.mitigations if h in type(m.plugin).hooks]
                      for h in ("deliver", "ioapic_eoi", "redirect", "immediate_exit", "handler_done")}
        self.timer_owner = []
        for m in pr.mitigations:
            for j in range(type(m.plugin).timers):
                self.timer_owner.append((m, j))
        self.handlers = self._phase_table()

    # ================================================================== plugin-facing operations

    def draw(self, lanes, stream):
        c = self.counters.get(stream)
        if c is None:
            c = self.counters[stream] = np.zeros(self.L, I64)
        if self.keys is None:
            self.keys = lane_keys([(ln.seed, tuple(ln.spawn_key)) for ln in self.lanes])
        u = uniform(self.keys[lanes], stream, c[lanes])
        c[lanes] += 1
        return u

    def op_timer(self, lanes, k):
        return self.T[self.c_tim + k][lanes]

    def op_set_timer(self, lanes, k, t):
        self.set_other(self.c_tim + k, lanes, t)

    def set_other(self, col: int, lanes, t) -> None:
        """Set a non-vCPU slot (arrival, timer, sample) and refresh the lanes' cache."""
        self.T[col][lanes] = t
        self.dirty[lanes] = True

    def op_pin(self, lanes, pins, what):
        arr = {"line": self.p_line, "irr": self.p_irr, "remote_irr": self.p_rirr, "masked": self.p_masked}[what]
        out = arr[lanes, self.pk_arr[pins]]
        return out > 0 if what == "line" else out

    def op_service_all(self, lanes, level_only):
        self.service_all(lanes, level_only)

    def op_set_mask(self, lanes, pins, masked):
        for p in np.unique(pins):
            if int(p) not in self.used_pins:
                continue
            sel = lanes[pins == p]
            self.redirect_write(sel, int(p), masked)

    def op_poll(self, lanes, pins):
        for p in np.unique(pins):
            sel = lanes[pins == p]
            self.emit(sel, "irqlab_poll", "pin {}", int(p))
            for d in self.p.devices:
                if d.pin == int(p):
                    has = sel[self.pending[sel, d.index] > 0]
                    if len(has):
                        self.device_service(has, d.index)

    def op_activated(self, lanes, m):
        self.stats.act[lanes, m] += 1

    def op_trace(self, lanes, event, text):
        if isinstance(text, str):
            self.emit(lanes, event, "{}", text)
        else:
            self.emit(lanes, event, "{}", np.asarray(text, dtype=object))

    def op_pending(self, lanes, d):
        return self.pending[lanes, d]

    def op_set_pending(self, lanes, d, values):
        self.pending[lanes, d] = values

    # ================================================================== records

    def emit(self, lanes, event: str, fmt: str, *cols, t=None, thread=None) -> None:
        """Count one record per lane; trace it for traced lanes (``cols``: arrays
        aligned with ``lanes`` or scalars)."""
        self.stats.events[lanes] += 1
        if self.zt_depth:
            self.zt_since[lanes] += 1
        if not self.tracing:
            return
        sel = np.flatnonzero(self.traced[lanes])
        for i in sel:
            lane = int(lanes[i])
            args = [c[i] if isinstance(c, np.ndarray) else c for c in cols]
            tt = self.now[lane] if t is None else (t[i] if isinstance(t, np.ndarray) else t)
            th = self.thread[lane] if thread is None else thread
            text = fmt.format(*args)
            if self.zt_depth:
                self.zt_log.setdefault(lane, []).append(f"{event} {text}")
            self.traces[lane].add(int(tt), int(th), event, record_text(self.p.vendor, event, text))

    def exit(self, lanes, reason: str, rip, info=0) -> None:
        self.stats.exits[lanes, EXIT_INDEX[reason]] += 1
        self.emit(lanes, "kvm_exit", "reason {} rip 0x{:x} info {:x} 0", reason, rip, info)

    def rip_of(self, f, base: int):
        """Guest instruction pointers for trace text: ``base`` + progress (only when tracing,
        since the addresses do not fit in int64)."""
        if not self.tracing:
            return 0
        return (self.rip[f] // 1000 * 4).astype(object) + base

    def l2_rip(self, f):
        return self.rip_of(f, P.RIP_L2_BASE)

    # ================================================================== time accounting

    def exit_to(self, lanes, f, old: int, new: int) -> None:
        """Leave mode ``old`` now for ``new`` (an exit: no time in between)."""
        t = self.now[lanes]
        self.accm[old][f] += t - self.since[f]
        if self.tracing:
            self._trace_modes(lanes, f, t, new, ())
        self.mode[f] = new
        self.since[f] = t

    def _trace_modes(self, lanes, f, t, new_mode, prefix):
        for i in np.flatnonzero(self.traced[lanes]):
            lane = int(lanes[i])
            v = int(f[i]) % self.V
            tt = int(t[i])
            for m, dt in prefix:
                d = int(dt[i]) if isinstance(dt, np.ndarray) else int(dt)
                if d:
                    self.traces[lane].modes.append((tt, v, m))
                tt += d
            self.traces[lane].modes.append((tt, v, new_mode))

    def enter(self, lanes, f, level: int, old: int, extra=None):
        """kvm_entry into ``level``: from mode ``old`` (L0 or userspace), after ``extra``
        more time in ``old``, then L0's vmentry. Returns when the guest's code starts."""
        t = self.now[lanes]
        since = self.since[f]
        vmentry = self.c["vmentry"][lanes]
        entry_t = t if extra is None else t + extra
        self.emit(lanes, "kvm_entry", "vcpu {}", f % self.V, t=entry_t)
        if self.routes_on:
            self.entry_at[f] = entry_t  # the entry's rescan and PIR sync: routes_lockstep.settle
        if old == L0:
            self.accm[L0][f] += entry_t - since + vmentry
        else:
            self.accm[old][f] += entry_t - since
            self.accm[L0][f] += vmentry
        self.pre_user[f] = old == USER
        start = entry_t + vmentry
        if self.tracing:
            prefix = [(old, t - t if extra is None else extra), (L0, vmentry)]
            self._trace_modes(lanes, f, t, level, prefix)
        self.mode[f] = level
        self.since[f] = start
        return start

    def at(self, lanes, v, phase, t):
        if self.V == 1:
            self.phase[lanes] = phase
            self.T[self.c_vcpu][lanes] = t
        else:
            self.phase[lanes * self.V + v] = phase
            self.tset(self.c_vcpu + v, lanes, t)

    def tset(self, col, lanes, t):
        """Set slot times; ``col`` a slot index or an array of them (one per lane)."""
        if isinstance(col, np.ndarray) and col.ndim:
            self.T[col, lanes] = t
        else:
            self.T[int(col)][lanes] = t

    # ================================================================== LAPIC

    # ================================================================== devices

    def arrival(self, lanes, di: int) -> None:
        d = self.p.devices[di]
        t = self.now[lanes]
        s = self.stats
        s.raised[lanes] += 1
        s.dev_raised[lanes, di] += 1
        self.pending[lanes, di] += 1
        self.note_arrival(lanes, di)
        raise_now = np.asarray(call_plugin(self.ctx_model[di], "device", d.model.on_arrival, lanes), bool)
        up = lanes[raise_now]
        if (~raise_now).any():
            self.merge(lanes[~raise_now], di)
        if len(up):
            if d.delivery == "msi":
                self.fresh[up, di] = True
                dests = self.msi_dest[up, di] if self.routes_on else np.full(len(up), d.dest, I64)
                for v in np.unique(dests).tolist():
                    sub = up[dests == v]
                    if self.p.bare:
                        self.emit(sub, "irqlab_msi", "dst {} vec {}", v, d.vector)
                    else:
                        dst, how = self.msg_of(d.group, v)
                        self.emit(sub, "kvm_msi_set_irq", "dst {} vec {} ({}|edge)", dst, d.vector, how)
                    self.count_delivery(sub, [di], self.deliver(sub, d.group, False, v))
            elif d.trigger == "level":
                already = self.asserted[up, di]
                if already.any():
                    self.merge(up[already], di)
                up = up[~already]
                self.asserted[up, di] = True
                self.fresh[up, di] = True
                if d.vfio:
                    if len(up):
                        self.vfio_rise(up, di)
                    up = up[:0]
                self.p_line[up, self.pk[d.pin]] += 1
                first_up = up[self.p_line[up, self.pk[d.pin]] == 1]
                if len(first_up):
                    self.set_line(first_up, d.pin, 1)
            else:
                was = self.fresh[up, di].copy()
                self.edge_merged[up] = False
                self.fresh[up, di] = True
                self.set_line(up, d.pin, 1)
                self.set_line(up, d.pin, 0)
                mg = was | self.edge_merged[up]
                if mg.any():
                    self.merge(up[mg], di)
                    self.fresh[up[mg], di] = was[mg] & self.fresh[up[mg], di]
                lost = self.fresh[up, di] & ~self.p_irr[up, self.pk[d.pin]]
                if lost.any():
                    self.fresh[up[lost], di] = False
                    s.dev_lost[up[lost], di] += 1
        nxt = np.asarray(call_plugin(self.ctx_arrival[di], "arrival", d.arrival.next, lanes, t), I64)
        self.set_other(self.c_arr + di, lanes, np.maximum(nxt, t))

    def note_arrival(self, lanes, di: int) -> None:
        """The reference's ``note_arrival`` for ``lanes``."""
        d = self.p.devices[di]
        t = self.now[lanes]
        s = self.stats
        first = s.first_irq[lanes] == NEVER
        s.first_irq[lanes[first]] = t[first]
        if self.routes_on:  # the vCPU its route names now (routes_lockstep)
            to = self.msi_dest[lanes, di] if d.delivery == "msi" else self.kdest[lanes, self.pk[d.pin]]
            f = lanes * self.V + to
        else:
            f = lanes * self.V + d.dest
        new = ~self.irq_seen[f]
        if new.any():
            fn = f[new]
            self.irq_seen[fn] = True
            idle = self.run_start[fn] == NEVER
            self.stall_start[fn[idle]] = t[new][idle]
        ep = self.episode[lanes, di] == NEVER
        self.episode[lanes[ep], di] = t[ep]

    def device_service(self, lanes, di: int, f=None):
        """The driver (on vCPU rows ``f``; None: outside a handler) finishes servicing device
        ``di`` in ``lanes``; returns handled[n]."""
        d = self.p.devices[di]
        handled, lower = call_plugin(self.ctx_model[di], "device", d.model.on_service, lanes)
        handled = np.asarray(handled, bool)
        lower = np.asarray(lower, bool) & d.lowers_line
        after = self.pending[lanes, di]
        s = self.stats
        h = lanes[handled]
        if len(h):
            if self.p.idle:
                self.idle_work(h, di, None if f is None else f[handled])
            s.dev_serviced[h, di] += 1
            ep = self.episode[h, di]
            has = ep != NEVER
            hh = h[has]
            if len(hh):
                s.add_latency(hh, di, self.now[hh] - ep[has])
            self.episode[h, di] = np.where(after[handled] > 0, self.now[h], NEVER)
        low = lanes[lower & self.asserted[lanes, di]]
        if len(low):
            early = low[self.fresh[low, di]]  # serviced before its assertion was delivered
            if len(early):
                self.fresh[early, di] = False
                self.merge(early, di)
            self.asserted[low, di] = False
            if d.vfio:  # VFIO: the host line drops; KVM's GSI waits for the resampler
                return handled
            self.p_line[low, self.pk[d.pin]] -= 1
            zero = low[self.p_line[low, self.pk[d.pin]] == 0]
            if len(zero):
                self.set_line(zero, d.pin, 0)
        if self.tkind:
            self.timer_serviced(lanes[handled], di)
        return handled

    # ================================================================== running guest code

    def cur_fwd(self, lanes, v):
        """The device the innermost level is servicing: the lowest forwarded one, or -1."""
        cur = np.full(len(lanes), -1, I64)
        for d in reversed(self.p.devices):
            hit = self.forwarded[lanes, d.index] & (v == d.dest)
            cur[hit] = d.index
        return cur

    def start_run(self, lanes, f, t0) -> None:
        self.run_start[f] = t0
        if self.p.idle:
            self.idle_run(lanes, f, t0)
            return
        v = f % self.V
        cur = self.cur_fwd(lanes, v) if self.p.nested else np.full(len(lanes), -1, I64)
        has = cur >= 0
        svc_t = np.where(has, t0 + self.svc_rem[lanes, np.maximum(cur, 0)], NEVER)
        pt_t = np.where(self.pt_armed[f], self.pt_deadline[f], NEVER)
        svc = has & (svc_t <= pt_t)
        ph = np.where(svc, P.RUN_SVC, np.where(pt_t != NEVER, P.RUN_PT, P.RUN_IDLE))
        self.phase[f] = ph
        self.tset(self.c_vcpu + v, lanes, np.where(svc, svc_t, pt_t))
        if self.p.l2_exit:
            self.exit_schedule(lanes, f, t0)

    def end_run(self, lanes, f, t) -> None:
        start = self.run_start[f]
        self.run_start[f] = NEVER
        elapsed = t - start
        pos = elapsed > 0
        s = self.stats
        if pos.any():
            pl, pf, pstart, pt = lanes[pos], f[pos], start[pos], t[pos]
            self.close_stall(pf, pstart)
            first = s.first_irq[pl]
            new = (first != NEVER) & (pt > first) & (s.ttp[pl] == NEVER)
            if new.any():
                val = np.maximum(pstart[new], first[new]) - first[new]
                s.ttp[pl[new]] = val
                if self.p.nested:
                    s.ttp_l2[pl[new]] = val
            if self.p.nested:
                cur = self.cur_fwd(pl, pf % self.V)
                c = cur >= 0
                self.svc_rem[pl[c], cur[c]] -= elapsed[pos][c]
            self.rip[pf] += elapsed[pos]
            if self.p.idle:
                self.idle_progress(pl, pf, elapsed[pos])
            if self.p.l2_exit:
                self.exit_rem[pf] -= elapsed[pos]
            self.stall_start[pf] = np.where(self.irq_seen[pf], pt, NEVER)
        neg = ~pos
        if neg.any():
            nf = f[neg]
            st = self.irq_seen[nf] & (self.stall_start[nf] == NEVER)
            self.stall_start[nf[st]] = start[neg][st]

    def close_stall(self, f, t) -> None:
        s = self.stall_start[f]
        has = s != NEVER
        if has.any():
            fh = f[has]
            self.stall_max[fh] = np.maximum(self.stall_max[fh], t[has] - s[has])
            self.stall_start[fh] = NEVER

    # ================================================================== phases

    # ================================================================== slots other than vCPUs

    def on_timer(self, lanes, k):
        self.set_other(self.c_tim + k, lanes, NEVER)
        m, j = self.timer_owner[k]
        call_plugin(self.ctx_mit[m.index], "mitigation", m.plugin.on_timer, TimerEvent(lanes, j))

    def on_sample(self, lanes):
        t = self.now[lanes]
        V = self.V
        f = lanes[:, None] * V + np.arange(V)[None, :]
        acc = np.stack([self.accm[m][f] for m in range(4)], axis=-1).astype(np.float64)  # [n, V, 4]
        part = np.maximum(t[:, None] - self.since[f], 0).astype(np.float64)
        mode = self.mode[f]
        for m in range(4):
            acc[:, :, m] += np.where(mode == m, part, 0.0)
        s = self.stats
        values = {
            "t_ns": t / 1000.0,
            "l2_time_ns": acc[:, :, 2].sum(1) / 1000.0, "l1_time_ns": acc[:, :, 1].sum(1) / 1000.0,
            "l0_time_ns": acc[:, :, 0].sum(1) / 1000.0, "userspace_time_ns": acc[:, :, 3].sum(1) / 1000.0,
            "eoi_count": s.eoi_count[lanes], "exits_total": s.exits[lanes].sum(1),
            "interrupts_raised": s.raised[lanes], "interrupts_delivered": s.delivered[lanes],
            "pending": self.pending[lanes].sum(1),
            "irr": np.array([sum(bin(int(x)).count("1") for x in self.irr[row]) for row in f]),
            "line": (self.p_line[lanes] > 0).sum(1),
        }
        names = ("t_ns",) + self.p.series_fields
        cols = [np.asarray(values[n], dtype=np.float64) for n in names]
        for i, lane in enumerate(lanes):
            self.samples.setdefault(int(lane), []).append(tuple(float(c[i]) for c in cols))
        self.set_other(self.c_sample, lanes, t + np.maximum(self.params["run.series.every"][lanes], 1))

    def finish(self, lanes, t_end) -> None:
        self.now[lanes] = t_end
        for v in range(self.V):
            f = lanes * self.V + v
            open_run = self.run_start[f] != NEVER
            if open_run.any():
                ol, of = lanes[open_run], f[open_run]
                self.end_run(ol, of, np.maximum(t_end[open_run], self.run_start[of]))
            over = self.since[f] - t_end
            ok = over <= 0
            for m in range(4):
                sel = ok & (self.mode[f] == m)
                fo = f[sel]
                self.accm[m][fo] += t_end[sel] - self.since[fo]
            if (~ok).any():
                # The last entry's transit reaches past the end: take back what lies beyond
                # it, from L0's vmentry first, then from the userspace or L0 time before it.
                of, ov = f[~ok], over[~ok]
                take = np.minimum(self.c["vmentry"][lanes[~ok]], ov)
                self.accm[L0][of] -= take
                user = self.pre_user[of]
                self.accm[USER][of[user]] -= (ov - take)[user]
                self.accm[L0][of[~user]] -= (ov - take)[~user]
            self.close_stall(f, t_end)
        if self.routes_on:
            self.routes_finish(lanes, t_end)
        self.stats.dev_pending[lanes] = self.fresh[lanes]
        self.stats.end_t[lanes] = t_end
        self.T[:, lanes] = NEVER
        fl = (lanes[:, None] * self.V + np.arange(self.V)[None, :]).reshape(-1)
        for m in range(4):
            self.stats.acc[:, :, m].reshape(-1)[fl] = self.accm[m][fl]
        if self.tracing:
            for i, lane in enumerate(lanes):
                if int(lane) in self.traces:
                    self.traces[int(lane)].end_ps = int(t_end[i])

    def release(self) -> None:
        """Drop every array of the batch now (the plugin contexts refer back to this
        object, so without this the state would wait for the garbage collector)."""
        vars(self).clear()

    def state_bytes(self) -> int:
        """Bytes of the arrays this batch keeps for its whole run (shared arrays once,
        zero-stride broadcasts as nothing)."""
        seen: dict[int, int] = {}

        def add(a):
            if isinstance(a, np.ndarray):
                base = a
                while base.base is not None and isinstance(base.base, np.ndarray):
                    base = base.base
                seen[id(base)] = 0 if (a.ndim and a.strides[0] == 0) else base.nbytes

        for v in vars(self).values():
            for x in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else [v]):
                add(x)
        for f in self.stats.__dataclass_fields__:
            add(getattr(self.stats, f))
        for c in self.ctx_arrival + self.ctx_model + self.ctx_mit:
            for a in c.state._arrays.values():
                add(a)
        return sum(seen.values())

    # ================================================================== the loop

    def init(self) -> None:
        pr = self.p
        lanes = np.arange(self.L, dtype=I64)
        for d, first in zip(pr.devices, init_plugins(self, lanes)):
            self.T[self.c_arr + d.index] = first
        self.fingerprints = plugin_fingerprints(pr)
        if pr.series_fields:
            self.T[self.c_sample] = 0

    def next_events(self, lanes) -> None:
        """Find each lane's next event: its slot, time and event code (the slot kind, or
        the vCPU's phase). Shapes: ``lanes`` int64[n]; fills ``s_next``, ``t_next``, ``code``."""
        T, c_vcpu, V = self.T, self.c_vcpu, self.V
        t_other, s_other, dirty = self.t_other, self.s_other, self.dirty
        every = len(lanes) == self.L  # then lanes == arange(L): whole arrays, no gathers
        idx = slice(None) if every else lanes
        d = np.flatnonzero(dirty) if every else lanes[dirty[lanes]]
        if len(d):
            sub = T[:c_vcpu, d]
            so = sub.argmin(axis=0)
            s_other[d] = so
            t_other[d] = np.take_along_axis(sub, so[None, :], 0)[0]
            dirty[d] = False
        if V == 1:
            tv = T[c_vcpu][idx]
            vs = 0
        else:
            Tv = T[c_vcpu:, idx]
            vs = Tv.argmin(axis=0)
            tv = np.take_along_axis(Tv, vs[None, :], 0)[0]
        to = t_other[idx]
        isv = tv < to  # ties go to the non-vCPU slot, which comes first
        so = s_other[idx]
        self.t_next[idx] = np.where(isv, tv, to)
        if V == 1:
            self.code[idx] = np.where(isv, c_vcpu + self.phase[idx], so)
        else:
            s = np.where(isv, c_vcpu + vs, so)
            self.s_next[lanes] = s
            code = s.copy()
            code[isv] = c_vcpu + self.phase[lanes[isv] * V + (s[isv] - c_vcpu)]
            self.code[lanes] = code

    def run(self) -> Stats:
        """Run every lane to its end. Each step takes the lanes whose next event has the same
        code, for the largest such groups only (see COHORT): lanes in small groups wait, so
        that groups grow into cohorts and each handler call serves many lanes. A lane always
        processes its own events in time order, whichever step that happens in, so the
        schedule changes the speed and never the result."""
        self.init()
        L, V = self.L, self.V
        T = self.T
        c_arr, c_tim, c_vcpu = self.c_arr, self.c_tim, self.c_vcpu
        handlers = self.handlers
        n_codes = c_vcpu + N_PHASES
        events, max_events, now = self.stats.events, self.max_events, self.now
        self.t_next = np.zeros(L, I64)
        self.s_next = np.zeros(L, I64)
        self.code = np.zeros(L, I64)
        act = np.arange(L, dtype=I64)
        self.next_events(act)
        while len(act):
            every = len(act) == L
            codes = self.code if every else self.code[act]
            counts = np.bincount(codes, minlength=n_codes)
            chosen = np.flatnonzero(counts >= max(1, COHORT * counts.max()))
            done, finished = [], False
            for c in chosen:
                if counts[c] == len(act):
                    lanes = act
                    if every:
                        now[:] = self.t_next
                    else:
                        now[lanes] = self.t_next[lanes]
                else:
                    lanes = act[codes == c]
                    now[lanes] = self.t_next[lanes]
                if c >= c_vcpu:
                    if V == 1:
                        v, f = 0, lanes
                        T[c_vcpu][lanes] = NEVER
                    else:
                        v = self.s_next[lanes] - c_vcpu
                        f = lanes * V + v
                        T[c_vcpu + v, lanes] = NEVER
                    self.thread[lanes] = v
                    if self.routes_on:
                        self.settle(lanes, f)
                    handlers[c - c_vcpu](lanes, f, v)
                elif c == 0:
                    self.finish(lanes, now[lanes])
                    finished = True
                    continue
                elif c == self.c_sample:
                    self.on_sample(lanes)
                elif c < c_tim:
                    self.thread[lanes] = QEMU
                    di = int(c - c_arr)
                    (self.timer_expire if di in self.tkind else self.arrival)(lanes, di)
                elif c >= self.c_ts:
                    self.tslot_event(lanes, int(c - self.c_ts))
                elif c >= self.c_act:
                    self.thread[lanes] = self.owner
                    self.action_event(lanes, int(c - self.c_act))
                elif c >= self.c_host:
                    self.thread[lanes] = KWORKER
                    self.host_event(lanes, int(c - self.c_host))
                else:
                    self.thread[lanes] = self.owner
                    self.on_timer(lanes, int(c - c_tim))
                done.append(lanes)
            if done:
                moved = done[0] if len(done) == 1 else np.sort(np.concatenate(done))
                zt = self.same_instant(moved) | self.stats.zt_loop[moved]
                if zt.any():  # a zero-time cycle ends the lane here (mech_lockstep)
                    self.finish(moved[zt], now[moved[zt]])
                    finished = True
                    moved = moved[~zt]
                over = moved[events[moved] >= max_events[moved]]
                if len(over):
                    self.stats.truncated[over] = True
                    self.finish(over, now[over])
                    finished = True
                    moved = moved[T[0][moved] != NEVER]
                self.next_events(moved)
            if finished:
                act = act[T[0][act] != NEVER]
        check_fingerprints(self.p, self.fingerprints)
        return self.stats


def run_lockstep(program: Program, lanes: Sequence[Lane], trace_lanes: tuple[int, ...] = ()) -> BatchResult:
    """Run ``lanes`` in lockstep. A lane whose plugin raises is failed alone: the batch
    is re-run in halves until the failing lanes are isolated (the other lanes'
    results do not depend on the batch, so they come out the same)."""
    lanes = list(lanes)
    try:
        sim = Lockstep(program, lanes, trace_lanes)
        stats = sim.run()
    except PluginFailure as e:
        if len(lanes) == 1:
            stats = Stats.zeros(1, program)
            return finish_batch(program, stats, program.lane_params(lanes), ["failed"], [str(e)], {}, None)
        mid = len(lanes) // 2
        left = run_lockstep(program, lanes[:mid], tuple(i for i in trace_lanes if i < mid))
        right = run_lockstep(program, lanes[mid:], tuple(i - mid for i in trace_lanes if i >= mid))
        return BatchResult.concat([left, right])
    from irqlab.engine.stats import series_arrays

    n = len(lanes)
    samples = [sim.samples.get(i, []) for i in range(len(lanes))] if program.series_fields else []
    params, traces, series = sim.params, sim.traces, series_arrays(program, samples)
    sim.release()  # the engine's state is not needed to build the result: free it first
    return finish_batch(program, stats, params, ["ok"] * n, [None] * n, traces, series)
