"""The reference interpreter: one lane, one event at a time, plain Python.

This is the executable statement of irqlab's semantics (docs/model.md). It is
deliberately simple: scalar state, a linear scan for the next event, one
method per phase. The lockstep executor (:mod:`irqlab.engine.lockstep`) must
produce exactly the same traces and metrics; differential tests check it.

Order of simultaneous events: (time, slot), slots in the order END, SAMPLE,
device arrivals (device order), timers (mitigation order), VFIO host slots, the timer
mechanisms' slots (deschedule stretches, then RTC coalesced-tick timers), vCPUs (index).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine.dest_reference import RefDest
from irqlab.engine.idle_reference import RefIdle
from irqlab.engine.mech_reference import RefMechanisms
from irqlab.engine.routes_reference import RefRoutes
from irqlab.engine.timers_reference import RefTimers
from irqlab.engine.tpr_reference import RefPriority
from irqlab.engine.context import (
    body_contexts, call_plugin, check_fingerprints, init_plugins, plugin_contexts,
    plugin_fingerprints, service_contexts,
)
from irqlab.engine.program import L0, Program
from irqlab.engine.rng import uniform
from irqlab.engine.stats import EXIT_INDEX, Stats
from irqlab.engine.trace import KWORKER, QEMU, Trace
from irqlab.engine.vendor import record_text
from irqlab.plugins.api import NEVER, TimerEvent

from irqlab.engine.refbase import ONE
from irqlab.engine.reference_irqchip import RefIrqchip
from irqlab.engine.reference_phases import RefPhases


class LaneSim(RefIrqchip, RefPhases, RefMechanisms, RefRoutes, RefTimers, RefIdle, RefDest, RefPriority):
    """The state and behaviour of one lane."""

    def __init__(self, program: Program, params: dict[str, np.ndarray], key: np.ndarray,
                 trace: Trace | None) -> None:
        self.p = self.program = program
        self.params = params  # path -> array[1]
        self.v = {k: int(a[0]) if a.dtype.kind == "i" else float(a[0]) for k, a in params.items()}
        self.keys = key.reshape(1, 2)
        self.draws: dict[int, int] = {}
        self.trace = trace
        self.samples: list[tuple[float, ...]] = []
        self.stats = Stats.zeros(1, program)
        self.now = np.zeros(1, dtype=np.int64)
        self.t = 0
        self.thread = 0
        self.edge_merged = False  # set_line: a KVM edge found irr already set
        pr = program
        V, D, Pn = pr.n_vcpus, len(pr.devices), pr.n_pins
        self.owner = QEMU if pr.split else KWORKER
        # slots
        self.end_t = self.v["run.duration"]
        self.sample_t = NEVER
        self.arr_t = [NEVER] * D
        self.timer_t = [NEVER] * pr.n_timers
        # vCPUs
        inner = pr.innermost
        self.phase = [P.RUN_IDLE] * V
        self.vt = [NEVER] * V
        self.mode = [inner] * V
        self.since = [0] * V
        self.pre: list[list[tuple[int, int]]] = [[] for _ in range(V)]
        self.grp = [-1] * V
        self.pc = [0] * V
        self.run_start = [0] * V
        self.pt_armed = [False] * V
        self.pt_deadline = [NEVER] * V
        self.rip = [0] * V  # innermost progress so far, ps: stands for its instruction pointer
        self.eoi_vec = [-1] * V
        self.mmio_action = [""] * V
        self.mmio_step = [0] * V  # the access of the current IOAPIC step being made
        self.irq_seen = [False] * V  # the vCPU has had its first interrupt
        self.stall_start = [NEVER] * V
        # LAPICs (bit g = vector group g)
        self.irr = [0] * V
        self.isr = [0] * V
        self.tmr = [0] * V
        # IOAPIC
        self.p_irr = [False] * Pn
        self.p_rirr = [False] * Pn
        self.p_masked = [False] * Pn
        self.p_line = [0] * Pn
        self.used_pins = sorted({d.pin for d in pr.devices if d.pin >= 0})
        # devices
        self.pending = [0] * D
        self.asserted = [False] * D
        self.forwarded = [False] * D
        self.svc_rem = [0] * D
        self.episode = [NEVER] * D
        self.fresh = [False] * D  # an arrival raised an interrupt not yet delivered or merged
        self.pin_devs = {pin: [d.index for d in pr.devices if d.pin == pin] for pin in self.used_pins}
        # groups
        self.waiting = [False] * len(pr.groups)
        self.wait_pc = [0] * len(pr.groups)
        self.ctx_arrival, self.ctx_model, self.ctx_mit = plugin_contexts(self, 1)
        self.ctx_service = service_contexts(self, 1)
        self.ctx_body = body_contexts(self, 1)
        self.mech_init()
        self.routes_init()
        self.timers_init()
        self.idle_init()
        self.dest_init()
        self.prio_init()
        self.phase_handlers = self._phase_table()  # phase -> method, built once
        for v in range(V):
            self._trace_mode(v, 0, inner)

    # ------------------------------------------------------------------ engine ops for plugins

    def draw(self, lanes, stream):
        if not len(lanes):
            return np.zeros(0)
        c = self.draws.get(stream, 0)
        self.draws[stream] = c + 1
        return uniform(self.keys, stream, np.array([c], dtype=np.int64))

    def op_timer(self, lanes, k):
        return np.full(len(lanes), self.timer_t[k], dtype=np.int64)

    def op_set_timer(self, lanes, k, t):
        if len(lanes):
            self.timer_t[k] = int(t[0])

    def op_pin(self, lanes, pins, what):
        arr = {"line": self.p_line, "irr": self.p_irr, "remote_irr": self.p_rirr,
               "masked": self.p_masked}[what]
        out = np.array([arr[int(p)] for p in pins])
        return out > 0 if what == "line" else out.astype(bool)

    def op_service_all(self, lanes, level_only):
        if len(lanes):
            self.service_all(level_only)

    def op_set_mask(self, lanes, pins, masked):
        for p in pins:
            self.redirect_write(int(p), masked)

    def op_poll(self, lanes, pins):
        for p in pins:
            self.emit("irqlab_poll", f"pin {int(p)}")
            for d in self.p.devices:
                if d.pin == int(p) and self.pending[d.index] > 0:
                    self.device_service(d.index)

    def op_activated(self, lanes, m):
        if len(lanes):
            self.stats.act[0, m] += 1

    def op_trace(self, lanes, event, text):
        for i in range(len(lanes)):
            self.emit(event, text if isinstance(text, str) else text[i])

    def op_pending(self, lanes, d):
        return np.full(len(lanes), self.pending[d], dtype=np.int64)

    def op_set_pending(self, lanes, d, values):
        if len(lanes):
            self.pending[d] = int(values[0])

    # ------------------------------------------------------------------ records

    def emit(self, event: str, text: str, t: int | None = None, thread: int | None = None) -> None:
        self.stats.events[0] += 1
        if self.zt_depth:
            self.zt_log.append(f"{event} {text}")
        if self.trace is not None:
            self.trace.add(self.t if t is None else t, self.thread if thread is None else thread,
                           event, record_text(self.p.vendor, event, text))

    def exit(self, v: int, reason: str, rip: int, info: int = 0) -> None:
        self.stats.exits[0, EXIT_INDEX[reason]] += 1
        self.emit("kvm_exit", f"reason {reason} rip 0x{rip:x} info {info:x} 0")

    def l2_rip(self, v: int) -> int:
        return P.RIP_L2_BASE + (self.rip[v] // 1000) * 4

    def _trace_mode(self, v: int, t: int, mode: int) -> None:
        if self.trace is not None:
            self.trace.modes.append((t, v, mode))

    # ------------------------------------------------------------------ time accounting

    def switch(self, v: int, new_mode: int, prefix: Sequence[tuple[int, int]] = ()) -> int:
        """Leave the current mode at ``self.t``; spend ``prefix`` [(mode, ps)], then be in
        ``new_mode``. Returns the time the new mode starts."""
        t = self.t
        acc = self.stats.acc[0, v]
        acc[self.mode[v]] += t - self.since[v]
        for m, dt in prefix:
            if dt:
                self._trace_mode(v, t, m)
            acc[m] += dt
            t += dt
        self.pre[v] = list(prefix)
        self.mode[v] = new_mode
        self.since[v] = t
        self._trace_mode(v, t, new_mode)
        return t

    def cost(self, name: str) -> int:
        return self.v[f"costs.{name}"]

    def before(self, g: int, pc: int) -> int:
        path = self.p.groups[g].before[pc]
        return 0 if path is None else self.v[path]

    # ------------------------------------------------------------------ LAPIC

    def vec(self, g: int) -> int:
        return self.p.groups[g].vector

    @staticmethod
    def high(bits: int) -> int:
        return bits.bit_length() - 1

    # ------------------------------------------------------------------ devices

    def close_stall(self, v: int, t: int) -> None:
        s = self.stall_start[v]
        if s != NEVER:
            self.stats.stall_max[0, v] = max(self.stats.stall_max[0, v], t - s)
            self.stall_start[v] = NEVER

    def arrival(self, di: int) -> None:
        d = self.p.devices[di]
        t = self.t
        self.stats.raised[0] += 1
        self.stats.dev_raised[0, di] += 1
        self.pending[di] += 1
        self.note_arrival(di)
        raise_now = bool(call_plugin(self.ctx_model[di], "device", d.model.on_arrival, ONE)[0])
        if not raise_now:
            self.merge(di)
        elif d.delivery == "msi":
            dest = self.msi_dest[di]
            if self.p.bare:
                self.emit("irqlab_msi", f"dst {dest} vec {d.vector}")
            else:
                dst, how = self.msg_of(d.group, dest)
                self.emit("kvm_msi_set_irq", f"dst {dst} vec {d.vector} ({how}|edge)")
            self.fresh[di] = True
            self.count_delivery([di], self.deliver(d.group, False, dest))
        elif d.trigger == "level":
            if self.asserted[di]:
                self.merge(di)
            else:
                self.asserted[di] = True
                self.fresh[di] = True
                if d.vfio:
                    self.vfio_rise(di)
                else:
                    self.p_line[d.pin] += 1
                    if self.p_line[d.pin] == 1:
                        self.set_line(d.pin, 1)
        else:
            was, self.edge_merged = self.fresh[di], False
            self.fresh[di] = True
            self.set_line(d.pin, 1)
            self.set_line(d.pin, 0)
            if was or self.edge_merged:
                self.merge(di)  # an edge of this pin was still pending at the IOAPIC
                self.fresh[di] = was and self.fresh[di]
            if self.fresh[di] and not self.p_irr[d.pin]:
                self.fresh[di] = False  # masked: QEMU ignores it, KVM's falling half clears irr
                self.stats.dev_lost[0, di] += 1
        nxt = call_plugin(self.ctx_arrival[di], "arrival", d.arrival.next, ONE, np.array([t]))
        self.arr_t[di] = max(int(nxt[0]), t)

    def note_arrival(self, di: int) -> None:
        """The books of an arrival at device ``di`` (also a timer's expiry): the first
        interrupt, the start of its vCPU's stall (the vCPU its route names now), the start
        of the device's episode."""
        d, t = self.p.devices[di], self.t
        if self.stats.first_irq[0] == NEVER:
            self.stats.first_irq[0] = t
        to = self.msi_dest[di] if d.delivery == "msi" else self.kdest[d.pin]  # its route now
        if not self.irq_seen[to]:
            self.irq_seen[to] = True
            if self.run_start[to] == NEVER:
                self.stall_start[to] = t
        if self.episode[di] == NEVER:
            self.episode[di] = t

    def device_service(self, di: int, v: int = -1) -> bool:
        """The driver (on vCPU ``v``; -1: outside a handler) finishes servicing device ``di``;
        returns whether it had work."""
        d = self.p.devices[di]
        handled, lower = call_plugin(self.ctx_model[di], "device", d.model.on_service, ONE)
        handled, lower = bool(handled[0]), bool(lower[0]) and d.lowers_line
        after = self.pending[di]
        if handled:
            if self.p.idle:
                self.idle_work(di, v)
            self.stats.dev_serviced[0, di] += 1
            if self.episode[di] != NEVER:
                self.stats.add_latency(np.zeros(1, np.int64), di,
                                       np.array([self.t - self.episode[di]], np.int64))
            self.episode[di] = self.t if after > 0 else NEVER
        if lower and self.asserted[di]:
            if self.fresh[di]:  # serviced before its assertion was delivered
                self.fresh[di] = False
                self.merge(di)
            self.asserted[di] = False
            if not d.vfio:  # VFIO: the host line drops; KVM's GSI waits for the resampler
                self.p_line[d.pin] -= 1
                if self.p_line[d.pin] == 0:
                    self.set_line(d.pin, 0)
        if handled:
            self.timer_serviced(di)
        return handled

    # ------------------------------------------------------------------ running guest code

    def cur_fwd(self, v: int) -> int:
        for d in self.p.devices:
            if d.dest == v and self.forwarded[d.index]:
                return d.index
        return -1

    def start_run(self, v: int, t0: int) -> None:
        """The innermost level runs guest code from ``t0`` (>= now)."""
        self.run_start[v] = t0
        if self.p.idle:
            self.idle_run(v, t0)
            return
        svc_t = NEVER
        d = self.cur_fwd(v)
        if d >= 0:
            svc_t = t0 + self.svc_rem[d]
        pt_t = self.pt_deadline[v] if self.pt_armed[v] else NEVER
        if svc_t <= pt_t and svc_t != NEVER:
            self.phase[v], self.vt[v] = P.RUN_SVC, svc_t
        elif pt_t != NEVER:
            self.phase[v], self.vt[v] = P.RUN_PT, pt_t
        else:
            self.phase[v], self.vt[v] = P.RUN_IDLE, NEVER
        if self.p.l2_exit:
            self.exit_schedule(v, t0)

    def end_run(self, v: int, t: int) -> None:
        """The guest code run that began at ``run_start`` stops at ``t``."""
        start = self.run_start[v]
        self.run_start[v] = NEVER
        elapsed = t - start
        if elapsed > 0:
            self.close_stall(v, start)
            first = self.stats.first_irq[0]
            if first != NEVER and t > first and self.stats.ttp[0] == NEVER:
                self.stats.ttp[0] = max(start, first) - first
                if self.p.nested:
                    self.stats.ttp_l2[0] = self.stats.ttp[0]
            d = self.cur_fwd(v)
            if d >= 0:
                self.svc_rem[d] -= elapsed
            self.rip[v] += elapsed
            if self.p.idle:
                self.idle_progress(v, elapsed)
            if self.p.l2_exit:
                self.exit_rem[v] -= elapsed
            if self.irq_seen[v]:
                self.stall_start[v] = t
        elif self.irq_seen[v] and self.stall_start[v] == NEVER:
            self.stall_start[v] = start

    # ------------------------------------------------------------------ the vCPU's phases

    def vcpu_event(self, v: int) -> None:
        if self.routes_on:
            self.settle(v)
        self.phase_handlers[self.phase[v]](v)

    def _phase_table(self) -> dict:
        return {
            P.RUN_SVC: self.ph_run_svc, P.RUN_PT: self.ph_run_pt, P.KICK: self.ph_kick,
            P.TAKE: self.ph_take, P.L0_CHECK: self.ph_l0_check, P.L0_INJECT: self.ph_l0_inject,
            P.ACT: self.ph_act, P.SERVICE_DONE: self.ph_service_done, P.EOI_L0: self.ph_eoi_l0,
            P.EOI_USER: self.ph_eoi_user, P.MMIO_L0: self.ph_mmio_l0, P.MMIO_USER: self.ph_mmio_user,
            P.VMRESUME_L0: self.ph_vmresume_l0, P.REFLECT: self.ph_reflect, P.MMIO_NEXT: self.ph_mmio_next,
            P.L1_STI: self.ph_l1_sti, **self.idle_phases(),
            P.RUN_EXIT: self.ph_run_exit, P.L1_EXIT: self.ph_l1_exit, P.EOI_BACK: self.ph_eoi_back,
        }

    def at(self, v: int, phase: int, t: int) -> None:
        self.phase[v], self.vt[v] = phase, t

    def enter(self, v: int, level: int, prefix: Sequence[tuple[int, int]] = (), entry_t: int | None = None) -> int:
        """kvm_entry into ``level`` (after ``prefix``); returns when its code starts."""
        et = self.t + sum(dt for _, dt in prefix) if entry_t is None else entry_t
        self.emit("kvm_entry", f"vcpu {v}", t=et)
        if self.routes_on:
            self.entry_at[v] = et  # the entry's rescan and PIR sync: routes_reference.settle
        return self.switch(v, level, list(prefix) + [(L0, self.cost("vmentry"))])

    # ------------------------------------------------------------------ the loop

    def finish(self, t_end: int) -> None:
        """Close the books at ``t_end``."""
        self.t = t_end
        self.now[0] = t_end
        for v in range(self.p.n_vcpus):
            if self.run_start[v] != NEVER:
                self.end_run(v, max(t_end, self.run_start[v]))
            acc = self.stats.acc[0, v]
            over = self.since[v] - t_end
            if over <= 0:
                acc[self.mode[v]] += t_end - self.since[v]
            else:
                for m, dt in reversed(self.pre[v]):
                    take = min(dt, over)
                    acc[m] -= take
                    over -= take
            self.close_stall(v, t_end)
        self.routes_finish(t_end)
        self.stats.dev_pending[0] = self.fresh
        self.stats.end_t[0] = t_end
        if self.trace is not None:
            self.trace.end_ps = t_end

    def run(self) -> Stats:
        pr = self.p
        max_events = self.v["run.max_events"]
        for d, first in zip(pr.devices, init_plugins(self, ONE)):
            self.arr_t[d.index] = int(first[0])
        before = plugin_fingerprints(pr)
        if pr.series_fields:
            self.sample_t = 0
        n_dev = len(pr.devices)
        n_tim = pr.n_timers
        while True:
            # the next event: (time, slot) with slots END, SAMPLE, arrivals, timers, vCPUs
            best_t, best = self.end_t, ("end", 0)
            if self.sample_t < best_t:
                best_t, best = self.sample_t, ("sample", 0)
            for i in range(n_dev):
                if self.arr_t[i] < best_t:
                    best_t, best = self.arr_t[i], ("arrival", i)
            for i in range(n_tim):
                if self.timer_t[i] < best_t:
                    best_t, best = self.timer_t[i], ("timer", i)
            for i, ht in enumerate(self.host_t):
                if ht < best_t:
                    best_t, best = ht, ("host", i)
            for i, at in enumerate(self.act_t):
                if at < best_t:
                    best_t, best = at, ("action", i)
            for i, dt in enumerate(self.tslot_t):
                if dt < best_t:
                    best_t, best = dt, ("tslot", i)
            for v in range(pr.n_vcpus):
                if self.vt[v] < best_t:
                    best_t, best = self.vt[v], ("vcpu", v)
            self.t = best_t
            self.now[0] = best_t
            kind, i = best
            if kind == "end":
                self.finish(self.end_t)
                break
            zt_name = self.event_name(kind, i) if self.deep_in_instant() else None
            if kind == "vcpu":
                self.thread = i
                self.vt[i] = NEVER
                self.vcpu_event(i)
            elif kind == "arrival":
                self.thread = QEMU
                self.timer_expire(i) if i in self.tkind else self.arrival(i)
            elif kind == "timer":
                self.thread = self.owner
                self.timer_t[i] = NEVER
                for m in pr.mitigations:
                    if m.timer_base <= i < m.timer_base + type(m.plugin).timers:
                        call_plugin(self.ctx_mit[m.index], "mitigation", m.plugin.on_timer,
                                    TimerEvent(ONE, i - m.timer_base))
            elif kind == "host":
                self.thread = KWORKER
                self.host_t[i] = NEVER
                self.host_event(i)
            elif kind == "action":
                self.thread = self.owner
                self.action_event(i)
            elif kind == "tslot":
                self.tslot_event(i)
            else:
                self.sample()
            if self.stats.zt_loop[0] or self.same_instant(zt_name):
                self.finish(self.t)
                break
            if self.stats.events[0] >= max_events:
                self.stats.truncated[0] = True
                self.finish(self.t)
                break
        check_fingerprints(pr, before)
        return self.stats

    def sample(self) -> None:
        """Record the series fields at this instant (before this instant's events)."""
        t = self.t
        acc = self.stats.acc[0].copy()
        for v in range(self.p.n_vcpus):
            if t > self.since[v]:
                acc[v, self.mode[v]] += t - self.since[v]
        s = self.stats
        values = {
            "t_ns": t / 1000.0,
            "l2_time_ns": acc[:, 2].sum() / 1000.0, "l1_time_ns": acc[:, 1].sum() / 1000.0,
            "l0_time_ns": acc[:, 0].sum() / 1000.0, "userspace_time_ns": acc[:, 3].sum() / 1000.0,
            "eoi_count": s.eoi_count[0], "exits_total": s.exits[0].sum(),
            "interrupts_raised": s.raised[0], "interrupts_delivered": s.delivered[0],
            "pending": sum(self.pending), "irr": sum(bin(x).count("1") for x in self.irr),
            "line": sum(1 for x in self.p_line if x > 0),
        }
        self.samples.append(tuple(float(values[f]) for f in ("t_ns",) + self.p.series_fields))
        self.sample_t = t + max(self.v.get("run.series.every", 1), 1)
