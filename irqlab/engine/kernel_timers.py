"""The per-lane kernel, issue 13's mechanism 3: periodic timers that catch up on missed
ticks (KVM's PIT with reinjection, QEMU's RTC with coalesced-tick tracking, Hyper-V SynIC
stimers with a message slot) and host contention (``mitigation deschedule``).

The same rules as :mod:`irqlab.engine.timers_lockstep` (same names, same order of
records and books); docs/model.md, "Timers that catch up, and host contention", states
the rules. Hooks: the event loop (a timer device's arrival slot is its expiry; the timer
slots), ``vcpu_event``'s EOI_L0 (:func:`timer_eoi`), ``device_service``
(:func:`timer_serviced`) and the LAPIC's notify (:func:`descheduled`).

Program (``tp = s[O_TM_P]``, packed by ``kernelprog._pack_timers``; empty when the
program has neither timers nor deschedule plugins, see :func:`tm_on`): the counts
``TP_NT`` (timer devices), ``TP_NDS`` (deschedule plugins), ``TP_NRTC``; then ``D``
entries, each device's timer index (-1: not a timer); then per timer ``j`` the ``NTP``
columns ``TJ_*``
(:mod:`irqlab.engine.kernel_timers_ids`); then the RTCs' timer indices, in the order of their timer slots.
A deschedule plugin's parameters are its mitigation row's ``M_P0..M_P3`` (vcpu, start,
period, length).

State (``ts = s[O_TM]``): per timer ``j`` the ``NTS`` slots ``SJ_*`` (the reference's
``pit_pend`` ... ``rtc_eoi``); then the timer slots' next times (``tslot_t``: deschedule
plugin ``k`` at ``k``, then the RTCs' coalesced-tick timers); then per deschedule plugin
``ds_on``, ``ds_start``, ``ds_begin``; then per vCPU (when there are deschedule plugins)
``held``, ``held_rem``, ``held_mode``, ``held_run``, ``held_kick``.
"""

from __future__ import annotations

from irqlab.engine import kernel_ioapic as io
from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_timers_ids import *  # noqa: F403  the timers' layout
from irqlab.engine.kernel_base import accept, count_delivery, emit, inner, merge, notify, switch

from irqlab.engine.timers import EAGAIN, HV_UNIT, PIT_SOURCE, RTC_REINJECT_ON_ACK_COUNT


# ---------------------------------------------------------------- layout


@inner
def tm_on(s):
    """Whether the program has timers or deschedule plugins (its timers program is not
    empty: it lies right before the parameters)."""
    return s[O_TM_P] != s[O_PI]


@inner
def n_tslots(s):
    """The number of timer slots (deschedule plugins, then RTCs); 0 without timers."""
    if not tm_on(s):
        return 0
    return s[s[O_TM_P] + TP_NDS] + s[s[O_TM_P] + TP_NRTC]


@inner
def timer_of(s, d):
    """Device ``d``'s timer index, -1 if it is not a timer (or there are none)."""
    if not tm_on(s):
        return -1
    return s[s[O_TM_P] + TP_DEV + d]


@inner
def tjp(s, j):
    """Where timer ``j``'s program columns start."""
    return s[O_TM_P] + TP_DEV + s[CFG + C_D] + NTP * j


@inner
def tjs(s, j):
    """Where timer ``j``'s state slots start."""
    return s[O_TM] + NTS * j


@inner
def tslot(s, k):
    """Where timer slot ``k``'s next time is."""
    return s[O_TM] + NTS * s[s[O_TM_P] + TP_NT] + k


@inner
def dsp(s, k):
    """Where deschedule plugin ``k``'s state starts."""
    tp = s[O_TM_P]
    return s[O_TM] + NTS * s[tp + TP_NT] + s[tp + TP_NDS] + s[tp + TP_NRTC] + NDS * k


@inner
def held(s, v):
    """Where vCPU ``v``'s host-contention state starts."""
    tp = s[O_TM_P]
    return s[O_TM] + NTS * s[tp + TP_NT] + s[tp + TP_NDS] + s[tp + TP_NRTC] + NDS * s[tp + TP_NDS] + NH * v


@inner
def ds_mit(s, k):
    """Deschedule plugin ``k``'s mitigation row."""
    n = 0
    for m in range(s[CFG + C_M]):
        if s[s[O_PMIT] + m * N_MIT + M_KIND] == MIT_DESCHEDULE:
            if n == k:
                return s[O_PMIT] + m * N_MIT
            n += 1
    return -1


@inner
def ds_param(s, k, col):
    return s[s[O_PI] + s[ds_mit(s, k) + col]]


@inner
def tparam(s, j):
    """Timer ``j``'s model parameter (reinject, slew, retry)."""
    return s[s[O_PI] + s[tjp(s, j) + TJ_P]]


@inner
def timers_init(s):
    """The timers' state at the start (it is zeroed before)."""
    if not tm_on(s):
        return
    tp = s[O_TM_P]
    for j in range(s[tp + TP_NT]):
        s[tjs(s, j) + SJ_PIT_ACK] = 1  # kvm_pit_reset_reinject
        s[tjs(s, j) + SJ_ST_EXP] = NEVER
    nds = s[tp + TP_NDS]
    for k in range(nds):
        start = ds_param(s, k, M_P1)
        s[dsp(s, k) + DS_START] = start
        s[tslot(s, k)] = start
    for k in range(s[tp + TP_NRTC]):
        s[tslot(s, nds + k)] = NEVER
    if nds:
        for v in range(s[CFG + C_V]):
            s[held(s, v) + H_REM] = NEVER


# ---------------------------------------------------------------- expiry


@inner
def timer_expire(s, tb, pf, plug, d):
    """The host timer of timer device ``d`` expires (its arrival slot)."""
    j = timer_of(s, d)
    t = s[S_T]
    kind = s[tjp(s, j) + TJ_KIND]
    dest = s[s[O_PDEV] + d * N_DEV + D_DEST]
    s[S_THREAD] = KWORKER if kind == TM_PIT else (QEMU if kind == TM_RTC else dest)
    tick_raised(s, d, 1)
    io.note_arrival(s, d)
    if kind != TM_STIMER:
        if kind == TM_PIT:
            pit_expire(s, tb, pf, plug, d, j)
        else:
            rtc_expire(s, tb, pf, plug, d, j)
        s[s[O_ARR_T] + d] = max(io.arrival_next(s, pf, d, t, False), t)
    else:
        s[s[O_ARR_T] + d] = NEVER  # stimer_timer_callback: HRTIMER_NORESTART
        s[tjs(s, j) + SJ_ST_EXP] = t
        emit(s, tb, E_STIMER_CALLBACK, dest, 0, 0, 0)
        if descheduled_now(s, dest):
            s[tjs(s, j) + SJ_ST_DUE] = 1  # KVM_REQ_HV_STIMER waits for the vCPU to run
        else:
            stimer_process(s, tb, pf, plug, d, j)


@inner
def tick_raised(s, d, n):
    s[S_RAISED] += n
    s[s[O_DEV_RAISED] + d] += n


# ---------------------------------------------------------------- PIT


@inner
def pit_expire(s, tb, pf, plug, d, j):
    """``pit_timer_fn``: count a pending tick (reinject), then ``pit_do_work``."""
    if tparam(s, j):
        s[tjs(s, j) + SJ_PIT_PEND] += 1
    emit(s, tb, E_PIT_TIMER, s[tjs(s, j) + SJ_PIT_PEND], 0, 0, 0)
    pit_work(s, tb, pf, plug, d, j, True)


@inner
def pit_work(s, tb, pf, plug, d, j, fresh):
    """``pit_do_work``: with reinject, inject only if the last tick was acked."""
    if tparam(s, j):
        if not s[tjs(s, j) + SJ_PIT_ACK]:
            return
        s[tjs(s, j) + SJ_PIT_ACK] = 0
    inject_tick(s, tb, pf, plug, d, fresh)


@inner
def inject_tick(s, tb, pf, plug, d, fresh):
    """One edge on the PIT's GSI (``kvm_set_irq`` 1 then 0 from the PIT's source)."""
    pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
    s[s[O_PENDING] + d] += 1
    s[s[O_FRESH] + d] = 1 if fresh else 0
    s[S_EDGE_MERGED] = 0
    emit(s, tb, E_KVM_SET_IRQ, pin, 1, PIT_SOURCE, 0)
    io.line_effect(s, tb, pf, plug, pin, 1)
    emit(s, tb, E_KVM_SET_IRQ, pin, 0, PIT_SOURCE, 0)
    io.line_effect(s, tb, pf, plug, pin, 0)
    if s[s[O_FRESH] + d]:  # not delivered: merged into irr, or the pin is masked
        s[s[O_FRESH] + d] = 0
        if s[S_EDGE_MERGED]:
            merge(s, d)
        else:
            s[s[O_DEV_LOST] + d] += 1


@inner
def pit_ack_irq(s, tb, pf, plug, d, j):
    """``kvm_pit_ack_irq``: irq_ack = 1; a pending tick left is reinjected at once."""
    emit(s, tb, E_KVM_ACK_IRQ, s[s[O_PDEV] + d * N_DEV + D_PIN], 0, 0, 0)
    st = tjs(s, j)
    s[st + SJ_PIT_ACK] = 1
    if s[st + SJ_PIT_PEND] > 0:
        s[st + SJ_PIT_PEND] -= 1
        if s[st + SJ_PIT_PEND] > 0:
            pit_work(s, tb, pf, plug, d, j, False)


# ---------------------------------------------------------------- RTC


@inner
def rtc_expire(s, tb, pf, plug, d, j):
    """``rtc_periodic_timer`` with ``lost_tick_policy`` slew."""
    st = tjs(s, j)
    if not tparam(s, j):
        if not rtc_raise(s, tb, pf, plug, d, j, True):
            merge(s, d)  # LOST_TICK_POLICY_DISCARD: the tick is gone
        return
    if s[st + SJ_RTC_ACKS] >= RTC_REINJECT_ON_ACK_COUNT:
        s[st + SJ_RTC_ACKS] = 0
    if not rtc_raise(s, tb, pf, plug, d, j, True):
        s[st + SJ_RTC_COAL] += 1
        emit(s, tb, E_RTC_COALESCED, s[st + SJ_RTC_COAL], 0, 0, 0)
        rtc_timer_update(s, d, j)


@inner
def rtc_raise(s, tb, pf, plug, d, j, fresh):
    """``qemu_irq_raise`` of the RTC's line into KVM's IOAPIC; returns whether it was
    delivered (not coalesced: KVM's RTC EOI tracking, irr set, or the LAPIC's IRR)."""
    pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
    st = tjs(s, j)
    emit(s, tb, E_KVM_SET_IRQ, pin, 1, 0, 0)
    if s[st + SJ_RTC_EOI] or s[s[O_P_IRR] + pin]:
        return False
    dest, g = s[s[O_PDEV] + d * N_DEV + D_DEST], s[s[O_PDEV] + d * N_DEV + D_GROUP]
    s[s[O_FRESH] + d] = 1 if fresh else 0
    s[s[O_PENDING] + d] += 1
    merged = (s[s[O_IRR] + dest] >> g) & 1 != 0  # the LAPIC will not accept it
    io.line_effect(s, tb, pf, plug, pin, 1)
    delivered = not s[s[O_P_IRR] + pin] and not merged
    if not delivered:
        s[s[O_PENDING] + d] -= 1
    s[s[O_FRESH] + d] = 0
    s[st + SJ_RTC_EOI] = 1 if delivered else 0  # rtc_status.pending_eoi
    return delivered


@inner
def rtc_reinject(s, tb, pf, plug, d, j):
    """A reinjection of a coalesced tick; it counts down ``irq_coalesced`` if delivered."""
    if rtc_raise(s, tb, pf, plug, d, j, False):
        s[tjs(s, j) + SJ_RTC_COAL] -= 1
        emit(s, tb, E_RTC_COALESCED, s[tjs(s, j) + SJ_RTC_COAL], 0, 0, 0)


@inner
def rtc_timer_update(s, d, j):
    """``rtc_coalesced_timer_update``: retry after period / (min(irq_coalesced, 7) + 1)."""
    k = tslot(s, s[tjp(s, j) + TJ_SLOT])
    c = s[tjs(s, j) + SJ_RTC_COAL]
    if c == 0:
        s[k] = NEVER
    else:
        s[k] = s[S_T] + s[s[O_PI] + s[tjp(s, j) + TJ_PERIOD]] // (min(c, 7) + 1)


@inner
def rtc_coalesced_timer(s, tb, pf, plug, d, j):
    """``rtc_coalesced_timer``."""
    s[S_THREAD] = QEMU
    if s[tjs(s, j) + SJ_RTC_COAL]:
        rtc_reinject(s, tb, pf, plug, d, j)
    rtc_timer_update(s, d, j)


@inner
def rtc_read_c(s, tb, pf, plug, d, j):
    """The guest's handler reads register C: ``qemu_irq_lower``, then with ticks coalesced
    and fewer than RTC_REINJECT_ON_ACK_COUNT reinjections on ack, one more."""
    pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
    emit(s, tb, E_KVM_SET_IRQ, pin, 0, 0, 0)
    io.line_effect(s, tb, pf, plug, pin, 0)
    st = tjs(s, j)
    if tparam(s, j) and s[st + SJ_RTC_COAL] and s[st + SJ_RTC_ACKS] < RTC_REINJECT_ON_ACK_COUNT:
        s[st + SJ_RTC_ACKS] += 1
        rtc_reinject(s, tb, pf, plug, d, j)


# ---------------------------------------------------------------- SynIC stimer


@inner
def stimer_process(s, tb, pf, plug, d, j):
    """``kvm_hv_process_stimers`` for an expired stimer: send the message, then, with no
    delivery left to retry, ``stimer_start`` at the next period boundary after now."""
    t = s[S_T]
    st = tjs(s, j)
    dest, g = s[s[O_PDEV] + d * N_DEV + D_DEST], s[s[O_PDEV] + d * N_DEV + D_GROUP]
    s[st + SJ_ST_DUE] = 0
    s[st + SJ_ST_RETRY] = 1
    if s[st + SJ_ST_SLOT]:
        if tparam(s, j):
            r = EAGAIN  # msg_pending set in the slot: KVM retries at the guest's EOM/EOI
        else:
            r = 0  # 7deec5e0df74: no_retry for periodic timers, the tick is dropped
            merge(s, d)
    else:
        r = 0
        s[st + SJ_ST_SLOT] = 1
        s[s[O_PENDING] + d] += 1
        fresh = s[st + SJ_ST_EXP] == t  # delivered at its own expiry
        s[s[O_FRESH] + d] = 1 if fresh else 0
        emit(s, tb, E_KVM_MSI_SET_IRQ, dest, s[s[O_PDEV] + d * N_DEV + D_VECTOR], 0, 0)
        accepted = accept(s, tb, dest, g, 0)
        if fresh:
            count_delivery(s, -1, d, accepted)
        elif accepted:
            s[s[O_DEV_REDELIVERED] + d] += 1
            s[S_DELIVERED] += 1
        else:
            merge(s, d)
    emit(s, tb, E_STIMER_EXPIRATION, dest, r, 0, 0)
    if r == 0:
        s[st + SJ_ST_RETRY] = 0
        period = s[s[O_PI] + s[tjp(s, j) + TJ_PERIOD]]
        skipped = (t - s[st + SJ_ST_EXP]) // period
        if skipped:
            tick_raised(s, d, skipped)
            for _ in range(skipped):
                merge(s, d)
        nxt = t + (period - (t - s[st + SJ_ST_EXP]) % period)
        s[s[O_ARR_T] + d] = nxt
        emit(s, tb, E_STIMER_START, dest, t // HV_UNIT, nxt // HV_UNIT, 0)


# ---------------------------------------------------------------- hooks


@inner
def timer_eoi(s, tb, pf, plug, g):
    """The guest's EOI of vector group ``g`` reached KVM: the PIT's ack notifier, a SINT's
    ``kvm_hv_notify_acked_sint`` (a stimer with a delivery to retry expires again), the
    RTC's ``rtc_irq_eoi``."""
    if not tm_on(s):
        return
    for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
        d = s[s[O_PGDEV] + g * s[CFG + C_W] + k]
        j = timer_of(s, d)
        if j < 0:
            continue
        kind = s[tjp(s, j) + TJ_KIND]
        if kind == TM_PIT and tparam(s, j):
            pit_ack_irq(s, tb, pf, plug, d, j)
        elif kind == TM_STIMER and s[tjs(s, j) + SJ_ST_RETRY]:
            stimer_process(s, tb, pf, plug, d, j)
        elif kind == TM_RTC and s[tjs(s, j) + SJ_RTC_EOI]:
            s[tjs(s, j) + SJ_RTC_EOI] = 0


@inner
def timer_serviced(s, tb, pf, plug, d):
    """The guest's handler consumed the SynIC message (the slot is free), or read the
    RTC's register C."""
    j = timer_of(s, d)
    if j < 0:
        return
    kind = s[tjp(s, j) + TJ_KIND]
    if kind == TM_STIMER:
        s[tjs(s, j) + SJ_ST_SLOT] = 0
    elif kind == TM_RTC:
        rtc_read_c(s, tb, pf, plug, d, j)


@inner
def descheduled_now(s, v):
    """Whether the host holds vCPU ``v`` off its CPU."""
    return tm_on(s) and s[s[O_TM_P] + TP_NDS] > 0 and s[held(s, v) + H_HELD] != 0


@inner
def descheduled(s, v):
    """The notify hook: a descheduled vCPU notices a new interrupt when it runs again."""
    if descheduled_now(s, v):
        s[held(s, v) + H_KICK] = 1
        return True
    return False


# ---------------------------------------------------------------- host contention


@inner
def tslot_event(s, tb, pf, plug, i):
    """Timer slot ``i``: a deschedule plugin's boundary, or an RTC's coalesced timer."""
    tp = s[O_TM_P]
    nds = s[tp + TP_NDS]
    if i < nds:
        desched_event(s, tb, pf, plug, i)
    else:
        j = s[tp + TP_DEV + s[CFG + C_D] + NTP * s[tp + TP_NT] + i - nds]
        rtc_coalesced_timer(s, tb, pf, plug, s[tjp(s, j) + TJ_DEV], j)


@inner
def desched_event(s, tb, pf, plug, k):
    """A stretch of deschedule plugin ``k`` begins or ends."""
    v = ds_param(s, k, M_P0)
    t = s[S_T]
    s[S_THREAD] = v
    ds, h = dsp(s, k), held(s, v)
    if s[ds + DS_ON]:
        resume(s, tb, pf, plug, k, v)
        return
    length, period = ds_param(s, k, M_P3), ds_param(s, k, M_P2)
    if length == 0 or s[h + H_HELD]:
        s[ds + DS_START] += period
        s[tslot(s, k)] = s[ds + DS_START]
        return
    if s[s[O_SINCE] + v] > t:  # a transition in progress completes first
        s[tslot(s, k)] = s[s[O_SINCE] + v]
        return
    emit(s, tb, E_DESCHEDULE, v, length // 1000, 0, 0)
    s[h + H_RUN] = 1 if s[s[O_RUN_START] + v] != NEVER else 0
    if s[h + H_RUN]:
        io.end_run(s, v, t)
    vt = s[s[O_VT] + v]
    s[h + H_REM] = NEVER if vt == NEVER else vt - t
    s[s[O_VT] + v] = NEVER
    s[h + H_MODE] = s[s[O_MODE] + v]
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)
    s[h + H_HELD] = 1
    s[h + H_KICK] = 0
    s[ds + DS_ON] = 1
    s[ds + DS_BEGIN] = t
    s[tslot(s, k)] = t + length


@inner
def resume(s, tb, pf, plug, k, v):
    """The vCPU runs again where it stopped; its pending work is ``length`` later."""
    t = s[S_T]
    ds, h = dsp(s, k), held(s, v)
    shift = t - s[ds + DS_BEGIN]
    emit(s, tb, E_RESCHEDULE, v, 0, 0, 0)
    s[h + H_HELD] = 0
    s[ds + DS_ON] = 0
    s[ds + DS_START] += ds_param(s, k, M_P2)
    s[tslot(s, k)] = max(s[ds + DS_START], t)
    switch(s, tb, v, s[h + H_MODE], 0, 0, 0, 0, 0)
    if s[s[O_PT_ARMED] + v]:
        s[s[O_PT_DEADLINE] + v] += shift
    if s[h + H_RUN]:
        s[s[O_RUN_START] + v] = t
    if s[h + H_REM] != NEVER:
        s[s[O_VT] + v] = t + s[h + H_REM]
    for j in range(s[s[O_TM_P] + TP_NT]):
        d = s[tjp(s, j) + TJ_DEV]
        if (s[tjp(s, j) + TJ_KIND] == TM_STIMER and s[tjs(s, j) + SJ_ST_DUE]
                and s[s[O_PDEV] + d * N_DEV + D_DEST] == v):
            stimer_process(s, tb, pf, plug, d, j)
    if s[h + H_KICK]:
        s[h + H_KICK] = 0
        notify(s, tb, v)

