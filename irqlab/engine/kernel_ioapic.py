"""The per-lane kernel, part 2: the IOAPIC, the built-in mitigations and devices, and
guest code runs. See :mod:`irqlab.engine.kernel`.
"""

from __future__ import annotations

import math

import numpy as np

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import (  # noqa: F401
    accept, after, at, count_delivery, deliverable, det_log, draw, emit, entry, hot, inner, latency_bin,
    merge, record,
)
from irqlab.engine.kernel_dest import dest_deliver
from irqlab.engine.kernel_mech import (  # noqa: F401
    host_raise, lazy_enter, lazy_leave, pin_vfio, resampler_ack_head, unmask_resample, vfio_rise, vfio_unmask,
)
from irqlab.engine.kernel_routes import (
    dev_dest, kernel_route, misroute, pin_dest, rescan_pin, rirr_cleared, rte_write, split_update,
)
from irqlab.engine.kernel_idle import idle_on, idle_progress, idle_run, idle_work
from irqlab.engine.kernel_tpr import exit_elapsed, exit_schedule


# ---------------------------------------------------------------- IOAPIC


@inner
def set_line(s, tb, pf, plug, pin, level):
    """A device line at ``pin`` changes (the OR of its devices' lines)."""
    if s[S_TRACING]:
        record(s, tb, TR_COUNTER, s[S_T], pin, 2, level, 0, 0, 0)
    if s[CFG + C_BARE]:
        emit(s, tb, E_LINE, pin, level, 0, 0)
    elif s[CFG + C_SPLIT]:
        emit(s, tb, E_IOAPIC_SET_IRQ, pin, level, 0, 0)
    else:
        emit(s, tb, E_KVM_SET_IRQ, pin, level, 0, 0)
    line_effect(s, tb, pf, plug, pin, level)


@hot
def line_effect(s, tb, pf, plug, pin, level):
    """The IOAPIC sees ``pin``'s line (the OR of its sources) at ``level``."""
    if level and s[s[O_PPIN_LEVEL] + pin]:
        lazy_eoi(s, tb, pf, plug, pin)
    line_rest(s, tb, pf, plug, pin, level)


@hot
def line_rest(s, tb, pf, plug, pin, level):
    """:func:`line_effect` after the lazy EOI."""
    split = s[CFG + C_SPLIT]
    if s[s[O_PPIN_LEVEL] + pin]:
        if level:
            s[s[O_P_IRR] + pin] = 1
            if split:
                if not s[s[O_P_RIRR] + pin]:
                    service_all(s, tb, pf, plug, False)
            else:
                service(s, tb, pf, plug, pin)
        else:
            s[s[O_P_IRR] + pin] = 0
    elif not level:
        if not (split or s[CFG + C_BARE]):
            s[s[O_P_IRR] + pin] = 0  # KVM: the pulse's falling half clears an edge pin's irr
    elif split or s[CFG + C_BARE]:
        if not s[s[O_P_MASKED] + pin]:
            s[s[O_P_IRR] + pin] = 1
            if split:
                service_all(s, tb, pf, plug, False)
            else:
                service(s, tb, pf, plug, pin)
    else:
        if s[s[O_P_IRR] + pin]:
            s[S_EDGE_MERGED] = 1
        else:
            s[s[O_P_IRR] + pin] = 1
            service(s, tb, pf, plug, pin)


@inner
def lazy_eoi(s, tb, pf, plug, pin):
    """``ioapic_set_irq`` with APICv/AVIC active (f458d039db7e): a level pin whose vector is no
    longer pending EOI gets ``kvm_ioapic_update_eoi_one`` first (``lazy_eoi all``). Its
    resampler's ack re-enters here while another source holds the line; the reference
    recurses, the kernel (no recursion: numba#6061) runs the nested turns as a loop and
    then finishes each in reverse (line_effect's rest, the unmask, eoi_one's rest)."""
    if not lazy_enter(s, tb, pin):
        return
    n = 1  # turns begun and not finished
    while True:  # the innermost turn's eoi_one, up to a nested lazy EOI
        if not s[CFG + C_SPLIT] and pin_vfio(s, pin):
            level = resampler_ack_head(s, tb, pin)
            if level and s[s[O_PPIN_LEVEL] + pin] and lazy_enter(s, tb, pin):
                n += 1
                continue
            line_rest(s, tb, pf, plug, pin, level)
            vfio_unmask(s, tb, pin)
        eoi_tail(s, tb, pf, plug, pin)
        lazy_leave(s)
        n -= 1
        break
    while n > 0:
        line_rest(s, tb, pf, plug, pin, 1)
        vfio_unmask(s, tb, pin)
        eoi_tail(s, tb, pf, plug, pin)
        lazy_leave(s)
        n -= 1


@inner
def service_all(s, tb, pf, plug, level_only):
    for k in range(s[CFG + C_NUSED]):
        pin = s[s[O_PUSED] + k]
        if level_only and not s[s[O_PPIN_LEVEL] + pin]:
            continue
        service(s, tb, pf, plug, pin)


@inner
def service(s, tb, pf, plug, pin0):
    """Deliver ``pin0`` if it is pending and deliverable (ioapic_service).

    A ``deliver`` hook may mask the pin, and with a split irqchip that write services
    every pin again before the hook goes on: the reference recurses there. Numba's
    cache cannot hold recursive functions, so the nesting is an explicit stack of
    frames (at most one per pin, as each level masks a pin): ``FR_PIN`` the pin,
    ``FR_M`` the next mitigation whose hook runs, ``FR_K`` the next pin of a nested
    service-all (-1: none under way), ``FR_BLOCK`` whether a hook blocked delivery,
    ``FR_IDLE`` whether the paused hook found no pin limited yet (it then sets its timer).
    """
    fr = s[O_FRAMES]
    depth = 1
    s[fr] = pin0
    s[fr + 1] = -1
    s[fr + 2] = -1
    s[fr + 3] = 0
    while depth:
        f = fr + FRAME * (depth - 1)
        pin, m, k = s[f], s[f + 1], s[f + 2]
        if m < 0:
            level = s[s[O_PPIN_LEVEL] + pin]
            if s[s[O_P_MASKED] + pin] or not s[s[O_P_IRR] + pin] or (level and s[s[O_P_RIRR] + pin]):
                depth -= 1
                continue
            m = 0
        if k >= 0:  # a hook's nested service-all is under way
            if k < s[CFG + C_NUSED]:
                s[f + 1] = m
                s[f + 2] = k + 1
                g = fr + FRAME * depth
                s[g], s[g + 1], s[g + 2], s[g + 3] = s[s[O_PUSED] + k], -1, -1, 0
                depth += 1
                continue
            split_update(s, tb, False)
            xen_blocked_tail(s, tb, pin, m, s[f + 4])
            k = -1
            m += 1
        paused = False
        while m < s[CFG + C_M]:
            blocked = xen_deliver(s, pin, m) if s[s[O_PMIT] + m * N_MIT + M_KIND] == MIT_XEN_RATELIMIT else 0
            if plugin_has(s, m, KH_DELIVER) and call_hook(plug, KH_DELIVER, s, pf, m, pin, 0) & KF_DEFER:
                s[f + 3] = 1
            if blocked:
                s[f + 3] = 1
                s[f + 4] = blocked == 1
                old = redirect_entry(s, tb, pf, plug, pin, 1, -1)
                if s[CFG + C_SPLIT]:  # the mask write services every pin, then the hook goes on
                    split_update(s, tb, True)
                    s[f + 1] = m
                    s[f + 2] = 0
                    paused = True
                    break
                kernel_route(s, pin)
                rescan_pin(s, tb, old, pin)
                xen_blocked_tail(s, tb, pin, m, s[f + 4])
            m += 1
        if paused:
            continue
        depth -= 1
        if not s[f + 3]:
            deliver(s, tb, pin)


@inner
def deliver(s, tb, pin):
    level = s[s[O_PPIN_LEVEL] + pin]
    if level:
        s[s[O_P_RIRR] + pin] = 1
    else:
        s[s[O_P_IRR] + pin] = 0
    g = s[s[O_PPIN_GROUP] + pin]
    vec, dest = s[s[O_PGRP] + g * N_GRP + G_VECTOR], pin_dest(s, pin)
    if s[CFG + C_BARE]:
        emit(s, tb, E_IOAPIC_DELIVER, pin, vec, level, 0)
    elif s[CFG + C_SPLIT]:
        emit(s, tb, E_KVM_SET_IRQ, pin, 1, 0, 0)
        emit(s, tb, E_KVM_MSI_SET_IRQ, dest, vec, level, 1)
    else:
        emit(s, tb, E_KVM_IOAPIC_SET_IRQ, pin, dest, vec, level)
    misroute(s, pin, dest)
    accepted = dest_deliver(s, tb, dest, g, level) if s[O_DS_PROG] >= 0 else accept(s, tb, dest, g, level)
    count_delivery(s, pin, -1, accepted)
    if s[CFG + C_SPLIT] and not level:
        emit(s, tb, E_KVM_SET_IRQ, pin, 0, 0, 0)


@inner
def eoi_broadcast(s, tb, pf, plug, vector):
    """An EOI for ``vector`` reaches the IOAPIC."""
    for k in range(s[CFG + C_NUSED]):
        pin = s[s[O_PUSED] + k]
        if not s[s[O_PPIN_LEVEL] + pin] or s[s[O_PGRP] + (s[s[O_PPIN_GROUP] + pin]) * N_GRP + G_VECTOR] != vector:
            continue
        if s[CFG + C_SPLIT] and not s[s[O_P_RIRR] + pin]:
            continue
        eoi_one(s, tb, pf, plug, pin)


@hot
def eoi_one(s, tb, pf, plug, pin):
    """The EOI of level ``pin`` (QEMU's loop body; KVM ``kvm_ioapic_update_eoi_one``: the
    ack notifiers first)."""
    if not s[CFG + C_SPLIT] and pin_vfio(s, pin):
        line_effect(s, tb, pf, plug, pin, resampler_ack_head(s, tb, pin))
        vfio_unmask(s, tb, pin)
    eoi_tail(s, tb, pf, plug, pin)


@hot
def eoi_tail(s, tb, pf, plug, pin):
    """:func:`eoi_one` after the ack notifiers: Remote IRR clears, a still asserted line
    is delivered again unless a mitigation defers it."""
    s[s[O_P_RIRR] + pin] = 0
    rirr_cleared(s, pin)
    asserted = (not s[s[O_P_MASKED] + pin]) and s[s[O_P_IRR] + pin] != 0
    defer = mit_eoi(s, tb, pf, plug, pin, asserted)
    if asserted and not defer:
        if s[CFG + C_SPLIT]:
            service_all(s, tb, pf, plug, False)
        else:
            service(s, tb, pf, plug, pin)


@inner
def redirect_entry(s, tb, pf, plug, pin, masked, dest):
    """The guest (or a mitigation) writes ``pin``'s redirection entry: the mask bit, the
    destination (``dest`` -1 keeps it) and the ``redirect`` hooks; :func:`redirect_write` then
    services the pins. Returns the old destination (-1: the program has no guest actions)."""
    emit(s, tb, E_REDIRECT, pin, masked, 1 if dest >= 0 else 0, dest)
    old = rte_write(s, pin, dest)
    s[s[O_P_MASKED] + pin] = masked
    mit_redirect(s, pf, plug, pin)
    return old


@inner
def redirect_write(s, tb, pf, plug, pin, masked, dest):
    old = redirect_entry(s, tb, pf, plug, pin, masked, dest)
    if s[CFG + C_SPLIT]:
        split_update(s, tb, True)
        service_all(s, tb, pf, plug, False)
        split_update(s, tb, False)
        return
    kernel_route(s, pin)
    if not masked and s[s[O_PPIN_LEVEL] + pin] and s[s[O_P_IRR] + pin] and not s[s[O_P_RIRR] + pin]:
        if not unmask_resample(s, tb, pin):
            service(s, tb, pf, plug, pin)
    rescan_pin(s, tb, old, pin)


@inner
def host_event(s, tb, pf, plug, d):
    """KVM's irqfd injects the GSI of VFIO device ``d`` (its host slot's event)."""
    line_effect(s, tb, pf, plug, s[s[O_PDEV] + d * N_DEV + D_PIN], host_raise(s, tb, d))


# ---------------------------------------------------------------- mitigations (builtin kinds)


@inner
def plugin_has(s, m, event):
    """Whether mitigation ``m`` is a third-party plugin with a kernel hook for ``event``."""
    row = s[O_PMIT] + m * N_MIT
    return s[row + M_KIND] == MIT_PLUGIN and (s[row + M_HOOKS] >> event) & 1 != 0


@inner
def call_hook(plug, event, s, pf, m, pin, a):
    """A third-party mitigation's kernel hook (irqlab.engine.kernel_api)."""
    return plug(event, s.ctypes, s.shape[0], pf.ctypes, pf.shape[0], m, pin, a)


@inner
def plugin_timer(s, tb, pf, plug, m, k):
    """Timer ``k`` of third-party mitigation ``m`` expired."""
    if call_hook(plug, KH_TIMER, s, pf, m, 0, k) & KF_SERVICE:
        service_all(s, tb, pf, plug, False)


@inner
def set_timer(s, k, t):
    s[s[O_TIMER_T] + k] = t


@inner
def xen_deliver(s, pin, m):
    """xen_irq_ratelimit.on_deliver up to its mask write (do_IRQ's ``rl_cnt++ >= limit``,
    the quantum checked past the limit): 0 to let the delivery through, else it is
    blocked, 1 if no pin was limited yet (the caller masks the pin, then runs
    :func:`xen_blocked_tail`)."""
    npins = s[CFG + C_PINS]
    base = s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE]
    cnt, qs, lim = base + pin, base + npins + pin, base + 2 * npins + pin
    now = s[S_T]
    old = s[cnt]
    check = old >= s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P0]]
    inside = now < s[qs] + s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P1]]
    restart = check and not inside
    s[cnt] = 0 if restart else old + 1
    if restart:
        s[qs] = now
    if not (check and inside):
        return 0
    idle = True
    for p in range(npins):
        if s[base + 2 * npins + p]:
            idle = False
    s[lim] = 1
    return 1 if idle else 2


@inner
def xen_blocked_tail(s, tb, pin, m, idle):
    """The rest of xen_irq_ratelimit.on_deliver after the mask write."""
    if idle:
        set_timer(s, s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE], s[S_T] + s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P1]])
    s[s[O_ACT] + m] += 1
    emit(s, tb, E_XEN_RATELIMIT, pin, 0, 0, 0)


@hot
def mit_eoi(s, tb, pf, plug, pin, asserted):
    defer = False
    for m in range(s[CFG + C_M]):
        kind = s[s[O_PMIT] + m * N_MIT + M_KIND]
        if plugin_has(s, m, KH_IOAPIC_EOI):
            r = call_hook(plug, KH_IOAPIC_EOI, s, pf, m, pin, 1 if asserted else 0)
            defer = defer or (r & KF_DEFER) != 0
            if r & KF_SERVICE:
                service_all(s, tb, pf, plug, False)
        if kind != MIT_KVM_EOI_DELAY and kind != MIT_QEMU_EOI_THROTTLE:
            continue
        # successive_eoi
        cnt = s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE] + pin
        c = s[cnt] + 1 if asserted else 0
        threshold = s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P0]]
        hit = asserted and (c == threshold if kind == MIT_KVM_EOI_DELAY else c >= threshold)
        s[cnt] = 0 if hit else c
        if not hit:
            continue
        defer = True
        k = s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE]
        due = s[S_T] + s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P1]]
        if kind == MIT_KVM_EOI_DELAY:
            if s[s[O_TIMER_T] + k] == NEVER:  # schedule_delayed_work: no-op if pending
                # KvmEoiDelay.due: the jiffy tick d ticks on, d = hz // 100 or ceil(delay / tick)
                hz = s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P2]]
                delay = s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P1]]
                tick = 1_000_000_000_000 // hz
                d = -(-delay // tick) if delay > 0 else hz // 100
                set_timer(s, k, (s[S_T] // tick + d) * tick)
            s[s[O_ACT] + m] += 1
            emit(s, tb, E_KVM_DELAYED_EOI, pin, 0, 0, 0)
        else:
            set_timer(s, k, min(s[s[O_TIMER_T] + k], due))  # timer_mod_anticipate
            s[s[O_ACT] + m] += 1
            emit(s, tb, E_QEMU_DELAYED, pin, 0, 0, 0)
    return defer


@inner
def mit_redirect(s, pf, plug, pin):
    for m in range(s[CFG + C_M]):
        if s[s[O_PMIT] + m * N_MIT + M_KIND] == MIT_QEMU_EOI_THROTTLE:
            s[s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE] + pin] = 0
        elif plugin_has(s, m, KH_REDIRECT):
            call_hook(plug, KH_REDIRECT, s, pf, m, pin, 0)


@inner
def timer_unit_ps(s, pf):
    return np.ldexp(1e12, s[s[O_PI] + s[CFG + C_P_PT_RATE]]) / pf[s[CFG + C_P_TSC]]


@inner
def mit_immediate(s, pf, plug, v):
    timer = np.int64(0)
    for m in range(s[CFG + C_M]):
        if plugin_has(s, m, KH_IMMEDIATE_EXIT):
            timer = call_hook(plug, KH_IMMEDIATE_EXIT, s, pf, m, v, timer)
        if s[s[O_PMIT] + m * N_MIT + M_KIND] != MIT_PT_THROTTLE:
            continue
        base = s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE]
        last, count = base + v, base + s[CFG + C_V] + v
        rip = s[s[O_RIP] + v]
        c = s[count] + 1 if s[last] == rip else 0
        s[count] = c
        s[last] = rip
        if c > s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P0]]:
            units = pf[s[s[O_PMIT] + m * N_MIT + M_P1]]
            timer = np.int64(math.floor(units * timer_unit_ps(s, pf)))
            s[s[O_ACT] + m] += 1
    return timer


@inner
def mit_handler_done(s, tb, pf, plug, v, pin, handled):
    for m in range(s[CFG + C_M]):
        if plugin_has(s, m, KH_HANDLER_DONE):
            if call_hook(plug, KH_HANDLER_DONE, s, pf, m, pin, (1 if handled else 0) + 2 * v) & KF_SERVICE:
                service_all(s, tb, pf, plug, False)
        if s[s[O_PMIT] + m * N_MIT + M_KIND] != MIT_LINUX_SPURIOUS:
            continue
        # linux_spurious.on_handler_done; params window, threshold, reset, poll
        npins = s[CFG + C_PINS]
        base = s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE]
        icount, unh, last, dis = base + pin, base + npins + pin, base + 2 * npins + pin, base + 3 * npins + pin
        now = s[S_T]
        un = s[unh]
        stale = now - s[last] > s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P2]]
        if not handled:
            un = 1 if stale else un + 1
            s[last] = now
        counts = un != 0 or s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P4]] == 1  # v5.13: from the first unhandled
        count = s[icount] + (1 if counts else 0)
        verdict = counts and count >= s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P0]]
        bad = verdict and un > s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P1]] and not s[dis]
        s[icount] = 0 if verdict else count
        s[unh] = 0 if verdict else un
        if bad:
            s[dis] = 1
            redirect_write(s, tb, pf, plug, pin, 1, -1)
            k = s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE]
            set_timer(s, k, min(s[s[O_TIMER_T] + k], now + s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P3]]))
            s[s[O_ACT] + m] += 1
            emit(s, tb, E_SPURIOUS_DISABLE, pin, 0, 0, 0)


@inner
def mit_timer(s, tb, pf, plug, m):
    kind = s[s[O_PMIT] + m * N_MIT + M_KIND]
    k = s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE]
    npins = s[CFG + C_PINS]
    base = s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE]
    if kind == MIT_KVM_EOI_DELAY or kind == MIT_QEMU_EOI_THROTTLE:
        set_timer(s, k, NEVER)
        service_all(s, tb, pf, plug, kind == MIT_KVM_EOI_DELAY)
    elif kind == MIT_LINUX_SPURIOUS:
        for p in range(npins):
            if s[base + 3 * npins + p]:
                poll(s, tb, pf, plug, p)
        set_timer(s, k, s[S_T] + s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P3]])
    elif kind == MIT_XEN_RATELIMIT:  # irq_ratelimit_timer_fn only re-enables the limited IRQs
        set_timer(s, k, NEVER)
        for p in range(npins):
            if s[base + 2 * npins + p]:
                s[base + 2 * npins + p] = 0
                redirect_write(s, tb, pf, plug, p, 0, -1)


@inner
def poll(s, tb, pf, plug, pin):
    emit(s, tb, E_POLL, pin, 0, 0, 0)
    for d in range(s[CFG + C_D]):
        if s[s[O_PDEV] + d * N_DEV + D_PIN] == pin and s[s[O_PENDING] + d] > 0:
            device_service(s, tb, pf, plug, d, -1)


# ---------------------------------------------------------------- devices


@inner
def close_stall(s, v, t):
    st = s[s[O_STALL_START] + v]
    if st != NEVER:
        s[s[O_STALL_MAX] + v] = max(s[s[O_STALL_MAX] + v], t - st)
        s[s[O_STALL_START] + v] = NEVER


@inner
def arrival_next(s, pf, d, now, first):
    """The device's arrival process: its first arrival, or the one after ``now``."""
    kind = s[s[O_PDEV] + d * N_DEV + D_ARR_KIND]
    a = s[O_ARRST] + 2 * d
    if kind == ARR_ONCE:
        return s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P0]] if first else NEVER
    if kind == ARR_PERIODIC:  # period, start, count
        if first:
            s[a] = 1
            return s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P1]]
        count = s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P2]]
        done = count > 0 and s[a] >= count
        s[a] += 1
        return NEVER if done else after(now, s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P0]])
    if kind == ARR_TRACE:  # offset; s[a] = the next timestamp's index
        s[a] = 0 if first else s[a] + 1
        if s[a] >= s[s[O_PDEV] + d * N_DEV + D_ARR_P2]:
            return NEVER
        when = s[s[O_PTIMES] + s[s[O_PDEV] + d * N_DEV + D_ARR_P1] + s[a]]
        return after(when, s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P0]])
    if kind == ARR_POISSON:  # rate, start
        if first:
            now = s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P1]]
        mean = 1e12 / pf[s[s[O_PDEV] + d * N_DEV + D_ARR_P0]]
        u = draw(s, d, d)
        return after(now, np.int64(math.floor(-mean * det_log(1.0 - u))))
    # ARR_BURSTY: rate, on, off, start; s[a] = the burst's end
    on, off = s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P1]], s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P2]]
    if first:
        now = s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_ARR_P3]]
        s[a] = now + on
    mean = 1e12 / pf[s[s[O_PDEV] + d * N_DEV + D_ARR_P0]]
    t = after(now, np.int64(math.floor(-mean * det_log(1.0 - draw(s, d, d)))))
    while t >= s[a]:  # memorylessness: an arrival past the burst's end restarts in the next burst
        start = s[a] + off
        s[a] = start + on
        t = after(start, np.int64(math.floor(-mean * det_log(1.0 - draw(s, d, d)))))
    return t


@inner
def note_arrival(s, d):
    """The books of an arrival at device ``d`` (also a timer's expiry): the first
    interrupt, the start of its vCPU's stall, the start of the device's episode."""
    t = s[S_T]
    if s[S_FIRST_IRQ] == NEVER:
        s[S_FIRST_IRQ] = t
    dest = dev_dest(s, d)  # its route now
    if not s[s[O_IRQ_SEEN] + dest]:
        s[s[O_IRQ_SEEN] + dest] = 1
        if s[s[O_RUN_START] + dest] == NEVER:
            s[s[O_STALL_START] + dest] = t
    if s[s[O_EPISODE] + d] == NEVER:
        s[s[O_EPISODE] + d] = t


@inner
def arrival(s, tb, pf, plug, d):
    t = s[S_T]
    s[S_RAISED] += 1
    s[s[O_DEV_RAISED] + d] += 1
    s[s[O_PENDING] + d] += 1
    note_arrival(s, d)
    dest = dev_dest(s, d)  # its route now
    # generic and queue: every arrival raises the interrupt
    if s[s[O_PDEV] + d * N_DEV + D_MSI]:
        g = s[s[O_PDEV] + d * N_DEV + D_GROUP]
        emit(s, tb, E_MSI if s[CFG + C_BARE] else E_KVM_MSI_SET_IRQ, dest, s[s[O_PDEV] + d * N_DEV + D_VECTOR], 0, 1)
        s[s[O_FRESH] + d] = 1
        accepted = dest_deliver(s, tb, dest, g, 0) if s[O_DS_PROG] >= 0 else accept(s, tb, dest, g, 0)
        count_delivery(s, -1, d, accepted)
    elif s[s[O_PDEV] + d * N_DEV + D_LEVEL]:
        if s[s[O_ASSERTED] + d]:
            merge(s, d)
        else:
            s[s[O_ASSERTED] + d] = 1
            s[s[O_FRESH] + d] = 1
            pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
            if s[s[O_PDEV] + d * N_DEV + D_VFIO]:
                vfio_rise(s, tb, d)
            else:
                s[s[O_P_LINE] + pin] += 1
                if s[s[O_P_LINE] + pin] == 1:
                    set_line(s, tb, pf, plug, pin, 1)
    else:
        pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
        fresh = s[O_FRESH] + d
        was = s[fresh]
        s[S_EDGE_MERGED] = 0
        s[fresh] = 1
        set_line(s, tb, pf, plug, pin, 1)
        set_line(s, tb, pf, plug, pin, 0)
        if was or s[S_EDGE_MERGED]:
            merge(s, d)  # an edge of this pin was still pending at the IOAPIC
            s[fresh] = 1 if was and s[fresh] else 0
        if s[fresh] and not s[s[O_P_IRR] + pin]:
            s[fresh] = 0  # masked: QEMU ignores it, KVM's falling half clears irr
            s[s[O_DEV_LOST] + d] += 1
    s[s[O_ARR_T] + d] = max(arrival_next(s, pf, d, t, False), t)


@inner
def device_service(s, tb, pf, plug, d, v):
    """The driver (on vCPU ``v``; -1: outside a handler) finishes servicing device ``d``;
    returns whether it had work."""
    pend = s[O_PENDING] + d
    handled = s[pend] > 0
    if s[s[O_PDEV] + d * N_DEV + D_MODEL_KIND] == DEV_GENERIC:
        s[pend] = 0
        lower = True
    else:  # DEV_QUEUE; DEV_TIMER (timers._TimerModel) always lowers
        s[pend] = max(s[pend] - 1, 0)
        lower = s[pend] == 0 or s[s[O_PDEV] + d * N_DEV + D_MODEL_KIND] == DEV_TIMER
    lower = lower and s[s[O_PDEV] + d * N_DEV + D_LOWERS] != 0
    after_ = s[pend]
    t = s[S_T]
    if handled:
        if idle_on(s):
            idle_work(s, tb, d, v)
        s[s[O_DEV_SERVICED] + d] += 1
        ep = s[s[O_EPISODE] + d]
        if ep != NEVER:
            lat = t - ep
            b = latency_bin(lat, s[CFG + C_NB])
            s[s[O_LAT_HIST] + d * s[CFG + C_NB] + b] += 1
            s[s[O_LAT_MAX] + d] = max(s[s[O_LAT_MAX] + d], lat)
            s[s[O_LAT_MIN] + d] = min(s[s[O_LAT_MIN] + d], lat)
            s[s[O_LAT_N] + d] += 1
            s[s[O_LAT_SUM] + d] += lat  # exact while below 2**53 (checked by the caller)
        s[s[O_EPISODE] + d] = t if after_ > 0 else NEVER
    if lower and s[s[O_ASSERTED] + d]:
        if s[s[O_FRESH] + d]:  # serviced before its assertion was delivered
            s[s[O_FRESH] + d] = 0
            merge(s, d)
        s[s[O_ASSERTED] + d] = 0
        pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
        if not s[s[O_PDEV] + d * N_DEV + D_VFIO]:  # VFIO: the host line drops; the GSI waits for the resampler
            s[s[O_P_LINE] + pin] -= 1
            if s[s[O_P_LINE] + pin] == 0:
                set_line(s, tb, pf, plug, pin, 0)
    if handled:
        _tm.timer_serviced(s, tb, pf, plug, d)
    return handled


# ---------------------------------------------------------------- running guest code


@inner
def cur_fwd(s, v):
    for d in range(s[CFG + C_D]):
        if s[s[O_PDEV] + d * N_DEV + D_DEST] == v and s[s[O_FORWARDED] + d]:
            return d
    return -1


@inner
def start_run(s, v, t0):
    """The innermost level runs guest code from ``t0`` (>= now)."""
    s[s[O_RUN_START] + v] = t0
    if idle_on(s):
        idle_run(s, v, t0)
        return
    svc_t = NEVER
    d = cur_fwd(s, v)
    if d >= 0:
        svc_t = t0 + s[s[O_SVC_REM] + d]
    pt_t = s[s[O_PT_DEADLINE] + v] if s[s[O_PT_ARMED] + v] else NEVER
    if svc_t <= pt_t and svc_t != NEVER:
        at(s, v, RUN_SVC, svc_t)
    elif pt_t != NEVER:
        at(s, v, RUN_PT, pt_t)
    else:
        at(s, v, RUN_IDLE, NEVER)
    exit_schedule(s, v, t0)


@inner
def end_run(s, v, t):
    """The guest code run that began at ``run_start`` stops at ``t``."""
    start = s[s[O_RUN_START] + v]
    s[s[O_RUN_START] + v] = NEVER
    elapsed = t - start
    if elapsed > 0:
        close_stall(s, v, start)
        first = s[S_FIRST_IRQ]
        if first != NEVER and t > first and s[S_TTP] == NEVER:
            s[S_TTP] = max(start, first) - first
            if s[CFG + C_NESTED]:
                s[S_TTP_L2] = s[S_TTP]
        d = cur_fwd(s, v)
        if d >= 0:
            s[s[O_SVC_REM] + d] -= elapsed
        s[s[O_RIP] + v] += elapsed
        if idle_on(s):
            idle_progress(s, v, elapsed)
        exit_elapsed(s, v, elapsed)
        if s[s[O_IRQ_SEEN] + v]:
            s[s[O_STALL_START] + v] = t
    elif s[s[O_IRQ_SEEN] + v] and s[s[O_STALL_START] + v] == NEVER:
        s[s[O_STALL_START] + v] = start


from irqlab.engine import kernel_timers as _tm  # noqa: E402  (kernel_timers uses this module)
