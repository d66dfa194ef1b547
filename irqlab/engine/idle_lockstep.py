"""Idle vCPUs in the lockstep executor, rule for rule as
:mod:`irqlab.engine.kernel_idle` (docs/model.md states the rules); a mixin of
:class:`~irqlab.engine.lockstep.Lockstep`. Shapes: ``lanes`` int64[n], ``f`` the
flat vCPU rows ``lane * V + v`` int64[n], ``v`` an int or int64[n].
"""

from __future__ import annotations

import numpy as np

from irqlab.engine import idle as I
from irqlab.engine import phases as P
from irqlab.engine.lockstep_base import sub
from irqlab.engine.program import L0, L1
from irqlab.plugins.api import NEVER

I64 = np.int64


class LockstepIdle:
    """State [L*V]: ``work``, ``hpoll``, ``halt_start``, ``poll_end`` (int64 ps) and
    ``waited`` (bool), as in :mod:`irqlab.engine.kernel_idle`."""

    def idle_init(self) -> None:
        LV = self.L * self.V
        self.work = np.zeros(LV, I64)
        self.hpoll = np.zeros(LV, I64)
        self.halt_start = np.zeros(LV, I64)
        self.poll_end = np.zeros(LV, I64)
        self.waited = np.zeros(LV, bool)
        if self.p.idle:
            self.phase[:] = I.HLT
            self.T[self.c_vcpu:] = 0

    def idle_phases(self) -> dict:
        return {I.HLT: self.ph_hlt, I.HALT_L0: self.ph_halt_l0, I.HALT_POLL: self.ph_halt_poll,
                I.HALT_WAKE: self.ph_halt_wake}

    def vcpu_of(self, f):
        return f % self.V if self.V > 1 else 0

    # ------------------------------------------------------------------ hooks

    def idle_run(self, lanes, f, t0) -> None:
        self.phase[f] = I.HLT
        self.tset(self.c_vcpu + self.vcpu_of(f), lanes, t0 + self.work[f])

    def idle_progress(self, lanes, f, elapsed) -> None:
        done = np.minimum(elapsed, self.work[f])
        self.work[f] -= done
        self.stats.idle[lanes, I.WORK_DONE] += done

    def idle_work(self, lanes, di: int, f=None) -> None:
        """``f``: the rows of the vCPUs whose handler serviced it (None: the destination's)."""
        d = self.p.devices[di]
        w = self.params[f"device.{d.name}.work"][lanes]
        if d.work_on >= 0:
            self.work[lanes * self.V + d.work_on] += w
        else:
            self.work[lanes * self.V + d.dest if f is None else f] += w
        self.stats.idle[lanes, I.WORK] += w
        if d.work_on >= 0 and f is not None:
            send = lanes[self.vcpu_of(f) != d.work_on]
            if len(send):
                self.stats.idle[send, I.IPIS] += 1
                self.emit(send, "kvm_apic_ipi", I.ipi_text(d.work_on))
                self.accept(send, d.work_on, self.p.ipi_group, False)

    def idle_notify(self, lanes, v: int):
        """Wake the halted vCPUs ``v`` of ``lanes``; returns the lanes where it was not halted."""
        f = lanes * self.V + v
        ph = self.phase[f]
        col = self.c_vcpu + v
        poll = ph == I.HALT_POLL
        if poll.any():
            pl, pf = lanes[poll], f[poll]
            self.poll_end[pf] = self.now[pl]
            self.phase[pf] = I.HALT_WAKE
            self.tset(col, pl, self.now[pl])
        block = ph == I.HALT_BLOCK
        if block.any():
            bl, bf = lanes[block], f[block]
            self.emit(bl, "irqlab_wake", "vcpu {}", v)
            self.phase[bf] = I.HALT_WAKE
            self.tset(col, bl, self.now[bl] + self.params["machine.wakeup"][bl])
        halted = poll | block | (ph == I.HALT_L0) | (ph == I.HALT_WAKE)
        if halted.any():
            hf = f[halted]
            self.stall_start[hf] = np.where(self.stall_start[hf] == NEVER, self.now[lanes[halted]],
                                            self.stall_start[hf])
        return lanes[~halted]

    # ------------------------------------------------------------------ phases

    def ph_hlt(self, lanes, f, v):
        t = self.now[lanes]
        self.end_run(lanes, f, t)
        self.close_stall(f, t)
        self.stats.idle[lanes, I.HLT_EXITS] += 1
        self.emit(lanes, "kvm_exit", "reason HLT rip 0x{:x} info 0 0", self.rip_of(f, P.RIP_GUEST_BASE))
        self.exit_to(lanes, f, L1, L0)
        self.at(lanes, v, I.HALT_L0, t + self.c["vmexit"][lanes])

    def ph_halt_l0(self, lanes, f, v):
        t = self.now[lanes]
        self.hpoll[f] = np.minimum(self.hpoll[f], self.params["machine.halt_poll"][lanes])
        self.halt_start[f] = t
        self.poll_end[f] = t
        self.waited[f] = False
        ready = self.deliverable(f)
        poll = ~ready & (self.hpoll[f] > 0)
        block = ~ready & ~poll
        if ready.any():
            self.at(lanes[ready], sub(v, ready), I.HALT_WAKE, t[ready])
        if poll.any():
            self.at(lanes[poll], sub(v, poll), I.HALT_POLL, t[poll] + self.hpoll[f[poll]])
        if block.any():
            self.halt_block(lanes[block], f[block], sub(v, block))

    def ph_halt_poll(self, lanes, f, v):
        self.poll_end[f] = self.now[lanes]
        self.halt_block(lanes, f, v)

    def halt_block(self, lanes, f, v) -> None:
        self.waited[f] = True
        self.at(lanes, v, I.HALT_BLOCK, NEVER)

    def ph_halt_wake(self, lanes, f, v):
        t = self.now[lanes]
        s = self.stats.idle
        halt = t - self.halt_start[f]
        old = self.hpoll[f]
        waited = self.waited[f]
        polled = old > 0
        s[lanes[polled], I.POLL_PS] += (self.poll_end[f] - self.halt_start[f])[polled]
        s[lanes[polled & ~waited], I.POLL_OK] += 1
        s[lanes[waited], I.WAIT_PS] += (t - self.poll_end[f])[waited]
        pr = self.params
        new, decision = I.halt_poll_next(old, halt, pr["machine.halt_poll"][lanes], pr["machine.halt_poll_grow"][lanes],
                                         pr["machine.halt_poll_grow_start"][lanes],
                                         pr["machine.halt_poll_shrink"][lanes])
        self.hpoll[f] = new
        changed = (decision == I.GROW) | (decision == I.SHRINK)
        if changed.any():
            cl, cf = lanes[changed], f[changed]
            self.emit(cl, "kvm_halt_poll_ns", "vcpu {}: halt_poll_ns {} ({} {})", self.vcpu_of(cf), new[changed] // 1000,
                      np.where(decision[changed] == I.GROW, "grow", "shrink"), old[changed] // 1000)
        self.emit(lanes, "kvm_vcpu_wakeup", "{} time {} ns, polling valid", np.where(waited, "wait", "poll"),
                  halt // 1000)
        if self.p.apicv:
            self.at(lanes, v, P.TAKE, self.enter(lanes, f, L1, L0))
        else:
            self.at(lanes, v, P.L0_INJECT, t)
