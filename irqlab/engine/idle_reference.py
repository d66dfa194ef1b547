"""Idle vCPUs in the reference interpreter: a mixin of
:class:`~irqlab.engine.reference.LaneSim` (rules in :mod:`irqlab.engine.idle` and
docs/model.md, "Idle vCPUs"); :mod:`irqlab.engine.idle_lockstep` is the same for
the lockstep executor.
"""

from __future__ import annotations

from irqlab.engine import idle as I
from irqlab.engine import phases as P
from irqlab.engine.program import L0, L1
from irqlab.plugins.api import NEVER


class RefIdle:
    """State per vCPU: ``work`` (ps of guest work available, not yet run), ``hpoll``
    (``vcpu->halt_poll_ns``, ps), ``halt_start``/``poll_end`` (``kvm_vcpu_halt``'s
    ``start`` and ``poll_end``), ``waited`` (the thread blocked)."""

    def idle_init(self) -> None:
        V = self.p.n_vcpus
        self.work = [0] * V
        self.hpoll = [0] * V
        self.halt_start = [0] * V
        self.poll_end = [0] * V
        self.waited = [False] * V
        if self.p.idle:
            for v in range(V):  # nothing to do yet: every vCPU halts at once
                self.phase[v], self.vt[v] = I.HLT, 0

    def idle_phases(self) -> dict:
        return {I.HLT: self.ph_hlt, I.HALT_L0: self.ph_halt_l0, I.HALT_POLL: self.ph_halt_poll,
                I.HALT_WAKE: self.ph_halt_wake}

    # ------------------------------------------------------------------ hooks

    def idle_run(self, v: int, t0: int) -> None:
        """``start_run`` of an idle guest: run the work there is, then HLT."""
        self.phase[v], self.vt[v] = I.HLT, t0 + self.work[v]

    def idle_progress(self, v: int, elapsed: int) -> None:
        """``end_run``: ``elapsed`` ps of guest code ran (work first)."""
        done = min(elapsed, self.work[v])
        self.work[v] -= done
        self.stats.idle[0, I.WORK_DONE] += done

    def idle_work(self, di: int, v: int) -> None:
        """Device ``di`` was serviced with work by vCPU ``v``'s handler (-1: elsewhere, then
        the device's destination): that vCPU has ``work`` more."""
        d = self.p.devices[di]
        w = self.v[f"device.{d.name}.work"]
        runner = d.work_on if d.work_on >= 0 else v if v >= 0 else d.dest
        self.work[runner] += w
        self.stats.idle[0, I.WORK] += w
        if d.work_on >= 0 and v >= 0 and d.work_on != v:
            self.send_ipi(runner)

    def send_ipi(self, target: int) -> None:
        """The guest wakes the task that runs the work on ``target``: a reschedule IPI
        (``smp_send_reschedule``; KVM ``kvm_apic_send_ipi`` -> ``kvm_irq_delivery_to_apic``).
        **Choice:** the ICR write costs no exit (IPI virtualization)."""
        self.stats.idle[0, I.IPIS] += 1
        self.emit("kvm_apic_ipi", I.ipi_text(target))
        self.accept(target, self.p.ipi_group, False)

    def idle_notify(self, v: int) -> bool:
        """An interrupt is pending at ``v``; returns whether ``v`` is halted (then it
        is woken: at once while polling, ``machine.wakeup`` later when blocked)."""
        ph = self.phase[v]
        if ph == I.HALT_POLL:
            self.poll_end[v] = self.t
            self.phase[v], self.vt[v] = I.HALT_WAKE, self.t
        elif ph == I.HALT_BLOCK:
            self.emit("irqlab_wake", f"vcpu {v}")
            self.phase[v], self.vt[v] = I.HALT_WAKE, self.t + self.v["machine.wakeup"]
        elif ph not in (I.HALT_L0, I.HALT_WAKE):
            return False
        if self.stall_start[v] == NEVER:
            self.stall_start[v] = self.t  # work is waiting for the vCPU again
        return True

    # ------------------------------------------------------------------ phases

    def ph_hlt(self, v: int) -> None:
        """The guest has no work left and executes HLT (an exit)."""
        t = self.t
        self.end_run(v, t)
        self.close_stall(v, t)  # no work: not a stall
        self.stats.idle[0, I.HLT_EXITS] += 1  # not in Stats.exits: see docs/model.md, "Idle vCPUs"
        self.emit("kvm_exit", f"reason HLT rip 0x{P.RIP_GUEST_BASE + (self.rip[v] // 1000) * 4:x} info 0 0")
        self.switch(v, L0)
        self.at(v, I.HALT_L0, t + self.cost("vmexit"))

    def ph_halt_l0(self, v: int) -> None:
        """``kvm_vcpu_halt``: poll, or block; an interrupt already pending ends it now."""
        t = self.t
        self.hpoll[v] = min(self.hpoll[v], self.v["machine.halt_poll"])
        self.halt_start[v] = self.poll_end[v] = t
        self.waited[v] = False
        if self.deliverable(v):
            self.phase[v], self.vt[v] = I.HALT_WAKE, t
        elif self.hpoll[v] > 0:
            self.phase[v], self.vt[v] = I.HALT_POLL, t + self.hpoll[v]
        else:
            self.halt_block(v)

    def ph_halt_poll(self, v: int) -> None:
        """Polling found nothing: the thread blocks (``kvm_vcpu_block``)."""
        self.poll_end[v] = self.t
        self.halt_block(v)

    def halt_block(self, v: int) -> None:
        self.waited[v] = True
        self.phase[v], self.vt[v] = I.HALT_BLOCK, NEVER

    def ph_halt_wake(self, v: int) -> None:
        """The vCPU thread runs again: book the halt, update ``halt_poll_ns``, re-enter."""
        t = self.t
        s = self.stats.idle[0]
        halt = t - self.halt_start[v]
        old = self.hpoll[v]
        if old > 0:
            s[I.POLL_PS] += self.poll_end[v] - self.halt_start[v]
            s[I.POLL_OK] += not self.waited[v]
        if self.waited[v]:
            s[I.WAIT_PS] += t - self.poll_end[v]
        new, decision = I.halt_poll_next(old, halt, self.v["machine.halt_poll"], self.v["machine.halt_poll_grow"],
                                         self.v["machine.halt_poll_grow_start"],
                                         self.v["machine.halt_poll_shrink"])
        self.hpoll[v] = int(new)
        if int(decision) in (I.GROW, I.SHRINK):
            self.emit("kvm_halt_poll_ns", I.poll_text(v, self.hpoll[v], int(decision) == I.GROW, old))
        self.emit("kvm_vcpu_wakeup", I.wakeup_text(halt, self.waited[v]))
        if self.p.apicv:
            self.at(v, P.TAKE, self.enter(v, L1))
        else:
            self.at(v, P.L0_INJECT, t)
