"""Issue-13 mechanism 3 in the lockstep executor, rule for rule as
:mod:`irqlab.engine.kernel_timers` (docs/model.md states the rules); a
mixin of :class:`~irqlab.engine.lockstep.Lockstep`. Shapes: ``lanes`` int64[n]; device
state [L, D]; deschedule state [L, K] (K deschedule plugins); vCPU state [L*V].
"""

from __future__ import annotations

import numpy as np

from irqlab.engine.context import call_plugin
from irqlab.engine.program import L0
from irqlab.engine.timers import EAGAIN, HV_UNIT, PIT_SOURCE, RTC_REINJECT_ON_ACK_COUNT, n_timer_slots
from irqlab.engine.trace import KWORKER, QEMU
from irqlab.plugins.api import NEVER

I64 = np.int64
__all__ = ["LockstepTimers", "n_timer_slots"]


class LockstepTimers:
    """The kernel's timer state as arrays (see :mod:`irqlab.engine.kernel_timers`)."""

    def timers_init(self) -> None:
        pr = self.p
        L, D, LV, K = self.L, len(pr.devices), self.L * self.V, len(pr.desched)
        self.tkind = dict(pr.timer_devices)
        self.pit_pend = np.zeros((L, D), I64)
        self.pit_ack = np.ones((L, D), bool)
        self.st_retry = np.zeros((L, D), bool)
        self.st_slot = np.zeros((L, D), bool)
        self.st_exp = np.full((L, D), NEVER, I64)
        self.st_due = np.zeros((L, D), bool)
        self.ds = [pr.mitigations[i].path for i in pr.desched]
        self.ds_start = np.zeros((L, K), I64)
        for k, path in enumerate(self.ds):
            self.ds_start[:, k] = self.params[f"{path}.start"]
            self.T[self.c_ts + k] = self.ds_start[:, k]
        self.rtcs = [di for di, kind in pr.timer_devices if kind == "rtc"]
        self.rtc_slot = {di: K + j for j, di in enumerate(self.rtcs)}
        self.rtc_coal = np.zeros((L, D), I64)
        self.rtc_acks = np.zeros((L, D), I64)
        self.rtc_eoi = np.zeros((L, D), bool)
        self.ds_on = np.zeros((L, K), bool)
        self.ds_begin = np.zeros((L, K), I64)
        self.held = np.zeros(LV, bool)
        self.held_rem = np.full(LV, NEVER, I64)
        self.held_mode = np.zeros(LV, I64)
        self.held_run = np.zeros(LV, bool)
        self.held_kick = np.zeros(LV, bool)

    def tparam(self, lanes, di: int, name: str):
        return self.params[f"{self.p.devices[di].model_path}.{name}"][lanes]

    # ------------------------------------------------------------------ expiry

    def timer_expire(self, lanes, di: int) -> None:
        d = self.p.devices[di]
        t = self.now[lanes]
        kind = self.tkind[di]
        self.thread[lanes] = {"pit": KWORKER, "rtc": QEMU}.get(kind, d.dest)
        self.tick_raised(lanes, di, 1)
        self.note_arrival(lanes, di)
        f = lanes * self.V + d.dest
        if kind in ("pit", "rtc"):
            self.pit_expire(lanes, di) if kind == "pit" else self.rtc_expire(lanes, di)
            nxt = np.asarray(call_plugin(self.ctx_arrival[di], "arrival", d.arrival.next, lanes, t), I64)
            self.set_other(self.c_arr + di, lanes, np.maximum(nxt, t))
            return
        self.set_other(self.c_arr + di, lanes, NEVER)
        self.st_exp[lanes, di] = t
        self.emit(lanes, "kvm_hv_stimer_callback", "vcpu_id {} timer 0", d.dest)
        held = self.held[f]
        self.st_due[lanes[held], di] = True
        self.stimer_process(lanes[~held], di)

    def tick_raised(self, lanes, di: int, n) -> None:
        self.stats.raised[lanes] += n
        self.stats.dev_raised[lanes, di] += n

    # ------------------------------------------------------------------ PIT

    def pit_expire(self, lanes, di: int) -> None:
        re = lanes[self.tparam(lanes, di, "reinject") != 0]
        self.pit_pend[re, di] += 1
        self.emit(lanes, "irqlab_pit_timer", "pending {}", self.pit_pend[lanes, di])
        self.pit_work(lanes, di, True)

    def pit_work(self, lanes, di: int, fresh: bool) -> None:
        re = self.tparam(lanes, di, "reinject") != 0
        go = ~(re & ~self.pit_ack[lanes, di])
        self.pit_ack[lanes[go & re], di] = False
        self.inject_tick(lanes[go], di, fresh)

    def inject_tick(self, lanes, di: int, fresh: bool) -> None:
        if not len(lanes):
            return
        pin = self.p.devices[di].pin
        self.pending[lanes, di] += 1
        self.fresh[lanes, di] = fresh
        self.edge_merged[lanes] = False
        self.emit(lanes, "kvm_set_irq", "gsi {} level 1 source {}", pin, PIT_SOURCE)
        self.line_effect(lanes, pin, 1)
        self.emit(lanes, "kvm_set_irq", "gsi {} level 0 source {}", pin, PIT_SOURCE)
        self.line_effect(lanes, pin, 0)
        left = lanes[self.fresh[lanes, di]]
        if len(left):
            self.fresh[left, di] = False
            em = self.edge_merged[left]
            self.merge(left[em], di)
            self.stats.dev_lost[left[~em], di] += 1

    def pit_ack_irq(self, lanes, di: int) -> None:
        if not len(lanes):
            return
        self.emit(lanes, "kvm_ack_irq", "irqchip IOAPIC pin {}", self.p.devices[di].pin)
        self.pit_ack[lanes, di] = True
        pos = lanes[self.pit_pend[lanes, di] > 0]
        self.pit_pend[pos, di] -= 1
        again = pos[self.pit_pend[pos, di] > 0]
        if len(again):
            self.pit_work(again, di, False)

    # ------------------------------------------------------------------ RTC

    def rtc_expire(self, lanes, di: int) -> None:
        slew = self.tparam(lanes, di, "slew") != 0
        discard = lanes[~slew]
        self.merge(discard[~self.rtc_raise(discard, di, True)], di)
        lanes = lanes[slew]
        if not len(lanes):
            return
        over = lanes[self.rtc_acks[lanes, di] >= RTC_REINJECT_ON_ACK_COUNT]
        self.rtc_acks[over, di] = 0
        lost = lanes[~self.rtc_raise(lanes, di, True)]
        if len(lost):
            self.rtc_coal[lost, di] += 1
            self.emit(lost, "irqlab_rtc_coalesced", "irq_coalesced {}", self.rtc_coal[lost, di])
            self.rtc_timer_update(lost, di)

    def rtc_raise(self, lanes, di: int, fresh: bool):
        """Returns bool[n]: delivered."""
        out = np.zeros(len(lanes), bool)
        if not len(lanes):
            return out
        d = self.p.devices[di]
        col = self.pk[d.pin]
        self.emit(lanes, "kvm_set_irq", "gsi {} level 1 source 0", d.pin)
        go = ~(self.rtc_eoi[lanes, di] | self.p_irr[lanes, col])
        sel = lanes[go]
        if len(sel):
            self.fresh[sel, di] = fresh
            self.pending[sel, di] += 1
            merged = ((self.irr[sel * self.V + d.dest] >> d.group) & 1) == 1
            self.line_effect(sel, d.pin, 1)
            ok = ~self.p_irr[sel, col] & ~merged
            self.pending[sel[~ok], di] -= 1
            self.fresh[sel, di] = False
            out[go] = ok
            self.rtc_eoi[sel, di] = ok  # rtc_status.pending_eoi
        return out

    def rtc_reinject(self, lanes, di: int) -> None:
        ok = lanes[self.rtc_raise(lanes, di, False)]
        if len(ok):
            self.rtc_coal[ok, di] -= 1
            self.emit(ok, "irqlab_rtc_coalesced", "irq_coalesced {}", self.rtc_coal[ok, di])

    def rtc_timer_update(self, lanes, di: int) -> None:
        c = self.rtc_coal[lanes, di]
        period = self.params[f"{self.p.devices[di].arrival_path}.period"][lanes]
        t = np.where(c == 0, NEVER, self.now[lanes] + period // (np.minimum(c, 7) + 1))
        self.set_other(self.c_ts + self.rtc_slot[di], lanes, t)

    def rtc_coalesced_timer(self, lanes, di: int) -> None:
        self.thread[lanes] = QEMU
        self.rtc_reinject(lanes[self.rtc_coal[lanes, di] != 0], di)
        self.rtc_timer_update(lanes, di)

    def rtc_read_c(self, lanes, di: int) -> None:
        if not len(lanes):
            return
        pin = self.p.devices[di].pin
        self.emit(lanes, "kvm_set_irq", "gsi {} level 0 source 0", pin)
        self.line_effect(lanes, pin, 0)
        go = ((self.tparam(lanes, di, "slew") != 0) & (self.rtc_coal[lanes, di] != 0)
              & (self.rtc_acks[lanes, di] < RTC_REINJECT_ON_ACK_COUNT))
        sel = lanes[go]
        self.rtc_acks[sel, di] += 1
        self.rtc_reinject(sel, di)

    # ------------------------------------------------------------------ SynIC stimer

    def stimer_process(self, lanes, di: int) -> None:
        if not len(lanes):
            return
        d = self.p.devices[di]
        s = self.stats
        self.st_due[lanes, di] = False
        self.st_retry[lanes, di] = True
        busy = self.st_slot[lanes, di]
        retry = self.tparam(lanes, di, "retry") != 0
        r = np.where(busy & retry, EAGAIN, 0)
        self.merge(lanes[busy & ~retry], di)
        free = lanes[~busy]
        if len(free):
            self.st_slot[free, di] = True
            self.pending[free, di] += 1
            fr = self.st_exp[free, di] == self.now[free]
            self.fresh[free, di] = fr
            self.emit(free, "kvm_msi_set_irq", "dst {} vec {} (Fixed|physical|edge)", d.dest, d.vector)
            acc = self.accept(free, d.dest, d.group, False)
            if fr.any():
                self.count_delivery(free[fr], [di], acc[fr])
            late = free[~fr & acc]
            s.dev_redelivered[late, di] += 1
            s.delivered[late] += 1
            self.merge(free[~fr & ~acc], di)
        self.emit(lanes, "kvm_hv_stimer_expiration", "vcpu_id {} timer 0 direct 0 msg send result {}", d.dest, r)
        ok = lanes[r == 0]
        if not len(ok):
            return
        self.st_retry[ok, di] = False
        t = self.now[ok]
        exp = self.st_exp[ok, di]
        period = self.params[f"{d.arrival_path}.period"][ok]
        skipped = (t - exp) // period
        self.tick_raised(ok, di, skipped)
        s.dev_coalesced[ok, di] += skipped
        s.coalesced[ok] += skipped
        nxt = t + (period - (t - exp) % period)
        self.set_other(self.c_arr + di, ok, nxt)
        self.emit(ok, "kvm_hv_stimer_start_periodic", "vcpu_id {} timer 0 time_now {} exp_time {}", d.dest,
                  t // HV_UNIT, nxt // HV_UNIT)

    # ------------------------------------------------------------------ hooks

    def timer_eoi(self, lanes, g) -> None:
        """``g`` int64[n]: the vector group each lane's EOI reached KVM for."""
        for di, kind in self.p.timer_devices:
            sel = lanes[g == self.p.devices[di].group]
            if not len(sel):
                continue
            if kind == "pit":
                self.pit_ack_irq(sel[self.tparam(sel, di, "reinject") != 0], di)
            elif kind == "stimer":
                self.stimer_process(sel[self.st_retry[sel, di]], di)
            else:
                self.rtc_eoi[sel, di] = False

    def timer_serviced(self, lanes, di: int) -> None:
        kind = self.tkind.get(di)
        if kind == "stimer":
            self.st_slot[lanes, di] = False
        elif kind == "rtc":
            self.rtc_read_c(lanes, di)

    def not_descheduled(self, f, run):
        """``notify`` hook: of the vCPUs ``f`` that ``run``, those not descheduled (the
        others notice the interrupt when they run again)."""
        h = run & self.held[f]
        if h.any():
            self.held_kick[f[h]] = True
            run = run & ~h
        return run

    # ------------------------------------------------------------------ host contention

    def tslot_event(self, lanes, i: int) -> None:
        if i < len(self.ds):
            self.desched_event(lanes, i)
        else:
            self.rtc_coalesced_timer(lanes, self.rtcs[i - len(self.ds)])

    def desched_event(self, lanes, k: int) -> None:
        on = self.ds_on[lanes, k]
        if on.any():
            self.resume(lanes[on], k)
        lanes = lanes[~on]
        if not len(lanes):
            return
        path = self.ds[k]
        v = self.params[f"{path}.vcpu"][lanes]
        f = lanes * self.V + v
        t = self.now[lanes]
        self.thread[lanes] = v
        length = self.params[f"{path}.length"][lanes]
        period = self.params[f"{path}.period"][lanes]
        skip = (length == 0) | self.held[f]
        if skip.any():
            sl = lanes[skip]
            self.ds_start[sl, k] += period[skip]
            self.set_other(self.c_ts + k, sl, self.ds_start[sl, k])
        late = ~skip & (self.since[f] > t)
        if late.any():
            self.set_other(self.c_ts + k, lanes[late], self.since[f[late]])
        go = ~skip & ~late
        if not go.any():
            return
        lanes, v, f, t, length = lanes[go], v[go], f[go], t[go], length[go]
        self.emit(lanes, "irqlab_deschedule", "vcpu {} for {}ns", v, length // 1000)
        run = self.run_start[f] != NEVER
        self.held_run[f] = run
        if run.any():
            self.end_run(lanes[run], f[run], t[run])
        vt = self.T[self.c_vcpu + v, lanes]
        self.held_rem[f] = np.where(vt == NEVER, NEVER, vt - t)
        self.tset(self.c_vcpu + v, lanes, NEVER)
        self.held_mode[f] = self.mode[f]
        for m in range(4):
            s = self.held_mode[f] == m
            if s.any():
                self.exit_to(lanes[s], f[s], m, L0)
        self.held[f] = True
        self.held_kick[f] = False
        self.ds_on[lanes, k] = True
        self.ds_begin[lanes, k] = t
        self.set_other(self.c_ts + k, lanes, t + length)

    def resume(self, lanes, k: int) -> None:
        path = self.ds[k]
        v = self.params[f"{path}.vcpu"][lanes]
        f = lanes * self.V + v
        t = self.now[lanes]
        self.thread[lanes] = v
        shift = t - self.ds_begin[lanes, k]
        self.emit(lanes, "irqlab_reschedule", "vcpu {}", v)
        self.held[f] = False
        self.ds_on[lanes, k] = False
        self.ds_start[lanes, k] += self.params[f"{path}.period"][lanes]
        self.set_other(self.c_ts + k, lanes, np.maximum(self.ds_start[lanes, k], t))
        for m in range(4):
            s = self.held_mode[f] == m
            if s.any():
                self.exit_to(lanes[s], f[s], L0, m)
        pt = self.pt_armed[f]
        self.pt_deadline[f[pt]] += shift[pt]
        run = self.held_run[f]
        self.run_start[f[run]] = t[run]
        rem = self.held_rem[f]
        has = rem != NEVER
        if has.any():
            self.tset(self.c_vcpu + v[has], lanes[has], t[has] + rem[has])
        for di, kind in self.p.timer_devices:
            if kind == "stimer":
                self.stimer_process(lanes[self.st_due[lanes, di] & (v == self.p.devices[di].dest)], di)
        kick = self.held_kick[f]
        if kick.any():
            self.held_kick[f[kick]] = False
            for vv in np.unique(v[kick]):
                sel = kick & (v == vv)
                self.notify(lanes[sel], int(vv))
