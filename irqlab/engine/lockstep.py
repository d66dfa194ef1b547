"""The lockstep executor: many lanes advance together, one event per lane per step.

State is a set of NumPy arrays shaped ``[L, ...]`` (lanes first; vCPU state
flattened to ``[L*V]`` with ``f = lane*V + v``). Each step:

1. every active lane picks its next event: the earliest of its slots
   ``T[S, L]`` (END, SAMPLE, device arrivals, timers, vCPUs; ties go to the
   lower slot), exactly as the reference interpreter orders them;
2. lanes are grouped by *event code* (the slot kind, or the vCPU's phase);
3. the larger groups run (see ``COHORT``): each group's handler updates its
   lanes' rows with element-wise operations. Lanes of small groups wait for a
   later step, so that groups grow into cohorts that share handler calls.

A lane's rows are only ever touched by its own events, and every operation is
element-wise, so a lane computes the same bits whichever batch it runs in.
The semantics are those of :mod:`irqlab.engine.reference`, method for method.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine import idle as I
from irqlab.engine.dest_lockstep import LockstepDest
from irqlab.engine.idle_lockstep import LockstepIdle, sub
from irqlab.engine.mech_lockstep import LockstepMechanisms
from irqlab.engine.routes_lockstep import LockstepRoutes
from irqlab.engine.timers_lockstep import LockstepTimers, n_timer_slots
from irqlab.engine.tpr_lockstep import LockstepPriority, high_bit
from irqlab.engine.context import (
    PluginFailure, body_contexts, call_plugin, check_fingerprints, init_plugins, is_body_step, plugin_contexts,
    plugin_fingerprints, service_contexts,
)
from irqlab.engine.program import L0, L1, L2, USER, Lane, Program
from irqlab.engine.result import BatchResult
from irqlab.engine.rng import lane_keys, uniform
from irqlab.engine.stats import EXIT_INDEX, UEXIT_INDEX, Stats, finish_batch
from irqlab.engine.trace import KWORKER, QEMU, Trace
from irqlab.engine.vendor import record_text
from irqlab.plugins.api import (
    ACTIONS, NEVER, DeliverEvent, EoiEvent, HandlerEvent, ImmediateExitEvent, RedirectEvent, TimerEvent,
)

I64 = np.int64
A_SERVICE, A_EOI, A_IOAPIC_EOI, A_MASK, A_UNMASK, A_FORWARD, A_WAIT, A_RETURN = (
    ACTIONS.index(a) for a in ("SERVICE", "EOI", "IOAPIC_EOI", "MASK", "UNMASK", "FORWARD", "WAIT", "RETURN"))
ACT0 = 20  # phase of handler action a is ACT0 + a
# A step runs the groups of lanes (same next event code) at least this fraction of the
# largest group's size; the others wait and grow (0: run every group every step).
COHORT = 0.5
N_PHASES = max(ACT0 + len(ACTIONS), I.END)
ONE = I64(1)


class Lockstep(LockstepMechanisms, LockstepRoutes, LockstepTimers, LockstepIdle, LockstepDest, LockstepPriority):
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

    def trace_lapic(self, lanes, f) -> None:
        """Trace counters: vectors pending (IRR) and in service (ISR) at vCPU ``f``."""
        for i in np.flatnonzero(self.traced[lanes]):
            lane, fi = int(lanes[i]), int(f[i])
            t, v = int(self.now[lane]), fi % self.V
            self.traces[lane].counters.append((t, f"vCPU {v} IRR", bin(int(self.irr[fi])).count("1")))
            self.traces[lane].counters.append((t, f"vCPU {v} ISR", bin(int(self.isr[fi])).count("1")))

    def ack(self, f):
        g = high_bit(self.irr[f])
        bit = np.left_shift(ONE, g)
        self.irr[f] &= ~bit
        self.isr[f] |= bit
        if self.svi_on:
            self.svi_sync(f)
        if self.tracing:
            self.trace_lapic(self.lane_of(f), f)
        return g

    def lapic_eoi(self, f):
        g = high_bit(self.isr[f])
        bit = np.where(g >= 0, np.left_shift(ONE, np.maximum(g, 0)), 0)
        self.isr[f] &= ~bit
        if self.svi_on:
            self.svi_sync(f)
        if self.tracing:
            has = g >= 0
            self.trace_lapic(self.lane_of(f[has]), f[has])
        return g

    def lane_of(self, f):
        return f // self.V if self.V > 1 else f

    def accept(self, lanes, v: int, g: int, level: bool, how: str = "Fixed"):
        """Vector group ``g`` arrives at vCPU ``v``'s LAPIC in ``lanes``; returns bool[n],
        whether it set the IRR bit (else it merged into the one pending)."""
        trig = "level" if level else "edge"
        vec = self.p.groups[g].vector
        if self.p.bare:
            self.emit(lanes, "irqlab_apic_accept", "cpu {} vec {} ({})", v, vec, trig)
        else:
            self.emit(lanes, "kvm_apic_accept_irq", "apicid {} vec {} ({}|{})", v, vec, how, trig)
        f = lanes * self.V + v
        bit = I64(1 << g)
        if level:
            self.tmr[f] |= bit
        else:
            self.tmr[f] &= ~bit
        dup = (self.irr[f] & bit) != 0
        accepted = ~dup
        if dup.any():
            lanes, f = lanes[accepted], f[accepted]
        if self.routes_on:
            self.posted(lanes, f, bit)
        self.irr[f] |= bit
        if self.tracing:
            self.trace_lapic(lanes, f)
        self.notify(lanes, v)
        return accepted

    def count_delivery(self, lanes, devs, accepted) -> None:
        """Book one delivery of the pin or MSI of devices ``devs`` (see the reference)."""
        s = self.stats
        taken = np.zeros(len(lanes), bool)
        for di in devs:
            fr = self.fresh[lanes, di]
            if not fr.any():
                continue
            self.fresh[lanes[fr], di] = False
            ok = fr & accepted & ~taken
            merged = fr & ~ok
            s.dev_delivered[lanes[ok], di] += 1
            s.delivered[lanes[ok]] += 1
            s.dev_coalesced[lanes[merged], di] += 1
            s.coalesced[lanes[merged]] += 1
            taken |= fr
        re = ~taken & accepted
        if re.any():
            rl = lanes[re]
            who = np.full(len(rl), devs[0], I64)
            for di in reversed(devs):
                who = np.where(self.asserted[rl, di], di, who)
            s.dev_redelivered[rl, who] += 1
            s.delivered[rl] += 1

    def merge(self, lanes, di: int) -> None:
        """Arrivals at device ``di`` in ``lanes`` merged into an interrupt already raised."""
        self.stats.dev_coalesced[lanes, di] += 1
        self.stats.coalesced[lanes] += 1

    def notify(self, lanes, v: int) -> None:
        if self.p.idle:
            lanes = self.idle_notify(lanes, v)
        f = lanes * self.V + v
        run = self.phase[f] <= P.RUN_PT
        if self.p.idle:
            run |= self.phase[f] == I.HLT
        if self.p.l2_exit:
            run |= self.phase[f] == P.RUN_EXIT
        if self.ds:
            run = self.not_descheduled(f, run)
        if not run.all():
            lanes, f = lanes[run], f[run]
        if not len(lanes):
            return
        at = np.maximum(self.now[lanes], self.since[f])
        if self.p.nested or (not self.p.bare and not self.p.apicv):
            self.phase[f] = P.KICK
            self.tset(self.c_vcpu + v, lanes, at)
        else:
            ok = self.deliverable(f)
            self.phase[f[ok]] = P.TAKE
            self.T[self.c_vcpu + v][lanes[ok]] = at[ok]

    # ================================================================== IOAPIC

    def set_line(self, lanes, pin: int, level: int) -> None:
        if self.tracing:
            for i in np.flatnonzero(self.traced[lanes]):
                lane = int(lanes[i])
                self.traces[lane].counters.append((int(self.now[lane]), f"gsi {pin} line", level))
        if self.p.bare:
            self.emit(lanes, "irqlab_line", "gsi {} level {}", pin, level)
        elif self.p.split:
            self.emit(lanes, "ioapic_set_irq", "vector: {} level: {}", pin, level)
        else:
            self.emit(lanes, "kvm_set_irq", "gsi {} level {} source 0", pin, level)
        self.line_effect(lanes, pin, level)

    def line_effect(self, lanes, pin: int, level: int) -> None:
        """The IOAPIC sees ``pin``'s line (the OR of its sources) at ``level`` in ``lanes``."""
        if self.p.pin_level[pin]:
            if level:
                self.lazy_eoi(lanes, pin)
                self.p_irr[lanes, self.pk[pin]] = True
                if self.p.split:
                    go = lanes[~self.p_rirr[lanes, self.pk[pin]]]
                    if len(go):
                        self.service_all(go)
                else:
                    self.service(lanes, pin)
            else:
                self.p_irr[lanes, self.pk[pin]] = False
        elif not level:
            if not (self.p.split or self.p.bare):
                self.p_irr[lanes, self.pk[pin]] = False  # KVM: the pulse's falling half clears an edge pin's irr
        elif level:
            if self.p.split or self.p.bare:
                go = lanes[~self.p_masked[lanes, self.pk[pin]]]
                self.p_irr[go, self.pk[pin]] = True
                if len(go):
                    self.service_all(go) if self.p.split else self.service(go, pin)
            else:
                old = self.p_irr[lanes, self.pk[pin]]
                self.edge_merged[lanes[old]] = True
                go = lanes[~old]
                self.p_irr[go, self.pk[pin]] = True
                if len(go):
                    self.service(go, pin)

    def service_all(self, lanes, level_only: bool = False) -> None:
        for pin in self.used_pins:
            if level_only and not self.p.pin_level[pin]:
                continue
            if len(lanes):
                self.service(lanes, pin)

    def service(self, lanes, pin: int) -> None:
        level = self.p.pin_level[pin]
        ok = ~self.p_masked[lanes, self.pk[pin]] & self.p_irr[lanes, self.pk[pin]]
        if level:
            ok &= ~self.p_rirr[lanes, self.pk[pin]]
        lanes = lanes[ok]
        if not len(lanes):
            return
        if self.hooks["deliver"]:
            block = self.mit_deliver(lanes, pin)
            lanes = lanes[~block]
            if not len(lanes):
                return
        if level:
            self.p_rirr[lanes, self.pk[pin]] = True
        else:
            self.p_irr[lanes, self.pk[pin]] = False
        g = self.p.pin_group[pin]
        grp = self.p.groups[g]
        if not self.routes_on:
            self.deliver_pin(lanes, pin, g, level, grp.dest)
            return
        col = self.pk[pin]
        dests = self.kdest[lanes, col]
        for v in np.unique(dests).tolist():
            sub = lanes[dests == v]
            self.stats.misrouted[sub[self.rte_dest[sub, col] != v]] += 1  # a stale KVM route
            self.deliver_pin(sub, pin, g, level, v)

    def deliver_pin(self, lanes, pin: int, g: int, level: bool, dest: int) -> None:
        """``service``'s delivery of ``pin`` (group ``g``) to vCPU ``dest`` in ``lanes``."""
        grp = self.p.groups[g]
        trig = "level" if level else "edge"
        if self.p.bare:
            self.emit(lanes, "irqlab_ioapic_deliver", "pin {} vec {} ({})", pin, grp.vector, trig)
        elif self.p.split:
            dst, how = self.msg_of(g, dest)
            self.emit(lanes, "kvm_set_irq", "gsi {} level 1 source 0", pin)
            self.emit(lanes, "kvm_msi_set_irq", "dst {} vec {} ({}|{})", dst, grp.vector, how, trig)
        else:
            dst, how = self.msg_of(g, dest)
            self.emit(lanes, "kvm_ioapic_set_irq", "pin {} dst {} vec {} ({}|{})", pin, dst, grp.vector, how, trig)
        self.count_delivery(lanes, self.pin_devs[pin], self.deliver(lanes, g, level, dest))
        if self.p.split and not level:
            self.emit(lanes, "kvm_set_irq", "gsi {} level 0 source 0", pin)

    def eoi_broadcast(self, lanes, vec) -> None:
        """EOI of vector ``vec`` (array aligned with ``lanes``) reaches the IOAPIC."""
        for pin in self.used_pins:
            if not self.p.pin_level[pin]:
                continue
            sel = lanes[vec == self.p.groups[self.p.pin_group[pin]].vector]
            if self.p.split:
                sel = sel[self.p_rirr[sel, self.pk[pin]]]
            if not len(sel):
                continue
            self.eoi_one(sel, pin)

    def eoi_one(self, sel, pin: int) -> None:
        """The EOI of level ``pin`` in lanes ``sel`` (see the reference)."""
        if not self.p.split:
            self.resampler_ack(sel, pin)  # kvm_ioapic_update_eoi_one: ack notifiers first
        self.p_rirr[sel, self.pk[pin]] = False
        if self.routes_on:
            self.rirr_cleared(sel, pin)
        asserted = ~self.p_masked[sel, self.pk[pin]] & self.p_irr[sel, self.pk[pin]]
        defer = self.mit_eoi(sel, pin, asserted) if self.hooks["ioapic_eoi"] else np.zeros(len(sel), bool)
        go = sel[asserted & ~defer]
        if len(go):
            self.service_all(go) if self.p.split else self.service(go, pin)

    def redirect_write(self, lanes, pin: int, masked: bool, dest: int | None = None) -> None:
        col = self.pk[pin]
        if dest is None:
            self.emit(lanes, "irqlab_redirect", "pin {} masked {}", pin, int(masked))
        else:
            self.emit(lanes, "irqlab_redirect", "pin {} masked {} dest {}", pin, int(masked), dest)
        old = self.rte_dest[lanes, col].copy() if self.routes_on else None
        self.p_masked[lanes, col] = masked
        if dest is not None:
            self.rte_dest[lanes, col] = dest
        if self.hooks["redirect"]:
            for m, ctx in self.hooks["redirect"]:
                call_plugin(ctx, "mitigation", m.plugin.on_redirect,
                            RedirectEvent(lanes, np.full(len(lanes), pin, I64)))
        if self.p.split:
            first = self.routes_on and self.p.rte_update == "routes_first"
            if first:
                self.update_kvm_routes(lanes)
            self.service_all(lanes)
            if self.routes_on and not first:
                self.update_kvm_routes(lanes)
            return
        self.kdest[lanes, col] = self.rte_dest[lanes, col]
        self.redirect_service(lanes, pin, masked)
        if self.routes_on:
            which = np.zeros((len(lanes), self.V), bool)
            which[np.arange(len(lanes)), old] = True
            which[np.arange(len(lanes)), self.rte_dest[lanes, col]] = True
            self.request_scan(lanes, which)

    def redirect_service(self, lanes, pin: int, masked: bool) -> None:
        """KVM ``ioapic_write_indirect``: a level pin unmasked with ``irr`` set and Remote IRR
        clear is serviced (or resampled, fef8f2b90edb)."""
        if not masked and self.p.pin_level[pin]:
            go = lanes[self.p_irr[lanes, self.pk[pin]] & ~self.p_rirr[lanes, self.pk[pin]]]
            if len(go):
                go = self.unmask_resample(go, pin)
            if len(go):
                self.service(go, pin)

    # ================================================================== mitigation hooks

    def mit_deliver(self, lanes, pin):
        block = np.zeros(len(lanes), bool)
        for m, ctx in self.hooks["deliver"]:
            ev = DeliverEvent(lanes, np.full(len(lanes), pin, I64), np.zeros(len(lanes), bool))
            call_plugin(ctx, "mitigation", m.plugin.on_deliver, ev)
            block |= ev.block
        return block

    def mit_eoi(self, lanes, pin, asserted):
        defer = np.zeros(len(lanes), bool)
        for m, ctx in self.hooks["ioapic_eoi"]:
            ev = EoiEvent(lanes, np.full(len(lanes), pin, I64), asserted.copy(), np.zeros(len(lanes), bool))
            call_plugin(ctx, "mitigation", m.plugin.on_ioapic_eoi, ev)
            defer |= ev.defer
        return defer

    def mit_immediate(self, lanes, f):
        timer = np.zeros(len(lanes), I64)
        for m, ctx in self.hooks["immediate_exit"]:
            ev = ImmediateExitEvent(lanes, f % self.V, self.rip[f].copy(), timer.copy())
            call_plugin(ctx, "mitigation", m.plugin.on_immediate_exit, ev)
            timer = np.asarray(ev.timer, I64)
        return timer

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

    def _phase_table(self):
        tab = {
            P.RUN_SVC: self.ph_run_svc, P.RUN_PT: self.ph_run_pt, P.KICK: self.ph_kick, P.TAKE: self.ph_take,
            P.L0_CHECK: self.ph_l0_check, P.L0_INJECT: self.ph_l0_inject, P.SERVICE_DONE: self.ph_service_done,
            P.EOI_L0: self.ph_eoi_l0, P.EOI_USER: self.ph_eoi_user, P.MMIO_L0: self.ph_mmio_l0,
            P.MMIO_USER: self.ph_mmio_user, P.VMRESUME_L0: self.ph_vmresume_l0, P.REFLECT: self.ph_reflect,
            P.MMIO_NEXT: self.ph_mmio_next, P.L1_STI: self.ph_l1_sti, P.RUN_EXIT: self.ph_run_exit,
            P.L1_EXIT: self.ph_l1_exit, P.EOI_BACK: self.ph_eoi_back,
            ACT0 + A_SERVICE: self.act_service, ACT0 + A_EOI: self.act_eoi,
            ACT0 + A_IOAPIC_EOI: self.act_mmio, ACT0 + A_MASK: self.act_mmio, ACT0 + A_UNMASK: self.act_mmio,
            ACT0 + A_FORWARD: self.act_forward, ACT0 + A_WAIT: self.act_wait, ACT0 + A_RETURN: self.act_return,
            **self.idle_phases(),
        }
        return [tab.get(i) for i in range(N_PHASES)]

    def ph_run_svc(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        cur = self.cur_fwd(lanes, v)
        self.svc_rem[lanes, cur] = 0
        self.forwarded[lanes, cur] = False
        for d in self.p.devices:
            sel = cur == d.index
            if sel.any():
                self.device_service(lanes[sel], d.index)
        g = self.dev_group[cur]
        done = np.ones(len(lanes), bool)
        for d in self.p.devices:
            done &= ~((g == d.group) & self.forwarded[lanes, d.index])
        ex = self.waiting[lanes, g] & done
        if ex.any():
            el, ef, eg = lanes[ex], f[ex], g[ex]
            self.l2_eoi_write(el, ef)
            self.grp[ef] = eg
            self.at(el, ef % self.V, P.REFLECT, self.now[el] + self.c["vmexit"][el])
        go = ~ex
        if self.l2_eoi_on:
            l2e = go & done & self.g_l2_eoi[g]
            if l2e.any():
                self.l2_eoi_exit(lanes[l2e], f[l2e], f[l2e] % self.V)
            go &= ~l2e
        if go.any():
            self.start_run(lanes[go], f[go], t[go])

    def l2_exit(self, lanes, f, reason: str, qual: int = 0):
        """L2 exits to L0 with ``reason``: ``kvm_exit`` and ``kvm_nested_vmexit``; the
        preemption timer is disarmed."""
        rip = self.l2_rip(f)
        self.exit(lanes, reason, rip, qual)
        self.emit(lanes, "kvm_nested_vmexit", "rip {:x} reason {} info1 0 info2 0 int_info 0 int_info_err 0",
                  rip, reason)
        self.pt_armed[f] = False
        self.exit_to(lanes, f, L2, L0)

    def l2_eoi_write(self, lanes, f):
        """L2 writes its EOI (x2APIC MSR or APIC-access page) and exits."""
        self.l2_exit(lanes, f, *P.eoi_exit(self.p.x2apic))

    def ph_run_pt(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        self.l2_exit(lanes, f, "PREEMPTION_TIMER")
        self.at(lanes, v, P.L0_CHECK, t + self.c["vmexit"][lanes])

    def ph_kick(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        self.pt_armed[f] = False
        if self.p.nested:
            rip = self.l2_rip(f)
            self.exit(lanes, "EXTERNAL_INTERRUPT", rip)
            self.emit(lanes, "kvm_nested_vmexit", "rip {:x} reason EXTERNAL_INTERRUPT info1 0 info2 0 "
                      "int_info 0 int_info_err 0", rip)
            self.exit_to(lanes, f, L2, L0)
            self.at(lanes, v, P.L0_CHECK, t + self.c["vmexit"][lanes])
        else:
            self.exit(lanes, "EXTERNAL_INTERRUPT", self.rip_of(f, P.RIP_GUEST_BASE))
            self.exit_to(lanes, f, L1, L0)
            self.at(lanes, v, P.L0_INJECT, t + self.c["vmexit"][lanes])

    def ph_take(self, lanes, f, v):
        t = self.now[lanes]
        open_run = self.run_start[f] != NEVER
        if open_run.any():
            self.end_run(lanes[open_run], f[open_run], t[open_run])
        ok = self.deliverable(f)
        if (~ok).any():
            self.start_run(lanes[~ok], f[~ok], t[~ok])
        if ok.any():
            lanes, f, t = lanes[ok], f[ok], t[ok]
            g = self.ack(f)
            if self.p.bare:
                self.irq_handler_event(lanes, g, "irq_handler_entry", "irq={} name={}")
            self.start_handler(lanes, f, g, t)

    def irq_handler_event(self, lanes, g, event, fmt):
        if not self.tracing:
            self.stats.events[lanes] += 1
            return
        irq = np.array([grp.pins[0] if grp.pins else grp.vector for grp in self.p.groups], I64)[g]
        name = np.array([self.p.devices[grp.devices[0]].name for grp in self.p.groups], object)[g]
        self.emit(lanes, event, fmt, irq, name)

    def ph_l0_check(self, lanes, f, v):
        t = self.now[lanes]
        ok = self.deliverable(f)
        if ok.any():
            al, af = lanes[ok], f[ok]
            if self.p.ack_on_exit:
                g = self.ack(af)
                info = 0x80000000 | self.gvec[g]
            else:
                g, info = None, 0
            self.emit(al, "kvm_nested_vmexit_inject", "reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info {:x} "
                      "int_info_err 0", info)
            start = self.enter(al, af, L1, L0, self.c["nested_exit"][al])
            if g is not None:
                self.start_handler(al, af, g, start)
            else:  # load_vmcs12_host_state: RFLAGS = X86_EFLAGS_FIXED, L1 runs with IF=0
                self.at(al, sub(v, ok), P.L1_STI, start + self.c["l1_irq_off"][al])
        no = ~ok
        if no.any():
            nl, nf = lanes[no], f[no]
            start = self.enter(nl, nf, L2, L0)
            self.start_run(nl, nf, start)

    def ph_l0_inject(self, lanes, f, v):
        ok = self.deliverable(f)
        if ok.any():
            al, af = lanes[ok], f[ok]
            g = self.ack(af)
            self.emit(al, "kvm_inj_virq", "irq {}", self.gvec[g])
            start = self.enter(al, af, L1, L0)
            self.start_handler(al, af, g, start)
        no = ~ok
        if no.any():
            nl, nf = lanes[no], f[no]
            start = self.enter(nl, nf, L1, L0)
            if self.p.nested:
                self.at(nl, sub(v, no), P.L1_STI, start)
            else:
                self.start_run(nl, nf, start)

    def ph_l1_sti(self, lanes, f, v):
        ok = self.l1_deliverable(f)
        if (~ok).any():
            self.vmresume(lanes[~ok], f[~ok], sub(v, ~ok))
        if ok.any():
            self.l1_take(lanes[ok], f[ok], sub(v, ok))

    def l1_take(self, lanes, f, v):
        if self.p.apicv:
            self.start_handler(lanes, f, self.ack(f), self.now[lanes])
        else:
            self.exit(lanes, "INTERRUPT_WINDOW", P.RIP_L1_STI)
            self.exit_to(lanes, f, L1, L0)
            self.at(lanes, v, P.L0_INJECT, self.now[lanes] + self.c["vmexit"][lanes])

    # handler programs

    def start_handler(self, lanes, f, g, t0):
        self.grp[f] = g
        self.pc[f] = 0
        self.schedule_step(lanes, f, t0)

    def schedule_step(self, lanes, f, t0):
        gp = self.grp[f] * self.maxpc + self.pc[f]
        code = self.act_flat[gp]
        delay = self.step_delays(lanes, f, gp)
        inline = (code == A_FORWARD) & (delay == 0)
        while inline.any():
            idx = np.flatnonzero(inline)
            il, ifl = lanes[idx], f[idx]
            self.forward(il, self.grp[ifl])
            self.pc[ifl] += 1
            gpi = self.grp[ifl] * self.maxpc + self.pc[ifl]
            code[idx] = self.act_flat[gpi]
            delay[idx] = self.step_delays(il, ifl, gpi)
            inline[:] = False
            inline[idx] = (code[idx] == A_FORWARD) & (delay[idx] == 0)
        self.phase[f] = ACT0 + code
        self.tset(self.c_vcpu + (f % self.V if self.V > 1 else 0), lanes, t0 + delay)

    def step_delays(self, lanes, f, gp):
        """``int64[n]``: the handler time before each lane's step ``gp`` (group * maxpc + pc):
        its parameter, or a draw of the policy's random body time."""
        delay = self.before_flat[gp if self.before_same else lanes * (self.G1 * self.maxpc) + gp]
        if self.body_steps:
            from irqlab.plugins.builtin.services import sample_by_cv

            delay = delay.copy()
            for g, k in self.body_steps:
                hit = np.flatnonzero(gp == g.index * self.maxpc + k)
                if len(hit):
                    hl = lanes[hit]
                    delay[hit] = sample_by_cv(g.body_dist, self.ctx_body[g.index], hl, delay[hit],
                                              self.params[f"{g.body_path}.body_cv"][hl])
        return delay

    def advance(self, lanes, f, t0):
        self.pc[f] += 1
        self.schedule_step(lanes, f, t0)

    def forward(self, lanes, g):
        for grp in self.p.groups:
            sel = lanes[g == grp.index] if len(self.p.groups) > 1 else lanes
            for di in grp.devices:
                new = sel[~self.forwarded[sel, di]]
                self.forwarded[new, di] = True
                self.svc_rem[new, di] = self.service_times(new, di)

    def service_times(self, lanes, di: int):
        """``int64[n]``: how long this service of device ``di`` takes in ``lanes``."""
        d = self.p.devices[di]
        if d.service_dist is None or not len(lanes):
            return self.service_ps[lanes, di]
        return np.asarray(call_plugin(self.ctx_service[di], "service", d.service_dist.sample, lanes), I64)

    def act_forward(self, lanes, f, v):
        self.forward(lanes, self.grp[f])
        self.advance(lanes, f, self.now[lanes])

    def act_service(self, lanes, f, v):
        g = self.grp[f]
        dur = np.zeros(len(lanes), I64)
        for grp in self.p.groups:
            ing = g == grp.index
            for di in grp.devices:
                busy = ing & (self.pending[lanes, di] > 0)
                if busy.any():
                    dur[busy] += self.service_times(lanes[busy], di)
        self.at(lanes, v, P.SERVICE_DONE, self.now[lanes] + dur)

    def ph_service_done(self, lanes, f, v):
        g = self.grp[f]
        for grp in self.p.groups:
            sel = g == grp.index
            if not sel.any():
                continue
            gl, gf = lanes[sel], f[sel]
            any_h = np.zeros(len(gl), bool)
            handled_pin: dict[int, np.ndarray] = {}
            for di in grp.devices:
                h = self.device_service(gl, di, gf)
                any_h |= h
                pin = self.p.devices[di].pin
                if pin >= 0:
                    handled_pin[pin] = handled_pin.get(pin, np.zeros(len(gl), bool)) | h
            self.stats.spurious[gl[~any_h]] += 1
            for pin in sorted(handled_pin):
                for m, ctx in self.hooks["handler_done"]:
                    ev = HandlerEvent(gl, gf % self.V, np.full(len(gl), pin, I64), handled_pin[pin].copy())
                    call_plugin(ctx, "mitigation", m.plugin.on_handler_done, ev)
        self.advance(lanes, f, self.now[lanes])

    def act_eoi(self, lanes, f, v):
        self.stats.eoi_count[lanes] += 1
        t = self.now[lanes]
        if self.p.bare:
            g = self.lapic_eoi(f)
            has = g >= 0
            if has.any():
                hl, hg = lanes[has], g[has]
                self.emit(hl, "irqlab_eoi", "cpu {} vector {}", sub(v, has), self.gvec[hg])
                lvl = ((self.tmr[f[has]] >> hg) & 1) == 1
                if lvl.any():
                    self.eoi_broadcast(hl[lvl], self.gvec[hg[lvl]])
            self.advance(lanes, f, t + self.c["eoi"][lanes])
            return
        if self.p.apicv:
            g = high_bit(self.isr[f])
            if self.routes_on:
                ex = (g >= 0) & ((self.eoi_bits[f] >> np.maximum(g, 0)) & 1 == 1)
            else:
                ex = (g >= 0) & self.g_eoi_exit[g]
            self.lapic_eoi(f)
            if (~ex).any():
                nl, nf = lanes[~ex], f[~ex]
                self.eoi_unseen(nl, g[~ex])
                self.advance(nl, nf, t[~ex])
            if ex.any():
                el, ef = lanes[ex], f[ex]
                self.exit(el, "EOI_INDUCED", P.RIP_L1_EOI, self.gvec[g[ex]])
                self.eoi_vec[ef] = g[ex]
                self.exit_to(el, ef, L1, L0)
                self.at(el, sub(v, ex), P.EOI_L0, t[ex] + self.c["vmexit"][el] + self.c["eoi"][el])
            return
        reason, qual = P.eoi_exit(self.p.x2apic)
        self.exit(lanes, reason, P.RIP_L1_EOI, qual)
        self.eoi_vec[f] = -2
        self.exit_to(lanes, f, L1, L0)
        self.at(lanes, v, P.EOI_L0, t + self.c["vmexit"][lanes] + self.c["eoi"][lanes])

    def ph_eoi_l0(self, lanes, f, v):
        g = self.eoi_vec[f]
        trap = g == -2
        if trap.any():
            g[trap] = self.lapic_eoi(f[trap])
            self.l2_eoi_svi(f[trap], g[trap])
        has = g >= 0
        if has.any():
            self.emit(lanes[has], "kvm_eoi", "apicid {} vector {}", sub(v, has), self.gvec[g[has]])
            if self.tkind:
                self.timer_eoi(lanes[has], g[has])
        level = has & (((self.tmr[f] >> np.maximum(g, 0)) & 1) == 1)
        broadcast = level & self.g_broadcast_ok[g]
        self.eoi_vec[f] = g
        if broadcast.any():
            bl, bf = lanes[broadcast], f[broadcast]
            if self.p.split:
                self.stats.uexits[bl, UEXIT_INDEX["KVM_EXIT_IOAPIC_EOI"]] += 1
                self.emit(bl, "kvm_userspace_exit", "reason KVM_EXIT_IOAPIC_EOI (26)")
                self.exit_to(bl, bf, L0, USER)
                self.at(bl, sub(v, broadcast), P.EOI_USER, self.now[bl] + self.c_half_user[bl])
            else:
                self.eoi_broadcast(bl, self.gvec[g[broadcast]])
                self.eoi_return(bl, bf, sub(v, broadcast), L0, self.c["ioapic"][bl])
        rest = ~broadcast
        if rest.any():
            self.eoi_return(lanes[rest], f[rest], sub(v, rest), L0)

    def ph_eoi_user(self, lanes, f, v):
        self.eoi_broadcast(lanes, self.gvec[self.eoi_vec[f]])
        self.eoi_return(lanes, f, v, USER, self.c["ioapic"][lanes] + self.c_rest_user[lanes])

    def act_mmio(self, lanes, f, v):
        t = self.now[lanes]
        self.mmio_action[f] = self.act_flat[self.grp[f] * self.maxpc + self.pc[f]]
        if self.p.bare:
            self.ioapic_write(lanes, f)
            self.advance(lanes, f, t + self.mmio_n[self.mmio_action[f]] * self.c["mmio"][lanes])
            return
        self.mmio_step[f] = 0
        self.ph_mmio_next(lanes, f, v)

    def ph_mmio_next(self, lanes, f, v):
        self.exit(lanes, "EPT_MISCONFIG", P.RIP_L1_MMIO, 0)
        self.exit_to(lanes, f, L1, L0)
        self.at(lanes, v, P.MMIO_L0, self.now[lanes] + self.c["vmexit"][lanes] + self.c["mmio"][lanes])

    def mmio_access(self, lanes, f):
        act = self.mmio_step[f] == self.mmio_effect[self.mmio_action[f]]
        if act.any():
            self.ioapic_write(lanes[act], f[act])

    def mmio_next(self, lanes, f, start):
        self.mmio_step[f] += 1
        more = self.mmio_step[f] < self.mmio_n[self.mmio_action[f]]
        if more.any():
            ml, mf = lanes[more], f[more]
            self.at(ml, mf % self.V if self.V > 1 else 0, P.MMIO_NEXT, start[more])
        if (~more).any():
            self.advance(lanes[~more], f[~more], start[~more])

    def ioapic_write(self, lanes, f):
        action = self.mmio_action[f]
        g = self.grp[f]
        ioeoi = action == A_IOAPIC_EOI
        if ioeoi.any():
            if self.p.split or self.p.bare:
                self.emit(lanes[ioeoi], "irqlab_ioapic_eoi", "vector {}", self.gvec[g[ioeoi]])
                self.eoi_broadcast(lanes[ioeoi], self.gvec[g[ioeoi]])
            else:  # KVM's IOAPIC is version 0x11: ioapic_mmio_write ignores offset 0x40
                self.emit(lanes[ioeoi], "irqlab_ioapic_eoi", "vector {} ignored", self.gvec[g[ioeoi]])
        for grp in self.p.groups:
            for code, masked in ((A_MASK, True), (A_UNMASK, False)):
                sel = lanes[(action == code) & (g == grp.index)]
                if len(sel):
                    for pin in grp.pins:
                        self.redirect_write(sel, pin, masked)

    def ph_mmio_l0(self, lanes, f, v):
        if self.p.split:
            self.stats.uexits[lanes, UEXIT_INDEX["KVM_EXIT_MMIO"]] += 1
            self.emit(lanes, "kvm_userspace_exit", "reason KVM_EXIT_MMIO (6)")
            self.exit_to(lanes, f, L0, USER)
            self.at(lanes, v, P.MMIO_USER, self.now[lanes] + self.c_half_user[lanes])
        else:
            self.mmio_access(lanes, f)
            start = self.enter(lanes, f, L1, L0, self.c["ioapic"][lanes])
            self.mmio_next(lanes, f, start)

    def ph_mmio_user(self, lanes, f, v):
        self.mmio_access(lanes, f)
        start = self.enter(lanes, f, L1, USER, self.c["ioapic"][lanes] + self.c_rest_user[lanes])
        self.mmio_next(lanes, f, start)

    def act_wait(self, lanes, f, v):
        g = self.grp[f]
        self.waiting[lanes, g] = True
        self.wait_pc[lanes, g] = self.pc[f] + 1
        self.vmresume(lanes, f, v)

    def act_return(self, lanes, f, v):
        if self.p.nested:
            self.vmresume(lanes, f, v)
            return
        if self.p.bare:
            self.irq_handler_event(lanes, self.grp[f], "irq_handler_exit", "irq={} ret=handled")
        self.grp[f] = -1
        t = self.now[lanes]
        ok = self.deliverable(f)
        if ok.any():
            al = lanes[ok]
            if self.p.bare or self.p.apicv:
                self.at(al, sub(v, ok), P.TAKE, t[ok])
            else:
                af = f[ok]
                self.exit(al, "INTERRUPT_WINDOW", P.RIP_L1_IRET)
                self.exit_to(al, af, L1, L0)
                self.at(al, sub(v, ok), P.L0_INJECT, t[ok] + self.c["vmexit"][al])
        no = ~ok
        if no.any():
            self.start_run(lanes[no], f[no], t[no])

    def vmresume(self, lanes, f, v):
        if self.p.l1_irq_window:
            ok = self.l1_deliverable(f)
            if ok.any():
                self.l1_take(lanes[ok], f[ok], sub(v, ok))
                lanes, f, v = lanes[~ok], f[~ok], sub(v, ~ok)
                if not len(lanes):
                    return
        self.grp[f] = -1
        self.exit(lanes, "VMRESUME", P.RIP_L1_VMRESUME)
        self.exit_to(lanes, f, L1, L0)
        self.at(lanes, v, P.VMRESUME_L0, self.now[lanes] + self.c["vmexit"][lanes] + self.c["nested_entry"][lanes])

    def ph_vmresume_l0(self, lanes, f, v):
        ok = self.vmresume_pending(f)
        timer = None
        if ok.any():
            self.stats.immediate[lanes[ok]] += 1
            if self.p.vendor == "amd":  # SVM: a self-IPI, no preemption timer (mech_reference)
                timer = self.c["self_ipi"][lanes[ok]]
            elif self.hooks["immediate_exit"]:
                timer = self.mit_immediate(lanes[ok], f[ok])
        start = self.enter(lanes, f, L2, L0)
        if ok.any():
            af = f[ok]
            self.pt_armed[af] = True
            self.pt_deadline[af] = start[ok] + (np.maximum(timer, 0) if timer is not None else 0)
        self.start_run(lanes, f, start)

    def ph_reflect(self, lanes, f, v):
        g = self.grp[f]
        reason = P.eoi_exit(self.p.x2apic)[0]
        self.emit(lanes, "kvm_nested_vmexit_inject", "reason {} info1 0 info2 0 int_info 0 int_info_err 0", reason)
        start = self.enter(lanes, f, L1, L0, self.c["nested_exit"][lanes])
        self.waiting[lanes, g] = False
        self.pc[f] = self.wait_pc[lanes, g]
        self.schedule_step(lanes, f, start)

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
