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
from irqlab.engine import idle as I
from irqlab.engine.dest_reference import RefDest
from irqlab.engine.idle_reference import RefIdle
from irqlab.engine.mech_reference import RefMechanisms
from irqlab.engine.routes_reference import RefRoutes
from irqlab.engine.timers_reference import RefTimers
from irqlab.engine.tpr_reference import RefPriority
from irqlab.engine.context import (
    body_contexts, call_plugin, check_fingerprints, init_plugins, is_body_step, plugin_contexts,
    plugin_fingerprints, service_contexts,
)
from irqlab.engine.program import L0, L1, L2, USER, Program
from irqlab.engine.rng import uniform
from irqlab.engine.stats import EXIT_INDEX, UEXIT_INDEX, Stats
from irqlab.engine.trace import KWORKER, QEMU, Trace
from irqlab.engine.vendor import record_text
from irqlab.plugins.api import (
    NEVER, DeliverEvent, EoiEvent, HandlerEvent, ImmediateExitEvent, RedirectEvent, TimerEvent,
)

ONE = np.zeros(1, dtype=np.int64)  # the lane array a plugin sees here: [0]


class LaneSim(RefMechanisms, RefRoutes, RefTimers, RefIdle, RefDest, RefPriority):
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

    def ack(self, v: int) -> int:
        g = self.high(self.irr[v])
        self.irr[v] &= ~(1 << g)
        self.isr[v] |= 1 << g
        if self.svi_on:
            self.svi_sync(v)
        self.trace_lapic(v)
        return g

    def lapic_eoi(self, v: int) -> int:
        if not self.isr[v]:
            return -1
        g = self.high(self.isr[v])
        self.isr[v] &= ~(1 << g)
        if self.svi_on:
            self.svi_sync(v)
        self.trace_lapic(v)
        return g

    def accept(self, v: int, g: int, level: bool, how: str = "Fixed") -> bool:
        """An interrupt for vector group ``g`` arrives at vCPU ``v``'s LAPIC; returns whether
        it set the IRR bit (False: merged into the one already pending)."""
        trig = "level" if level else "edge"
        if self.p.bare:
            self.emit("irqlab_apic_accept", f"cpu {v} vec {self.vec(g)} ({trig})")
        else:
            self.emit("kvm_apic_accept_irq", f"apicid {v} vec {self.vec(g)} ({how}|{trig})")
        bit = 1 << g
        if level:
            self.tmr[v] |= bit
        else:
            self.tmr[v] &= ~bit
        if self.irr[v] & bit:
            return False
        self.posted(v, bit)
        self.irr[v] |= bit
        self.trace_lapic(v)
        self.notify(v)
        return True

    def count_delivery(self, devs: Sequence[int], accepted: bool) -> None:
        """Book one delivery of the pin or MSI of devices ``devs`` to a LAPIC
        (docs/model.md, Metrics): it delivers the first device with a fresh interrupt
        and merges the others' (coalesced); with none fresh it is a re-delivery of a
        line still asserted (``redelivered``). A re-delivery merged into a pending IRR
        bit is nobody's arrival and is not counted."""
        s = self.stats
        taken = False
        for di in devs:
            if self.fresh[di]:
                self.fresh[di] = False
                if accepted and not taken:
                    s.dev_delivered[0, di] += 1
                    s.delivered[0] += 1
                else:
                    s.dev_coalesced[0, di] += 1
                    s.coalesced[0] += 1
                taken = True
        if not taken and accepted:
            di = next((i for i in devs if self.asserted[i]), devs[0])
            s.dev_redelivered[0, di] += 1
            s.delivered[0] += 1

    def merge(self, di: int) -> None:
        """Arrival at device ``di`` merged into an interrupt already raised."""
        self.stats.dev_coalesced[0, di] += 1
        self.stats.coalesced[0] += 1

    def notify(self, v: int) -> None:
        """A new interrupt is pending at ``v``: a running guest is interrupted."""
        if self.p.idle and self.idle_notify(v):
            return
        if self.phase[v] not in I.RUNNING or self.descheduled(v):
            return
        at = max(self.t, self.since[v])
        if self.p.nested or (not self.p.bare and not self.p.apicv):
            self.phase[v], self.vt[v] = P.KICK, at
        elif self.deliverable(v):
            self.phase[v], self.vt[v] = P.TAKE, at

    # ------------------------------------------------------------------ IOAPIC

    def trace_lapic(self, v: int) -> None:
        """Trace counters: vectors pending (IRR) and in service (ISR) at vCPU ``v``."""
        if self.trace is not None:
            self.trace.counters.append((self.t, f"vCPU {v} IRR", bin(self.irr[v]).count("1")))
            self.trace.counters.append((self.t, f"vCPU {v} ISR", bin(self.isr[v]).count("1")))

    def set_line(self, pin: int, level: int) -> None:
        """A device line at ``pin`` changes (the OR of its devices' lines)."""
        if self.trace is not None:
            self.trace.counters.append((self.t, f"gsi {pin} line", level))
        if self.p.bare:
            self.emit("irqlab_line", f"gsi {pin} level {level}")
        elif self.p.split:
            self.emit("ioapic_set_irq", f"vector: {pin} level: {level}")
        else:
            self.emit("kvm_set_irq", f"gsi {pin} level {level} source 0")
        self.line_effect(pin, level)

    def line_effect(self, pin: int, level: int) -> None:
        """The IOAPIC sees ``pin``'s line (the OR of its sources) at ``level``."""
        if self.p.pin_level[pin]:
            if level:
                self.lazy_eoi(pin)
                self.p_irr[pin] = True
                if self.p.split:
                    if not self.p_rirr[pin]:
                        self.service_all()
                else:
                    self.service(pin)
            else:
                self.p_irr[pin] = False
        elif not level:
            if not (self.p.split or self.p.bare):
                self.p_irr[pin] = False  # KVM: the pulse's falling half clears an edge pin's irr
        elif level:
            if self.p.split or self.p.bare:
                if not self.p_masked[pin]:
                    self.p_irr[pin] = True
                    self.service_all() if self.p.split else self.service(pin)
            else:
                if self.p_irr[pin]:
                    self.edge_merged = True
                else:
                    self.p_irr[pin] = True
                    self.service(pin)

    def service_all(self, level_only: bool = False) -> None:
        for pin in self.used_pins:
            if level_only and not self.p.pin_level[pin]:
                continue
            self.service(pin)

    def service(self, pin: int) -> None:
        """Deliver ``pin`` if it is pending and deliverable (QEMU/KVM ``ioapic_service``)."""
        level = self.p.pin_level[pin]
        if self.p_masked[pin] or not self.p_irr[pin] or (level and self.p_rirr[pin]):
            return
        if self.mit_deliver(pin):
            return
        if level:
            self.p_rirr[pin] = True
        else:
            self.p_irr[pin] = False
        g = self.p.pin_group[pin]
        grp = self.p.groups[g]
        dest = self.kdest[pin]
        trig = "level" if level else "edge"
        if self.p.bare:
            self.emit("irqlab_ioapic_deliver", f"pin {pin} vec {grp.vector} ({trig})")
        elif self.p.split:
            dst, how = self.msg_of(g, dest)
            self.emit("kvm_set_irq", f"gsi {pin} level 1 source 0")
            self.emit("kvm_msi_set_irq", f"dst {dst} vec {grp.vector} ({how}|{trig})")
        else:
            dst, how = self.msg_of(g, dest)
            self.emit("kvm_ioapic_set_irq", f"pin {pin} dst {dst} vec {grp.vector} ({how}|{trig})")
        if dest != self.rte_dest[pin]:
            self.stats.misrouted[0] += 1  # a stale KVM route (routes_reference)
        self.count_delivery(self.pin_devs[pin], self.deliver(g, level, dest))
        if self.p.split and not level:
            self.emit("kvm_set_irq", f"gsi {pin} level 0 source 0")

    def eoi_broadcast(self, vector: int) -> None:
        """An EOI for ``vector`` reaches the IOAPIC (QEMU ``ioapic_eoi_broadcast`` or
        KVM ``kvm_ioapic_update_eoi``)."""
        for pin in self.used_pins:
            if not self.p.pin_level[pin] or self.vec(self.p.pin_group[pin]) != vector:
                continue
            if self.p.split and not self.p_rirr[pin]:
                continue
            self.eoi_one(pin)

    def eoi_one(self, pin: int) -> None:
        """The EOI of level ``pin`` (QEMU's loop body; KVM ``kvm_ioapic_update_eoi_one``)."""
        if not self.p.split:
            self.resampler_ack(pin)  # kvm_ioapic_update_eoi_one: ack notifiers first
        self.p_rirr[pin] = False
        self.rirr_cleared(pin)
        asserted = (not self.p_masked[pin]) and self.p_irr[pin]
        defer = self.mit_eoi(pin, asserted)
        if asserted and not defer:
            self.service_all() if self.p.split else self.service(pin)

    def redirect_write(self, pin: int, masked: bool, dest: int | None = None) -> None:
        """A write of ``pin``'s redirection entry (QEMU ``ioapic_mem_write``, KVM
        ``ioapic_write_indirect``); ``dest`` None keeps the destination."""
        self.emit("irqlab_redirect", f"pin {pin} masked {int(masked)}" + ("" if dest is None else f" dest {dest}"))
        old = self.rte_dest[pin]
        self.p_masked[pin] = masked
        if dest is not None:
            self.rte_dest[pin] = dest
        self.mit_redirect(pin)
        if self.p.split:
            first = self.routes_on and self.p.rte_update == "routes_first"
            if first:
                self.update_kvm_routes()
            self.service_all()
            if self.routes_on and not first:
                self.update_kvm_routes()
            return
        self.kdest[pin] = self.rte_dest[pin]
        if (not masked and self.p.pin_level[pin] and self.p_irr[pin] and not self.p_rirr[pin]):
            if not self.unmask_resample(pin):
                self.service(pin)
        if self.routes_on:
            self.request_scan((old, self.rte_dest[pin]))

    # ------------------------------------------------------------------ mitigation hooks

    def _hook(self, hook: str):
        for m in self.p.mitigations:
            if hook in type(m.plugin).hooks:
                yield m, self.ctx_mit[m.index]

    def mit_deliver(self, pin: int) -> bool:
        block = False
        for m, ctx in self._hook("deliver"):
            ev = DeliverEvent(ONE, np.array([pin]), np.zeros(1, bool))
            call_plugin(ctx, "mitigation", m.plugin.on_deliver, ev)
            block = block or bool(ev.block[0])
        return block

    def mit_eoi(self, pin: int, asserted: bool) -> bool:
        defer = False
        for m, ctx in self._hook("ioapic_eoi"):
            ev = EoiEvent(ONE, np.array([pin]), np.array([asserted]), np.zeros(1, bool))
            call_plugin(ctx, "mitigation", m.plugin.on_ioapic_eoi, ev)
            defer = defer or bool(ev.defer[0])
        return defer

    def mit_redirect(self, pin: int) -> None:
        for m, ctx in self._hook("redirect"):
            call_plugin(ctx, "mitigation", m.plugin.on_redirect, RedirectEvent(ONE, np.array([pin])))

    def mit_immediate(self, v: int) -> int:
        timer = 0
        for m, ctx in self._hook("immediate_exit"):
            ev = ImmediateExitEvent(ONE, np.array([v]), np.array([self.rip[v]]), np.array([timer]))
            call_plugin(ctx, "mitigation", m.plugin.on_immediate_exit, ev)
            timer = int(ev.timer[0])
        return timer

    def mit_handler_done(self, v: int, pin: int, handled: bool) -> None:
        for m, ctx in self._hook("handler_done"):
            ev = HandlerEvent(ONE, np.array([v]), np.array([pin]), np.array([handled]))
            call_plugin(ctx, "mitigation", m.plugin.on_handler_done, ev)

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

    def ph_run_svc(self, v: int) -> None:
        """L2 has finished servicing a forwarded device."""
        t = self.t
        self.end_run(v, t)
        d = self.cur_fwd(v)
        self.svc_rem[d] = 0
        self.forwarded[d] = False
        self.device_service(d)
        g = self.p.devices[d].group
        done = not any(self.forwarded[i] for i in self.p.groups[g].devices)
        if self.waiting[g] and done:
            self.l2_eoi_write(v)
            self.grp[v] = g
            self.at(v, P.REFLECT, t + self.cost("vmexit"))
        elif done and self.p.groups[g].l2_eoi:
            self.l2_eoi_exit(v)
        else:
            self.start_run(v, t)

    def l2_exit(self, v: int, reason: str, qual: int = 0) -> None:
        """L2 exits to L0 with ``reason``: ``kvm_exit`` and ``kvm_nested_vmexit``; the
        preemption timer is disarmed."""
        self.exit(v, reason, self.l2_rip(v), qual)
        self.emit("kvm_nested_vmexit", f"rip {self.l2_rip(v):x} reason {reason} info1 0 info2 0 "
                  "int_info 0 int_info_err 0")
        self.pt_armed[v] = False
        self.switch(v, L0)

    def l2_eoi_write(self, v: int) -> None:
        """L2 writes its EOI (x2APIC MSR or APIC-access page) and exits."""
        self.l2_exit(v, *P.eoi_exit(self.p.x2apic))

    def ph_run_pt(self, v: int) -> None:
        """The preemption timer fires in L2 (an immediate exit, or a throttled one)."""
        self.end_run(v, self.t)
        self.l2_exit(v, "PREEMPTION_TIMER")
        self.at(v, P.L0_CHECK, self.t + self.cost("vmexit"))

    def ph_kick(self, v: int) -> None:
        """A new interrupt made the running guest exit (EXTERNAL_INTERRUPT)."""
        self.end_run(v, self.t)
        self.pt_armed[v] = False
        if self.p.nested:
            self.exit(v, "EXTERNAL_INTERRUPT", self.l2_rip(v))
            self.emit("kvm_nested_vmexit", f"rip {self.l2_rip(v):x} reason EXTERNAL_INTERRUPT info1 0 "
                      "info2 0 int_info 0 int_info_err 0")
            self.switch(v, L0)
            self.at(v, P.L0_CHECK, self.t + self.cost("vmexit"))
        else:
            self.exit(v, "EXTERNAL_INTERRUPT", P.RIP_GUEST_BASE + (self.rip[v] // 1000) * 4)
            self.switch(v, L0)
            self.at(v, P.L0_INJECT, self.t + self.cost("vmexit"))

    def ph_take(self, v: int) -> None:
        """The guest takes the highest deliverable interrupt itself (no exit)."""
        if self.run_start[v] != NEVER:
            self.end_run(v, self.t)
        if not self.deliverable(v):
            self.start_run(v, self.t)
            return
        g = self.ack(v)
        if self.p.bare:
            grp = self.p.groups[g]
            irq = grp.pins[0] if grp.pins else grp.vector
            name = self.p.devices[grp.devices[0]].name
            self.emit("irq_handler_entry", f"irq={irq} name={name}")
        self.start_handler(v, g, self.t)

    def ph_l0_check(self, v: int) -> None:
        """Nested: L0's check_nested_events after an L2 exit."""
        t = self.t
        if self.deliverable(v):
            if self.p.ack_on_exit:
                g = self.ack(v)
                info = 0x80000000 | self.vec(g)
            else:
                g, info = -1, 0
            self.emit("kvm_nested_vmexit_inject", f"reason EXTERNAL_INTERRUPT info1 0 info2 0 "
                      f"int_info {info:x} int_info_err 0")
            start = self.enter(v, L1, [(L0, self.cost("nested_exit"))])
            if g >= 0:
                self.start_handler(v, g, start)
            else:  # load_vmcs12_host_state: RFLAGS = X86_EFLAGS_FIXED, L1 runs with IF=0
                self.at(v, P.L1_STI, start + self.cost("l1_irq_off"))
        else:
            start = self.enter(v, L2)
            self.start_run(v, start)

    def ph_l0_inject(self, v: int) -> None:
        """L0 injects a pending interrupt on entry to L1, or just re-enters (a single-level
        guest runs on; a nested L1 enables interrupts and goes on to VMRESUME)."""
        if self.deliverable(v):
            g = self.ack(v)
            self.emit("kvm_inj_virq", f"irq {self.vec(g)}")
            start = self.enter(v, L1)
            self.start_handler(v, g, start)
        elif self.p.nested:
            self.at(v, P.L1_STI, self.enter(v, L1))
        else:
            start = self.enter(v, L1)
            self.start_run(v, start)

    def ph_l1_sti(self, v: int) -> None:
        """Nested L1 enables interrupts after handling an exit. A pending interrupt is taken
        through its IDT: with APICv by virtual-interrupt delivery (RVI, no exit), without by
        an INTERRUPT_WINDOW exit and an injection. Nothing pending: L1 resumes L2."""
        if not self.l1_deliverable(v):
            self.vmresume(v)
        else:
            self.l1_take(v)

    def l1_take(self, v: int) -> None:
        """L1, interrupts enabled, takes the highest deliverable interrupt through its IDT."""
        if self.p.apicv:
            self.start_handler(v, self.ack(v), self.t)
        else:
            self.exit(v, "INTERRUPT_WINDOW", P.RIP_L1_STI)
            self.switch(v, L0)
            self.at(v, P.L0_INJECT, self.t + self.cost("vmexit"))

    # handler programs

    def start_handler(self, v: int, g: int, t0: int) -> None:
        self.grp[v] = g
        self.pc[v] = 0
        self.schedule_step(v, t0)

    def schedule_step(self, v: int, t0: int) -> None:
        """Run the handler's step at ``pc`` after its delay, from ``t0``; FORWARD steps
        without a delay happen at once."""
        g = self.grp[v]
        steps = self.p.groups[g].steps
        delay = self.step_delay(g, self.pc[v])
        while steps[self.pc[v]].action == "FORWARD" and delay == 0:
            self.forward(g)
            self.pc[v] += 1
            delay = self.step_delay(g, self.pc[v])
        self.at(v, P.ACT, t0 + delay)

    def step_delay(self, g: int, pc: int) -> int:
        """The handler time before step ``pc``: its parameter, or a draw of the policy's random
        body time."""
        grp = self.p.groups[g]
        if not is_body_step(grp, pc):
            return self.before(g, pc)
        from irqlab.plugins.builtin.services import sample_by_cv

        return int(sample_by_cv(grp.body_dist, self.ctx_body[g], ONE, self.before(g, pc),
                                self.v[f"{grp.body_path}.body_cv"])[0])

    def advance(self, v: int, t0: int) -> None:
        self.pc[v] += 1
        self.schedule_step(v, t0)

    def forward(self, g: int) -> None:
        for di in self.p.groups[g].devices:
            if not self.forwarded[di]:
                self.forwarded[di] = True
                self.svc_rem[di] = self.service_time(di)

    def service_time(self, di: int) -> int:
        """How long this service of device ``di`` takes: its constant, or one draw of its
        distribution (a job starts now)."""
        d = self.p.devices[di]
        if d.service_dist is None:
            return self.v[d.service]
        return int(call_plugin(self.ctx_service[di], "service", d.service_dist.sample, ONE)[0])

    def ph_act(self, v: int) -> None:
        g, pc, t = self.grp[v], self.pc[v], self.t
        action = self.p.groups[g].steps[pc].action
        if action == "FORWARD":
            self.forward(g)
            self.advance(v, t)
        elif action == "SERVICE":
            dur = sum(self.service_time(di) for di in self.p.groups[g].devices if self.pending[di] > 0)
            self.at(v, P.SERVICE_DONE, t + dur)
        elif action == "EOI":
            self.guest_eoi(v)
        elif action in ("IOAPIC_EOI", "MASK", "UNMASK"):
            self.guest_mmio(v, action)
        elif action == "WAIT":
            self.waiting[g] = True
            self.wait_pc[g] = pc + 1
            self.vmresume(v)
        else:  # RETURN
            self.handler_return(v)

    def ph_service_done(self, v: int) -> None:
        g = self.grp[v]
        grp = self.p.groups[g]
        any_handled = False
        handled_pin: dict[int, bool] = {}
        for di in grp.devices:
            h = self.device_service(di, v)
            any_handled = any_handled or h
            pin = self.p.devices[di].pin
            if pin >= 0:
                handled_pin[pin] = handled_pin.get(pin, False) or h
        if not any_handled:
            self.stats.spurious[0] += 1
        for pin in sorted(handled_pin):
            self.mit_handler_done(v, pin, handled_pin[pin])
        self.advance(v, self.t)

    def guest_eoi(self, v: int) -> None:
        """The handler writes the LAPIC EOI register."""
        self.stats.eoi_count[0] += 1
        t = self.t
        if self.p.bare:
            g = self.lapic_eoi(v)
            if g >= 0:
                self.emit("irqlab_eoi", f"cpu {v} vector {self.vec(g)}")
                if self.tmr[v] >> g & 1:
                    self.eoi_broadcast(self.vec(g))
            self.advance(v, t + self.cost("eoi"))
            return
        rip = P.RIP_L1_EOI
        if self.p.apicv:
            g = self.high(self.isr[v]) if self.isr[v] else -1
            if g >= 0 and self.eoi_bits[v] >> g & 1:
                self.lapic_eoi(v)
                self.exit(v, "EOI_INDUCED", rip, self.vec(g))
                self.eoi_vec[v] = g
                self.switch(v, L0)
                self.at(v, P.EOI_L0, t + self.cost("vmexit") + self.cost("eoi"))
            else:
                self.lapic_eoi(v)
                if g >= 0:
                    self.eoi_unseen(v, g)
                self.advance(v, t)
            return
        reason, qual = P.eoi_exit(self.p.x2apic)
        self.exit(v, reason, rip, qual)
        self.eoi_vec[v] = -2
        self.switch(v, L0)
        self.at(v, P.EOI_L0, t + self.cost("vmexit") + self.cost("eoi"))

    def ph_eoi_l0(self, v: int) -> None:
        """L0 emulates the EOI; a level vector's EOI goes on to the IOAPIC."""
        g = self.eoi_vec[v]
        if g == -2:
            g = self.lapic_eoi(v)
            self.l2_eoi_svi(v, g)
        broadcast = False
        if g >= 0:
            self.emit("kvm_eoi", f"apicid {v} vector {self.vec(g)}")
            self.timer_eoi(g)
            level = bool(self.tmr[v] >> g & 1)
            grp = self.p.groups[g]
            honoured = grp.suppress and (self.p.suppress_mode == "on" or not self.p.split)
            broadcast = level and grp.delivery == "ioapic" and not honoured
        self.eoi_vec[v] = g
        if broadcast and self.p.split:
            self.stats.uexits[0, UEXIT_INDEX["KVM_EXIT_IOAPIC_EOI"]] += 1
            self.emit("kvm_userspace_exit", "reason KVM_EXIT_IOAPIC_EOI (26)")
            self.switch(v, USER)
            self.at(v, P.EOI_USER, self.t + self.cost("userspace_exit") // 2)
        elif broadcast:
            self.eoi_broadcast(self.vec(g))
            self.eoi_return(v, L0, self.cost("ioapic"))
        else:
            self.eoi_return(v, L0, 0)

    def eoi_return(self, v: int, mode: int, extra: int) -> None:
        """Back from an EOI exit after ``extra`` more time in ``mode`` (L0 or userspace): into
        L1's handler, or after an EOI L2 wrote (tpr_reference) on to L0's nested-event check."""
        if self.l2_eoi[v]:
            self.l2_eoi_back(v, extra)
        else:
            self.advance(v, self.enter(v, L1, [(mode, extra)]))

    def ph_eoi_user(self, v: int) -> None:
        """QEMU: ioapic_eoi_broadcast, then back to KVM and into the guest."""
        self.eoi_broadcast(self.vec(self.eoi_vec[v]))
        rest = self.cost("userspace_exit") - self.cost("userspace_exit") // 2
        self.eoi_return(v, USER, self.cost("ioapic") + rest)

    def guest_mmio(self, v: int, action: str) -> None:
        """The handler writes an IOAPIC register (EOI register or redirection entry): each
        access of :data:`~irqlab.engine.phases.MMIO_ACCESSES` is an MMIO exit."""
        t = self.t
        self.mmio_action[v] = action
        n, _ = P.MMIO_ACCESSES[action]
        if self.p.bare:
            self.ioapic_write(v, action)
            self.advance(v, t + n * self.cost("mmio"))
            return
        self.mmio_step[v] = 0
        self.mmio_exit(v)

    def mmio_exit(self, v: int) -> None:
        self.exit(v, "EPT_MISCONFIG", P.RIP_L1_MMIO, 0)
        self.switch(v, L0)
        self.at(v, P.MMIO_L0, self.t + self.cost("vmexit") + self.cost("mmio"))

    def mmio_access(self, v: int) -> None:
        """The IOAPIC side of the current access: only the acting one changes state."""
        action = self.mmio_action[v]
        if self.mmio_step[v] == P.MMIO_ACCESSES[action][1]:
            self.ioapic_write(v, action)

    def mmio_next(self, v: int, start: int) -> None:
        """Back in the guest at ``start``: the next access, or the handler's next step."""
        self.mmio_step[v] += 1
        if self.mmio_step[v] < P.MMIO_ACCESSES[self.mmio_action[v]][0]:
            self.at(v, P.MMIO_NEXT, start)
        else:
            self.advance(v, start)

    def ph_mmio_next(self, v: int) -> None:
        self.mmio_exit(v)

    def ioapic_write(self, v: int, action: str) -> None:
        g = self.grp[v]
        grp = self.p.groups[g]
        if action == "IOAPIC_EOI":
            if self.p.split or self.p.bare:
                self.emit("irqlab_ioapic_eoi", f"vector {grp.vector}")
                self.eoi_broadcast(grp.vector)
            else:  # KVM's IOAPIC is version 0x11: ioapic_mmio_write ignores offset 0x40
                self.emit("irqlab_ioapic_eoi", f"vector {grp.vector} ignored")
        else:
            for pin in grp.pins:
                self.redirect_write(pin, action == "MASK")

    def ph_mmio_l0(self, v: int) -> None:
        if self.p.split:
            self.stats.uexits[0, UEXIT_INDEX["KVM_EXIT_MMIO"]] += 1
            self.emit("kvm_userspace_exit", "reason KVM_EXIT_MMIO (6)")
            self.switch(v, USER)
            self.at(v, P.MMIO_USER, self.t + self.cost("userspace_exit") // 2)
        else:
            self.mmio_access(v)
            start = self.enter(v, L1, [(L0, self.cost("ioapic"))])
            self.mmio_next(v, start)

    def ph_mmio_user(self, v: int) -> None:
        self.mmio_access(v)
        rest = self.cost("userspace_exit") - self.cost("userspace_exit") // 2
        start = self.enter(v, L1, [(USER, self.cost("ioapic") + rest)])
        self.mmio_next(v, start)

    def handler_return(self, v: int) -> None:
        """End of the handler: VMRESUME (nested L1) or iret."""
        g = self.grp[v]
        if self.p.nested:
            self.vmresume(v)
            return
        if self.p.bare:
            grp = self.p.groups[g]
            irq = grp.pins[0] if grp.pins else grp.vector
            self.emit("irq_handler_exit", f"irq={irq} ret=handled")
        self.grp[v] = -1
        if self.deliverable(v):
            if self.p.bare or self.p.apicv:
                self.at(v, P.TAKE, self.t)
            else:
                self.exit(v, "INTERRUPT_WINDOW", P.RIP_L1_IRET)
                self.switch(v, L0)
                self.at(v, P.L0_INJECT, self.t + self.cost("vmexit"))
        else:
            self.start_run(v, self.t)

    def vmresume(self, v: int) -> None:
        """L1 executes VMRESUME; a KVM-like L1 first takes its pending interrupts."""
        if self.p.l1_irq_window and self.l1_deliverable(v):
            self.l1_take(v)
            return
        self.grp[v] = -1
        self.exit(v, "VMRESUME", P.RIP_L1_VMRESUME)
        self.switch(v, L0)
        self.at(v, P.VMRESUME_L0, self.t + self.cost("vmexit") + self.cost("nested_entry"))

    def ph_vmresume_l0(self, v: int) -> None:
        """L0 enters L2; with an interrupt pending for L1 it asks for an immediate exit."""
        if self.vmresume_pending(v):
            self.stats.immediate[0] += 1
            amd = self.p.vendor == "amd"  # SVM: a self-IPI, no preemption timer (mech_reference)
            timer = self.cost("self_ipi") if amd else self.mit_immediate(v)
            start = self.enter(v, L2)
            self.pt_armed[v] = True
            self.pt_deadline[v] = start + max(timer, 0)
        else:
            start = self.enter(v, L2)
        self.start_run(v, start)

    def ph_reflect(self, v: int) -> None:
        """L0 reflects L2's completion exit to L1, which continues the waiting handler."""
        g = self.grp[v]
        reason = P.eoi_exit(self.p.x2apic)[0]
        self.emit("kvm_nested_vmexit_inject", f"reason {reason} info1 0 info2 0 int_info 0 int_info_err 0")
        start = self.enter(v, L1, [(L0, self.cost("nested_exit"))])
        self.waiting[g] = False
        self.pc[v] = self.wait_pc[g]
        self.schedule_step(v, start)

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
