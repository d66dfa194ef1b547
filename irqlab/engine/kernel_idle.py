"""The per-lane kernel, idle vCPUs: work, HLT, halt-polling, wake-ups, reschedule IPIs.

The same rules as :mod:`irqlab.engine.idle_lockstep` (same names, same order of
records); :mod:`irqlab.engine.idle` and docs/model.md, "Idle vCPUs", state the rules.

Layout (offsets and the ``IP_*``, ``IS_*`` constants in :mod:`irqlab.engine.kernel_ids`,
shared with the packing, ``kernelprog._pack_idle``; both offsets -1 when the program has no
idle vCPUs, :func:`idle_on`):

* ``s[O_IDLE_P]``, the program: the parameter indices ``IP_HALT_POLL .. IP_WAKEUP``,
  ``IP_IPI_GROUP`` (the reschedule IPI's vector group, -1: none), then per device ``d`` at ``IP_DEV + 2 * d``: the index of its
  ``work`` parameter and its ``work_on`` vCPU (-1: the servicing one).
* ``s[O_IDLE]``, the state: the ``Stats.idle`` counters (``idle.WORK`` ..
  ``idle.IPIS``, ``idle.N_COUNTERS``), then per vCPU ``v`` at ``N_IDLE + IS_N * v``:
  ``IS_WORK`` (ps of work available, not yet run), ``IS_HPOLL`` (``vcpu->halt_poll_ns``),
  ``IS_HALT_START``/``IS_POLL_END`` (``kvm_vcpu_halt``'s ``start`` and ``poll_end``),
  ``IS_WAITED`` (the thread blocked).

This module uses only :mod:`irqlab.engine.kernel_base` (which reaches it through the
module, for ``accept``). The hooks of the other kernel modules: ``kernel_base.accept``
calls :func:`idle_notify`, ``kernel_ioapic`` calls :func:`idle_run` (``start_run``),
:func:`idle_progress` (``end_run``) and :func:`idle_work` (``device_service``), ``kernel``
calls :func:`idle_init` (``lane_init``), :func:`idle_event` (the phases ``HLT`` ..
``HALT_WAKE``) and :func:`idle_collect` (``collect``).
"""

from __future__ import annotations

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import accept, at, deliverable, emit, enter, inner, switch
from irqlab.engine.idle import (  # noqa: F401  the Stats.idle counters, halt_poll_next's decisions
    GROW, HLT_EXITS, IPIS, KEEP, N_COUNTERS as N_IDLE, POLL_OK, POLL_PS, SHRINK, WAIT_PS, WORK, WORK_DONE, ZERO,
)


@inner
def idle_on(s):
    """Whether the program has idle vCPUs (``machine { idle on }``)."""
    return s[O_IDLE_P] >= 0


@inner
def vs(s, v, k):
    """The index in ``s`` of vCPU ``v``'s idle state ``k`` (``IS_*``)."""
    return s[O_IDLE] + N_IDLE + IS_N * v + k


@inner
def param(s, k):
    """The value of the idle parameter ``k`` (``IP_HALT_POLL`` .. ``IP_WAKEUP``)."""
    return s[s[O_PI] + s[s[O_IDLE_P] + k]]


@inner
def idle_init(s):
    """``idle_init``: nothing to do yet, every vCPU halts at once (the state is zeroed)."""
    for v in range(s[CFG + C_V]):
        at(s, v, HLT, 0)


@inner
def idle_collect(s, out, i, col):
    """The counters of lane ``i`` into ``out[i, col:col + N_IDLE]`` (nothing without idle);
    the next free column."""
    if not idle_on(s):
        return col
    for k in range(N_IDLE):
        out[i, col + k] = s[s[O_IDLE] + k]
    return col + N_IDLE


# ---------------------------------------------------------------- hooks


@inner
def idle_run(s, v, t0):
    """``start_run`` of an idle guest: run the work there is, then HLT."""
    at(s, v, HLT, t0 + s[vs(s, v, IS_WORK)])


@inner
def idle_progress(s, v, elapsed):
    """``end_run``: ``elapsed`` ps of guest code ran (work first)."""
    done = min(elapsed, s[vs(s, v, IS_WORK)])
    s[vs(s, v, IS_WORK)] -= done
    s[s[O_IDLE] + WORK_DONE] += done


@inner
def idle_work(s, tb, d, v):
    """Device ``d`` was serviced with work by vCPU ``v``'s handler (-1: elsewhere, then the
    device's destination): that vCPU has ``work`` more."""
    p = s[O_IDLE_P] + IP_DEV + 2 * d
    w = s[s[O_PI] + s[p]]
    work_on = s[p + 1]
    runner = work_on if work_on >= 0 else v if v >= 0 else s[s[O_PDEV] + d * N_DEV + D_DEST]
    s[vs(s, runner, IS_WORK)] += w
    s[s[O_IDLE] + WORK] += w
    if work_on >= 0 and v >= 0 and work_on != v:
        send_ipi(s, tb, runner)


@inner
def send_ipi(s, tb, target):
    """The guest wakes the task that runs the work on ``target``: a reschedule IPI
    (``smp_send_reschedule``; KVM ``kvm_apic_send_ipi``). **Choice:** no exit (IPI
    virtualization)."""
    s[s[O_IDLE] + IPIS] += 1
    emit(s, tb, E_APIC_IPI, target, 0, 0, 0)
    accept(s, tb, target, s[s[O_IDLE_P] + IP_IPI_GROUP], 0)


@inner
def idle_notify(s, tb, v):
    """An interrupt is pending at ``v``; returns whether ``v`` is halted (then it is woken:
    at once while polling, ``machine.wakeup`` later when blocked)."""
    ph = s[s[O_PHASE] + v]
    t = s[S_T]
    if ph == HALT_POLL:
        s[vs(s, v, IS_POLL_END)] = t
        at(s, v, HALT_WAKE, t)
    elif ph == HALT_BLOCK:
        emit(s, tb, E_WAKE, v, 0, 0, 0)
        at(s, v, HALT_WAKE, t + param(s, IP_WAKEUP))
    elif ph != HALT_L0 and ph != HALT_WAKE:
        return False
    if s[s[O_STALL_START] + v] == NEVER:
        s[s[O_STALL_START] + v] = t  # work is waiting for the vCPU again
    return True


# ---------------------------------------------------------------- phases


@inner
def idle_event(s, tb, v, ph):
    """The idle phase ``ph`` of vCPU ``v`` (``vcpu_event``'s branch for ``HLT`` ..
    ``HALT_WAKE``, after the run's end at ``HLT``; ``HALT_BLOCK`` has no event)."""
    if ph == HLT:
        ph_hlt(s, tb, v)
    elif ph == HALT_L0:
        ph_halt_l0(s, v)
    elif ph == HALT_POLL:
        ph_halt_poll(s, v)
    else:
        ph_halt_wake(s, tb, v)


@inner
def ph_hlt(s, tb, v):
    """The guest has no work left and executes HLT (an exit; not in the exit counts). Its
    run has ended, not as a stall (``vcpu_event``: ``end_run`` and ``close_stall`` are in
    ``kernel_ioapic``, which calls this module)."""
    t = s[S_T]
    s[s[O_IDLE] + HLT_EXITS] += 1
    emit(s, tb, E_HLT_EXIT, RIP_GUEST_BASE + (s[s[O_RIP] + v] // 1000) * 4, 0, 0, 0)
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)
    at(s, v, HALT_L0, t + s[s[O_PI] + s[CFG + C_P_VMEXIT]])


@inner
def ph_halt_l0(s, v):
    """``kvm_vcpu_halt``: poll, or block; an interrupt already pending ends it now."""
    t = s[S_T]
    hp = min(s[vs(s, v, IS_HPOLL)], param(s, IP_HALT_POLL))
    s[vs(s, v, IS_HPOLL)] = hp
    s[vs(s, v, IS_HALT_START)] = t
    s[vs(s, v, IS_POLL_END)] = t
    s[vs(s, v, IS_WAITED)] = 0
    if deliverable(s, v):
        at(s, v, HALT_WAKE, t)
    elif hp > 0:
        at(s, v, HALT_POLL, t + hp)
    else:
        halt_block(s, v)


@inner
def ph_halt_poll(s, v):
    """Polling found nothing: the thread blocks (``kvm_vcpu_block``)."""
    s[vs(s, v, IS_POLL_END)] = s[S_T]
    halt_block(s, v)


@inner
def halt_block(s, v):
    s[vs(s, v, IS_WAITED)] = 1
    at(s, v, HALT_BLOCK, NEVER)


@inner
def halt_poll_next(hp, halt, max_hp, grow, grow_start, shrink):
    """:func:`irqlab.engine.idle.halt_poll_next` of one vCPU: ``(new hp, decision)``."""
    grown = hp if grow == 0 else max(hp * grow, grow_start)
    shrunk = 0 if shrink == 0 else hp // max(shrink, 1)
    if shrunk < grow_start:
        shrunk = 0
    do_shrink = halt > hp and hp > 0 and halt > max_hp
    do_grow = halt > hp and not do_shrink and hp < max_hp and halt < max_hp
    if max_hp == 0:
        return 0, ZERO
    if do_shrink:
        return shrunk, SHRINK
    if do_grow:
        return grown, GROW
    return hp, KEEP


@inner
def ph_halt_wake(s, tb, v):
    """The vCPU thread runs again: book the halt, update ``halt_poll_ns``, re-enter."""
    t = s[S_T]
    c = s[O_IDLE]
    halt_start, poll_end = s[vs(s, v, IS_HALT_START)], s[vs(s, v, IS_POLL_END)]
    waited = s[vs(s, v, IS_WAITED)]
    halt = t - halt_start
    old = s[vs(s, v, IS_HPOLL)]
    if old > 0:
        s[c + POLL_PS] += poll_end - halt_start
        s[c + POLL_OK] += 0 if waited else 1
    if waited:
        s[c + WAIT_PS] += t - poll_end
    new, decision = halt_poll_next(old, halt, param(s, IP_HALT_POLL), param(s, IP_GROW),
                                   param(s, IP_GROW_START), param(s, IP_SHRINK))
    s[vs(s, v, IS_HPOLL)] = new
    if decision == GROW or decision == SHRINK:
        emit(s, tb, E_HALT_POLL_NS, v, new, 1 if decision == GROW else 0, old)
    emit(s, tb, E_VCPU_WAKEUP, halt, waited, 0, 0)
    if s[CFG + C_APICV]:
        at(s, v, TAKE, enter(s, tb, v, L1, 0, 0, False))
    else:
        at(s, v, L0_INJECT, t)

