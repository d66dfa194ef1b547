"""Issue-12 mechanisms in the lockstep executor, rule for rule as
:mod:`irqlab.engine.kernel_mech` (docs/model.md states the rules);
a mixin of :class:`~irqlab.engine.lockstep.Lockstep`. Shapes: ``lanes`` int64[n].
"""

from __future__ import annotations

import numpy as np

from irqlab.engine.lockstep_base import ACT0 as ACT_BASE  # the phase of handler action a is ACT_BASE + a

from irqlab.engine.idle import NAMES as IDLE_NAMES
from irqlab.engine.kernel_ids import ZT_DEPTH, ZT_EVENTS, ZT_HIST
from irqlab.plugins.api import NEVER

RESAMPLE_SOURCE = 1  # KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID (include/linux/kvm_host.h)


def describe_cycle(hist: list[tuple[str, int]]) -> tuple[int, str]:
    """The shortest period of the event names in ``hist`` [(name, records after it)]
    (half of it if none repeats): (records per turn, "name -> name ...")."""
    names = [n for n, _ in hist]
    p = next((k for k in range(1, len(names) // 2) if names[-k:] == names[-2 * k:-k]), len(names) // 2 - 1)
    return hist[-1][1] - hist[-1 - p][1], " -> ".join(names[-p:])


I64 = np.int64


class LockstepMechanisms:
    """State: host slots ``T[c_host + k]``, ``host_masked`` bool[L, D], ``rs_up`` bool[L, NP]."""

    def mech_init(self) -> None:
        pr = self.p
        self.host_slot = {di: k for k, di in enumerate(pr.vfio_devices)}
        self.host_masked = np.zeros((self.L, len(pr.devices)), bool)
        self.rs_up = np.zeros(self.p_irr.shape, bool)
        self.pin_vfio = {pin: [di for di in pr.vfio_devices if pr.devices[di].pin == pin]
                         for pin in self.used_pins}
        self.zt_depth = 0  # nesting of lazy EOI updates in the current call chain
        self.zt_since = np.zeros(self.L, I64)  # [L] records since the innermost turn began
        self.zt_log: dict[int, list[str]] = {}  # traced lane -> records while zt_depth > 0
        self.zt_turn: dict[int, int] = {}  # traced lane -> where its innermost turn began
        self.zt_last_t = np.full(self.L, -1, I64)  # [L] the instant of the lane's last event
        self.zt_same = np.zeros(self.L, I64)  # [L] events before this one at that instant
        self.zt_hist: dict[int, list[tuple[str, int]]] = {}  # lane -> its last events there

    def vfio_rise(self, lanes, di: int) -> None:
        lanes = lanes[~self.host_masked[lanes, di]]
        if not len(lanes):
            return
        self.host_masked[lanes, di] = True
        self.emit(lanes, "irqlab_vfio_intx", "dev {} masked", self.p.devices[di].name)
        col = self.c_host + self.host_slot[di]
        self.set_other(col, lanes, np.minimum(self.T[col][lanes], self.now[lanes] + self.c["vfio"][lanes]))

    def host_event(self, lanes, k: int) -> None:
        self.set_other(self.c_host + k, lanes, NEVER)
        pin = self.p.devices[self.p.vfio_devices[k]].pin
        col = self.pk[pin]
        up = lanes[~self.rs_up[lanes, col]]
        self.rs_up[up, col] = True
        self.p_line[up, col] += 1
        self.kvm_set_irq(lanes, pin, 1, RESAMPLE_SOURCE)

    def kvm_set_irq(self, lanes, pin: int, level: int, source: int) -> None:
        self.emit(lanes, "kvm_set_irq", "gsi {} level {} source {}", pin, level, source)
        high = self.p_line[lanes, self.pk[pin]] > 0
        if high.any():
            self.line_effect(lanes[high], pin, 1)
        if (~high).any():
            self.line_effect(lanes[~high], pin, 0)

    def resampler_ack(self, lanes, pin: int) -> None:
        if not self.pin_vfio.get(pin) or not len(lanes):
            return
        col = self.pk[pin]
        self.emit(lanes, "kvm_ack_irq", "irqchip IOAPIC pin {}", pin)
        up = lanes[self.rs_up[lanes, col]]
        self.rs_up[up, col] = False
        self.p_line[up, col] -= 1
        self.kvm_set_irq(lanes, pin, 0, RESAMPLE_SOURCE)
        self.vfio_unmask(lanes, pin)

    def vfio_unmask(self, lanes, pin: int) -> None:
        for di in self.pin_vfio[pin]:
            sel = lanes[self.host_masked[lanes, di]]
            if not len(sel):
                continue
            still = self.asserted[sel, di]
            self.emit(sel, "irqlab_vfio_unmask", "dev {} line {}", self.p.devices[di].name, still.astype(I64))
            self.host_masked[sel, di] = False
            if still.any():
                self.vfio_rise(sel[still], di)

    def unmask_resample(self, lanes, pin: int):
        """Returns the lanes where KVM's fef8f2b90edb rule did not apply (to be serviced)."""
        if not (self.p.resample_on_unmask and self.pin_vfio.get(pin)):
            return lanes
        self.emit(lanes, "irqlab_resample", "pin {}", pin)
        self.p_irr[lanes, self.pk[pin]] = False
        self.vfio_unmask(lanes, pin)
        return lanes[:0]

    # ------------------------------------------------------------------ lazy EOI, zero-time cycles

    def lazy_eoi(self, lanes, pin: int) -> None:
        if not (self.p.lazy_eoi_level and self.p.pin_level[pin]):
            return
        lanes = lanes[~self.stats.zt_loop[lanes]]
        g = self.p.pin_group[pin]
        grp = self.p.groups[g]
        f = lanes * self.V + grp.dest
        lanes = lanes[((self.irr[f] | self.isr[f]) & I64(1 << g)) == 0]
        if not len(lanes):
            return
        if self.zt_depth >= ZT_DEPTH:
            self.zero_time_loop(lanes)
            return
        self.zt_depth += 1
        self.emit(lanes, "irqlab_lazy_eoi", "pin {} vec {}", pin, grp.vector)
        self.zt_since[lanes] = 1
        for lane in lanes[self.traced[lanes]]:
            self.zt_turn[int(lane)] = len(self.zt_log[int(lane)]) - 1
        self.eoi_one(lanes, pin)
        self.zt_depth -= 1
        if not self.zt_depth:
            self.zt_log.clear()

    def zero_time_loop(self, lanes) -> None:
        self.stats.zt_loop[lanes] = True
        n = self.zt_since[lanes].copy()
        self.stats.zt_cycle[lanes] = n
        text = np.array([" -> ".join(self.zt_log.get(int(ln), [])[self.zt_turn.get(int(ln), 0):])
                         if self.traced[ln] else "" for ln in lanes], dtype=object)
        self.emit(lanes, "irqlab_zero_time_loop", "{} records per turn, {} turns nested: {}", n, ZT_DEPTH, text)

    def same_instant(self, lanes):
        """After a step, for the lanes that ran an event (one each): the reference's
        ``same_instant``; returns bool[n], the lanes whose zero-time loop was reported."""
        t = self.now[lanes]
        same = t == self.zt_last_t[lanes]
        self.zt_last_t[lanes] = t
        n = (self.zt_same[lanes] + 1) * same
        self.zt_same[lanes] = n
        hit = np.zeros(len(lanes), bool)
        if self.zt_hist and not same.all():
            for lane in lanes[~same]:
                self.zt_hist.pop(int(lane), None)
        if not len(n) or n.max() <= ZT_EVENTS - ZT_HIST:
            return hit
        for k in np.flatnonzero(n > ZT_EVENTS - ZT_HIST):
            lane = int(lanes[k])
            hist = self.zt_hist.setdefault(lane, [])
            hist.append((self.event_name(lane, int(self.code[lane])), int(self.stats.events[lane])))
            if n[k] >= ZT_EVENTS:
                n_rec, text = describe_cycle(self.zt_hist.pop(lane))
                self.stats.zt_loop[lane] = True
                self.stats.zt_cycle[lane] = n_rec
                self.emit(lanes[k:k + 1], "irqlab_zero_time_loop",
                          "{} records per turn, {} events at one instant: {}", n_rec, ZT_EVENTS, text)
                hit[k] = True
        return hit

    def event_name(self, lane: int, c: int) -> str:
        """The reference's ``event_name`` for event code ``c`` of ``lane``."""
        from irqlab.engine import phases as P
        from irqlab.plugins.api import ACTIONS

        if c >= self.c_vcpu:
            v = 0 if self.V == 1 else int(self.s_next[lane]) - self.c_vcpu
            ph = c - self.c_vcpu
            return f"vcpu {v} ACT {ACTIONS[ph - ACT_BASE]}" if ph >= ACT_BASE else f"vcpu {v} {P.NAMES.get(ph) or IDLE_NAMES[ph]}"
        if c == self.c_sample:
            return "sample 0"
        if c < self.c_tim:
            return f"arrival {self.p.devices[c - self.c_arr].name}"
        if c < self.c_host:
            return f"timer {c - self.c_tim}"
        if c >= self.c_ts:
            return f"tslot {c - self.c_ts}"
        if c >= self.c_act:
            return f"action {c - self.c_act}"
        return f"vfio {self.p.devices[self.p.vfio_devices[c - self.c_host]].name}"
