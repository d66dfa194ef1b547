"""The per-lane kernel: one lane's event loop in the Numba-compilable subset of Python.

Each lane runs its whole event loop to completion, in native code, lanes in
parallel (``prange``). It follows :mod:`irqlab.engine.reference` rule for rule
(same order of simultaneous events, same order of plugin hooks, same random
draws), and the differential tests hold it to the reference and to the lockstep
executor bit for bit. There is ONE kernel for every program: the program
arrives as arrays (:mod:`irqlab.engine.kernelprog`), so the compile is paid once
and cached on disk (``cache=True``), not once per program structure.

State of a lane: ``s`` (``int64[s[O_SIZE]]``), every integer of the lane: scalars
at the fixed slots ``S_*``, arrays at the offsets ``s[O_*]`` that
:func:`irqlab.engine.kernelprog.pack` lays out (constants in
:mod:`irqlab.engine.kernel_ids`). Parameters: ``pi`` (``int64[NP]``) and ``pf``
(``float64[NP]``), every parameter in both forms. The latency sums are kept as
int64 (exact, and equal to the other executors' float64 sums while below 2**53
ps). Because all the state lives in ``s``, a lane can stop when its trace buffer
fills and resume after the records are written out (:func:`lane_resume`).

Built-in plugins are the ``ARR_*``, ``DEV_*`` and ``MIT_*`` kinds here; their
code is the kernel form of the NumPy hooks in :mod:`irqlab.plugins.builtin`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants

# Every function is cached on disk. None allocates, so none needs Numba's reference counting
# (_nrt=False: no incref/decref around every call); only the entry points get a CPython
# wrapper; error_model="numpy": no zero-division checks (no divisor here can be 0).
inner = njit(cache=True, error_model="numpy", _nrt=False, no_cpython_wrapper=True)
entry = njit(cache=True, error_model="numpy", _nrt=False)

# ---------------------------------------------------------------- random numbers (irqlab.engine.rng)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
STREAM_MUL = np.uint64(0xD1B54A32D192ED03)
C1 = np.uint64(0xBF58476D1CE4E5B9)
C2 = np.uint64(0x94D049BB133111EB)
TWO_M53 = 2.0**-53
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
SQRT_HALF = 0.7071067811865476
ATANH_COEFFS = np.array([1.0 / k for k in range(25, 0, -2)])
LN10 = 2.302585092994046
LAT_MIN_PS = 10_000.0


@inner
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * C1
    z = (z ^ (z >> np.uint64(27))) * C2
    return z ^ (z >> np.uint64(31))


@inner
def uniform(k0, k1, stream, counter):
    """Draw ``counter`` of ``stream`` for the key ``(k0, k1)`` (rng.uniform, one lane)."""
    z = k0 ^ (np.uint64(stream + 1) * STREAM_MUL)
    z = _mix(z + np.uint64(counter) * GOLDEN + k1)
    z = _mix(z ^ k1)
    return np.float64(z >> np.uint64(11)) * TWO_M53


@inner
def det_log(x):
    """rng.det_log of one float64."""
    m, e = math.frexp(x)
    if m < SQRT_HALF:
        m = m * 2.0
        e = e - 1
    ef = np.float64(e)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = ATANH_COEFFS[0]
    for i in range(1, len(ATANH_COEFFS)):
        p = p * s2 + ATANH_COEFFS[i]
    return ef * LN2_HI + (ef * LN2_LO + 2.0 * s * p)


@inner
def latency_bin(lat, nb):
    """stats.latency_bin of one latency (int64 ps)."""
    if lat < LAT_MIN_PS:
        return 0
    x = max(np.float64(lat), 1.0) / LAT_MIN_PS
    b = np.int64(math.floor(det_log(x) / LN10 * 10)) + 1
    return min(max(b, 0), nb - 1)


@inner
def draw(s, stream_slot, stream):
    c = s[s[O_DRAWS] + stream_slot]
    s[s[O_DRAWS] + stream_slot] = c + 1
    return uniform(np.uint64(s[S_KEY0]), np.uint64(s[S_KEY1]), stream, c)


@inner
def after(now, gap):
    """arrivals._after: ``now + gap`` (int64) saturating at NEVER."""
    if now == NEVER:
        return NEVER
    return now + min(gap, NEVER - now)


# ---------------------------------------------------------------- records


@inner
def record(s, tb, kind, t, thread, code, a0, a1, a2, a3):
    n = s[S_NTB]
    if n >= tb.shape[0]:
        s[S_OVERFLOW] = 1
        return
    tb[n, 0] = kind
    tb[n, 1] = t
    tb[n, 2] = thread
    tb[n, 3] = code
    tb[n, 4] = a0
    tb[n, 5] = a1
    tb[n, 6] = a2
    tb[n, 7] = a3
    s[S_NTB] = n + 1


@inner
def emit_at(s, tb, t, code, a0, a1, a2, a3):
    s[S_EVENTS] += 1
    if s[S_TRACING]:
        record(s, tb, TR_EVENT, t, s[S_THREAD], code, a0, a1, a2, a3)


@inner
def emit(s, tb, code, a0, a1, a2, a3):
    emit_at(s, tb, s[S_T], code, a0, a1, a2, a3)


@inner
def exit_(s, tb, reason, rip, info):
    s[s[O_EXITS] + reason] += 1
    emit(s, tb, E_KVM_EXIT, reason, rip, info, 0)


@inner
def trace_mode(s, tb, v, t, mode):
    if s[S_TRACING]:
        record(s, tb, TR_MODE, t, v, mode, 0, 0, 0, 0)


@inner
def popcount(x):
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


@inner
def trace_lapic(s, tb, v):
    if s[S_TRACING]:
        record(s, tb, TR_COUNTER, s[S_T], v, 0, popcount(s[s[O_IRR] + v]), 0, 0, 0)
        record(s, tb, TR_COUNTER, s[S_T], v, 1, popcount(s[s[O_ISR] + v]), 0, 0, 0)


@inner
def l2_rip(s, v):
    return RIP_L2_BASE + (s[s[O_RIP] + v] // 1000) * 4


# ---------------------------------------------------------------- time accounting


@inner
def switch(s, tb, v, new_mode, m0, dt0, m1, dt1, n_pre):
    """Leave the current mode at now; spend up to two prefix stays ``(m0, dt0), (m1, dt1)``
    (the first ``n_pre``), then be in ``new_mode``. Returns when the new mode starts."""
    t = s[S_T]
    a = s[O_ACC] + v * 4
    s[a + s[s[O_MODE] + v]] += t - s[s[O_SINCE] + v]
    if n_pre >= 1:
        if dt0:
            trace_mode(s, tb, v, t, m0)
        s[a + m0] += dt0
        t += dt0
    if n_pre >= 2:
        if dt1:
            trace_mode(s, tb, v, t, m1)
        s[a + m1] += dt1
        t += dt1
    p = s[O_PRE] + v * 4
    s[s[O_PRE_N] + v] = n_pre
    s[p] = m0
    s[p + 1] = dt0
    s[p + 2] = m1
    s[p + 3] = dt1
    s[s[O_MODE] + v] = new_mode
    s[s[O_SINCE] + v] = t
    trace_mode(s, tb, v, t, new_mode)
    return t


@inner
def enter(s, tb, v, level, pre_mode, pre_dt, has_pre):
    """kvm_entry into ``level`` (after the optional prefix); returns when its code starts."""
    emit_at(s, tb, s[S_T] + (pre_dt if has_pre else 0), E_KVM_ENTRY, v, 0, 0, 0)
    entry = s[s[O_PI] + s[CFG + C_P_VMENTRY]]
    if has_pre:
        return switch(s, tb, v, level, pre_mode, pre_dt, L0, entry, 2)
    return switch(s, tb, v, level, L0, entry, 0, 0, 1)


@inner
def at(s, v, phase, t):
    s[s[O_PHASE] + v] = phase
    s[s[O_VT] + v] = t


# ---------------------------------------------------------------- LAPIC


@inner
def high(s, bits):
    """The highest set bit of ``bits`` (group bits: below the number of groups)."""
    g = s[CFG + C_G] - 1
    while g > 0 and not (bits >> g) & 1:
        g -= 1
    return g


@inner
def deliverable(s, v):
    irr = s[s[O_IRR] + v]
    if not irr:
        return False
    isr = s[s[O_ISR] + v]
    if not isr:
        return True
    return (s[s[O_PGRP] + (high(s, irr)) * N_GRP + G_VECTOR] >> 4) > (s[s[O_PGRP] + (high(s, isr)) * N_GRP + G_VECTOR] >> 4)


@inner
def ack(s, tb, v):
    g = high(s, s[s[O_IRR] + v])
    s[s[O_IRR] + v] &= ~(np.int64(1) << g)
    s[s[O_ISR] + v] |= np.int64(1) << g
    trace_lapic(s, tb, v)
    return g


@inner
def lapic_eoi(s, tb, v):
    isr = s[s[O_ISR] + v]
    if not isr:
        return -1
    g = high(s, isr)
    s[s[O_ISR] + v] = isr & ~(np.int64(1) << g)
    trace_lapic(s, tb, v)
    return g


@inner
def accept(s, tb, v, g, level):
    """An interrupt for vector group ``g`` arrives at vCPU ``v``'s LAPIC."""
    emit(s, tb, E_APIC_ACCEPT if s[CFG + C_BARE] else E_KVM_APIC_ACCEPT, v, s[s[O_PGRP] + g * N_GRP + G_VECTOR], level, 0)
    bit = np.int64(1) << g
    if level:
        s[s[O_TMR] + v] |= bit
    else:
        s[s[O_TMR] + v] &= ~bit
    if s[s[O_IRR] + v] & bit:
        return False
    s[s[O_IRR] + v] |= bit
    trace_lapic(s, tb, v)
    # notify: a running guest is interrupted
    ph = s[s[O_PHASE] + v]
    if ph != RUN_IDLE and ph != RUN_SVC and ph != RUN_PT:
        return True
    t = max(s[S_T], s[s[O_SINCE] + v])
    if s[CFG + C_NESTED] or (not s[CFG + C_BARE] and not s[CFG + C_APICV]):
        at(s, v, KICK, t)
    elif deliverable(s, v):
        at(s, v, TAKE, t)
    return True


@inner
def count_delivery(s, pin, only, accepted):
    """Book one delivery of ``pin`` (or, ``only >= 0``, of that device's MSI) to a LAPIC:
    it delivers the first device with a fresh interrupt and merges the others'; with none
    fresh it is a re-delivery of a line still asserted. (reference.count_delivery)"""
    taken = False
    first, asserted = -1, -1
    for d in range(s[CFG + C_D]):
        if (only >= 0 and d != only) or (only < 0 and s[s[O_PDEV] + d * N_DEV + D_PIN] != pin):
            continue
        if first < 0:
            first = d
        if asserted < 0 and s[s[O_ASSERTED] + d]:
            asserted = d
        if s[s[O_FRESH] + d]:
            s[s[O_FRESH] + d] = 0
            if accepted and not taken:
                s[s[O_DEV_DELIVERED] + d] += 1
                s[S_DELIVERED] += 1
            else:
                s[s[O_DEV_COALESCED] + d] += 1
                s[S_COALESCED] += 1
            taken = True
    if not taken and accepted:
        d = asserted if asserted >= 0 else first
        s[s[O_DEV_REDELIVERED] + d] += 1
        s[S_DELIVERED] += 1


@inner
def merge(s, d):
    """An arrival at device ``d`` merged into an interrupt already raised."""
    s[s[O_DEV_COALESCED] + d] += 1
    s[S_COALESCED] += 1


# ---------------------------------------------------------------- IOAPIC


@inner
def set_line(s, tb, pf, pin, level):
    if s[S_TRACING]:
        record(s, tb, TR_COUNTER, s[S_T], pin, 2, level, 0, 0, 0)
    if s[CFG + C_BARE]:
        emit(s, tb, E_LINE, pin, level, 0, 0)
    elif s[CFG + C_SPLIT]:
        emit(s, tb, E_IOAPIC_SET_IRQ, pin, level, 0, 0)
    else:
        emit(s, tb, E_KVM_SET_IRQ, pin, level, 0, 0)
    split = s[CFG + C_SPLIT]
    if s[s[O_PPIN_LEVEL] + pin]:
        if level:
            s[s[O_P_IRR] + pin] = 1
            if split:
                if not s[s[O_P_RIRR] + pin]:
                    service_all(s, tb, pf, False)
            else:
                service(s, tb, pf, pin)
        else:
            s[s[O_P_IRR] + pin] = 0
    elif not level:
        if not (split or s[CFG + C_BARE]):
            s[s[O_P_IRR] + pin] = 0  # KVM: the pulse's falling half clears an edge pin's irr
    elif split or s[CFG + C_BARE]:
        if not s[s[O_P_MASKED] + pin]:
            s[s[O_P_IRR] + pin] = 1
            if split:
                service_all(s, tb, pf, False)
            else:
                service(s, tb, pf, pin)
    else:
        if s[s[O_P_IRR] + pin]:
            s[S_EDGE_MERGED] = 1
        else:
            s[s[O_P_IRR] + pin] = 1
            service(s, tb, pf, pin)


@inner
def service_all(s, tb, pf, level_only):
    for k in range(s[CFG + C_NUSED]):
        pin = s[s[O_PUSED] + k]
        if level_only and not s[s[O_PPIN_LEVEL] + pin]:
            continue
        service(s, tb, pf, pin)


@inner
def service(s, tb, pf, pin0):
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
            xen_blocked_tail(s, tb, pin, m, s[f + 4])
            k = -1
            m += 1
        paused = False
        while m < s[CFG + C_M]:
            blocked = xen_deliver(s, pin, m) if s[s[O_PMIT] + m * N_MIT + M_KIND] == MIT_XEN_RATELIMIT else 0
            if blocked:
                s[f + 3] = 1
                s[f + 4] = blocked == 1
                redirect_entry(s, tb, pin, 1)
                if s[CFG + C_SPLIT]:  # the mask write services every pin, then the hook goes on
                    s[f + 1] = m
                    s[f + 2] = 0
                    paused = True
                    break
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
    vec, dest = s[s[O_PGRP] + g * N_GRP + G_VECTOR], s[s[O_PGRP] + g * N_GRP + G_DEST]
    if s[CFG + C_BARE]:
        emit(s, tb, E_IOAPIC_DELIVER, pin, vec, level, 0)
    elif s[CFG + C_SPLIT]:
        emit(s, tb, E_KVM_SET_IRQ, pin, 1, 0, 0)
        emit(s, tb, E_KVM_MSI_SET_IRQ, dest, vec, level, 1)
    else:
        emit(s, tb, E_KVM_IOAPIC_SET_IRQ, pin, dest, vec, level)
    count_delivery(s, pin, -1, accept(s, tb, dest, g, level))
    if s[CFG + C_SPLIT] and not level:
        emit(s, tb, E_KVM_SET_IRQ, pin, 0, 0, 0)


@inner
def eoi_broadcast(s, tb, pf, vector):
    """An EOI for ``vector`` reaches the IOAPIC."""
    for k in range(s[CFG + C_NUSED]):
        pin = s[s[O_PUSED] + k]
        if not s[s[O_PPIN_LEVEL] + pin] or s[s[O_PGRP] + (s[s[O_PPIN_GROUP] + pin]) * N_GRP + G_VECTOR] != vector:
            continue
        if s[CFG + C_SPLIT] and not s[s[O_P_RIRR] + pin]:
            continue
        s[s[O_P_RIRR] + pin] = 0
        asserted = (not s[s[O_P_MASKED] + pin]) and s[s[O_P_IRR] + pin] != 0
        defer = mit_eoi(s, tb, pf, pin, asserted)
        if asserted and not defer:
            if s[CFG + C_SPLIT]:
                service_all(s, tb, pf, False)
            else:
                service(s, tb, pf, pin)


@inner
def redirect_entry(s, tb, pin, masked):
    """The guest (or a mitigation) writes ``pin``'s redirection entry: the mask bit and the
    ``redirect`` hooks; :func:`redirect_write` then services the pins."""
    emit(s, tb, E_REDIRECT, pin, masked, 0, 0)
    s[s[O_P_MASKED] + pin] = masked
    mit_redirect(s, pin)


@inner
def redirect_write(s, tb, pf, pin, masked):
    redirect_entry(s, tb, pin, masked)
    if s[CFG + C_SPLIT]:
        service_all(s, tb, pf, False)
    elif not masked and s[s[O_PPIN_LEVEL] + pin] and s[s[O_P_IRR] + pin] and not s[s[O_P_RIRR] + pin]:
        service(s, tb, pf, pin)


# ---------------------------------------------------------------- mitigations (builtin kinds)


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


@inner
def mit_eoi(s, tb, pf, pin, asserted):
    defer = False
    for m in range(s[CFG + C_M]):
        kind = s[s[O_PMIT] + m * N_MIT + M_KIND]
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
def mit_redirect(s, pin):
    for m in range(s[CFG + C_M]):
        if s[s[O_PMIT] + m * N_MIT + M_KIND] == MIT_QEMU_EOI_THROTTLE:
            s[s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE] + pin] = 0


@inner
def timer_unit_ps(s, pf):
    return np.ldexp(1e12, s[s[O_PI] + s[CFG + C_P_PT_RATE]]) / pf[s[CFG + C_P_TSC]]


@inner
def mit_immediate(s, pf, v):
    timer = np.int64(0)
    for m in range(s[CFG + C_M]):
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
def mit_handler_done(s, tb, pf, v, pin, handled):
    for m in range(s[CFG + C_M]):
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
            redirect_write(s, tb, pf, pin, 1)
            k = s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE]
            set_timer(s, k, min(s[s[O_TIMER_T] + k], now + s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P3]]))
            s[s[O_ACT] + m] += 1
            emit(s, tb, E_SPURIOUS_DISABLE, pin, 0, 0, 0)


@inner
def mit_timer(s, tb, pf, m):
    kind = s[s[O_PMIT] + m * N_MIT + M_KIND]
    k = s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE]
    npins = s[CFG + C_PINS]
    base = s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE]
    if kind == MIT_KVM_EOI_DELAY or kind == MIT_QEMU_EOI_THROTTLE:
        set_timer(s, k, NEVER)
        service_all(s, tb, pf, kind == MIT_KVM_EOI_DELAY)
    elif kind == MIT_LINUX_SPURIOUS:
        for p in range(npins):
            if s[base + 3 * npins + p]:
                poll(s, tb, pf, p)
        set_timer(s, k, s[S_T] + s[s[O_PI] + s[s[O_PMIT] + m * N_MIT + M_P3]])
    elif kind == MIT_XEN_RATELIMIT:  # irq_ratelimit_timer_fn only re-enables the limited IRQs
        set_timer(s, k, NEVER)
        for p in range(npins):
            if s[base + 2 * npins + p]:
                s[base + 2 * npins + p] = 0
                redirect_write(s, tb, pf, p, 0)


@inner
def poll(s, tb, pf, pin):
    emit(s, tb, E_POLL, pin, 0, 0, 0)
    for d in range(s[CFG + C_D]):
        if s[s[O_PDEV] + d * N_DEV + D_PIN] == pin and s[s[O_PENDING] + d] > 0:
            device_service(s, tb, pf, d)


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
def arrival(s, tb, pf, d):
    t = s[S_T]
    s[S_RAISED] += 1
    s[s[O_DEV_RAISED] + d] += 1
    if s[S_FIRST_IRQ] == NEVER:
        s[S_FIRST_IRQ] = t
    s[s[O_PENDING] + d] += 1
    dest = s[s[O_PDEV] + d * N_DEV + D_DEST]
    if not s[s[O_IRQ_SEEN] + dest]:
        s[s[O_IRQ_SEEN] + dest] = 1
        if s[s[O_RUN_START] + dest] == NEVER:
            s[s[O_STALL_START] + dest] = t
    if s[s[O_EPISODE] + d] == NEVER:
        s[s[O_EPISODE] + d] = t
    # generic and queue: every arrival raises the interrupt
    if s[s[O_PDEV] + d * N_DEV + D_MSI]:
        g = s[s[O_PDEV] + d * N_DEV + D_GROUP]
        emit(s, tb, E_MSI if s[CFG + C_BARE] else E_KVM_MSI_SET_IRQ, dest, s[s[O_PDEV] + d * N_DEV + D_VECTOR], 0, 1)
        s[s[O_FRESH] + d] = 1
        count_delivery(s, -1, d, accept(s, tb, dest, g, 0))
    elif s[s[O_PDEV] + d * N_DEV + D_LEVEL]:
        if s[s[O_ASSERTED] + d]:
            merge(s, d)
        else:
            s[s[O_ASSERTED] + d] = 1
            s[s[O_FRESH] + d] = 1
            pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
            s[s[O_P_LINE] + pin] += 1
            if s[s[O_P_LINE] + pin] == 1:
                set_line(s, tb, pf, pin, 1)
    else:
        pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
        fresh = s[O_FRESH] + d
        was = s[fresh]
        s[S_EDGE_MERGED] = 0
        s[fresh] = 1
        set_line(s, tb, pf, pin, 1)
        set_line(s, tb, pf, pin, 0)
        if was or s[S_EDGE_MERGED]:
            merge(s, d)  # an edge of this pin was still pending at the IOAPIC
            s[fresh] = 1 if was and s[fresh] else 0
        if s[fresh] and not s[s[O_P_IRR] + pin]:
            s[fresh] = 0  # masked: QEMU ignores it, KVM's falling half clears irr
            s[s[O_DEV_LOST] + d] += 1
    s[s[O_ARR_T] + d] = max(arrival_next(s, pf, d, t, False), t)


@inner
def device_service(s, tb, pf, d):
    """The driver finishes servicing device ``d``; returns whether it had work."""
    pend = s[O_PENDING] + d
    handled = s[pend] > 0
    if s[s[O_PDEV] + d * N_DEV + D_MODEL_KIND] == DEV_GENERIC:
        s[pend] = 0
        lower = True
    else:  # DEV_QUEUE
        s[pend] = max(s[pend] - 1, 0)
        lower = s[pend] == 0
    lower = lower and s[s[O_PDEV] + d * N_DEV + D_LOWERS] != 0
    after_ = s[pend]
    t = s[S_T]
    if handled:
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
        s[s[O_P_LINE] + pin] -= 1
        if s[s[O_P_LINE] + pin] == 0:
            set_line(s, tb, pf, pin, 0)
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
        if s[s[O_IRQ_SEEN] + v]:
            s[s[O_STALL_START] + v] = t
    elif s[s[O_IRQ_SEEN] + v] and s[s[O_STALL_START] + v] == NEVER:
        s[s[O_STALL_START] + v] = start


# ---------------------------------------------------------------- the vCPU's phases


@inner
def vcpu_event(s, tb, pf, v):
    ph = s[s[O_PHASE] + v]
    t = s[S_T]
    nested, bare, split, x2apic = s[CFG + C_NESTED], s[CFG + C_BARE], s[CFG + C_SPLIT], s[CFG + C_X2APIC]
    vmexit = s[s[O_PI] + s[CFG + C_P_VMEXIT]]
    if ph == RUN_SVC:  # L2 has finished servicing a forwarded device
        end_run(s, v, t)
        d = cur_fwd(s, v)
        s[s[O_SVC_REM] + d] = 0
        s[s[O_FORWARDED] + d] = 0
        device_service(s, tb, pf, d)
        g = s[s[O_PDEV] + d * N_DEV + D_GROUP]
        done = True
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
            if s[s[O_FORWARDED] + s[s[O_PGDEV] + g * s[CFG + C_W] + k]]:
                done = False
        if s[s[O_WAITING] + g] and done:
            reason = X_MSR_WRITE if x2apic else X_APIC_ACCESS  # phases.eoi_exit
            exit_(s, tb, reason, l2_rip(s, v), 0x80B if x2apic else 0x10B0)
            emit(s, tb, E_NESTED_VMEXIT, l2_rip(s, v), reason, 0, 0)
            s[s[O_PT_ARMED] + v] = 0
            switch(s, tb, v, L0, 0, 0, 0, 0, 0)
            s[s[O_GRP] + v] = g
            at(s, v, REFLECT, t + vmexit)
        else:
            start_run(s, v, t)
    elif ph == RUN_PT:  # the preemption timer fires in L2
        end_run(s, v, t)
        s[s[O_PT_ARMED] + v] = 0
        exit_(s, tb, X_PREEMPTION_TIMER, l2_rip(s, v), 0)
        emit(s, tb, E_NESTED_VMEXIT, l2_rip(s, v), X_PREEMPTION_TIMER, 0, 0)
        switch(s, tb, v, L0, 0, 0, 0, 0, 0)
        at(s, v, L0_CHECK, t + vmexit)
    elif ph == KICK:  # a new interrupt made the running guest exit
        end_run(s, v, t)
        s[s[O_PT_ARMED] + v] = 0
        if nested:
            exit_(s, tb, X_EXTERNAL_INTERRUPT, l2_rip(s, v), 0)
            emit(s, tb, E_NESTED_VMEXIT, l2_rip(s, v), X_EXTERNAL_INTERRUPT, 0, 0)
            switch(s, tb, v, L0, 0, 0, 0, 0, 0)
            at(s, v, L0_CHECK, t + vmexit)
        else:
            exit_(s, tb, X_EXTERNAL_INTERRUPT, RIP_GUEST_BASE + (s[s[O_RIP] + v] // 1000) * 4, 0)
            switch(s, tb, v, L0, 0, 0, 0, 0, 0)
            at(s, v, L0_INJECT, t + vmexit)
    elif ph == TAKE:  # the guest takes the highest deliverable interrupt itself
        if s[s[O_RUN_START] + v] != NEVER:
            end_run(s, v, t)
        if not deliverable(s, v):
            start_run(s, v, t)
            return
        g = ack(s, tb, v)
        if bare:
            emit(s, tb, E_HANDLER_ENTRY, s[s[O_PGRP] + g * N_GRP + G_IRQ], s[s[O_PGDEV] + g * s[CFG + C_W] + 0], 0, 0)
        start_handler(s, v, g, t)
    elif ph == L0_CHECK:  # nested: L0's check_nested_events after an L2 exit
        if deliverable(s, v):
            if s[CFG + C_ACK_ON_EXIT]:
                g = ack(s, tb, v)
                info = 0x80000000 | s[s[O_PGRP] + g * N_GRP + G_VECTOR]
            else:
                g, info = -1, 0
            emit(s, tb, E_NESTED_INJECT, info, 0, 0, 0)
            start = enter(s, tb, v, L1, L0, s[s[O_PI] + s[CFG + C_P_NESTED_EXIT]], True)
            if g >= 0:
                start_handler(s, v, g, start)
            else:  # load_vmcs12_host_state: RFLAGS = X86_EFLAGS_FIXED, L1 runs with IF=0
                at(s, v, L1_STI, start + s[s[O_PI] + s[CFG + C_P_L1_IRQ_OFF]])
        else:
            start = enter(s, tb, v, L2, 0, 0, False)
            start_run(s, v, start)
    elif ph == L0_INJECT:  # single-level guest: inject a pending interrupt, or re-enter
        if deliverable(s, v):
            g = ack(s, tb, v)
            emit(s, tb, E_INJ_VIRQ, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0, 0)
            start = enter(s, tb, v, L1, 0, 0, False)
            start_handler(s, v, g, start)
        elif nested:  # a nested L1 enables interrupts and goes on to VMRESUME
            at(s, v, L1_STI, enter(s, tb, v, L1, 0, 0, False))
        else:
            start = enter(s, tb, v, L1, 0, 0, False)
            start_run(s, v, start)
    elif ph == L1_STI:  # nested L1 enables interrupts after handling an exit
        if not deliverable(s, v):
            vmresume(s, tb, v)
        else:
            l1_take(s, tb, v)
    elif ph == MMIO_NEXT:  # the next access of a multi-access IOAPIC register write
        mmio_exit(s, tb, v)
    elif ph == ACT:
        act(s, tb, pf, v)
    elif ph == SERVICE_DONE:
        g = s[s[O_GRP] + v]
        any_handled = False
        # handled per pin, in pin order (the reference's sorted dict)
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
            d = s[s[O_PGDEV] + g * s[CFG + C_W] + k]
            h = device_service(s, tb, pf, d)
            any_handled = any_handled or h
            if s[s[O_PDEV] + d * N_DEV + D_PIN] >= 0:
                s[s[O_HANDLED_PIN] + s[s[O_PDEV] + d * N_DEV + D_PIN]] |= 2 | int(h)
        if not any_handled:
            s[S_SPURIOUS] += 1
        for pin in range(s[CFG + C_PINS]):
            hp = s[s[O_HANDLED_PIN] + pin]
            if hp:
                s[s[O_HANDLED_PIN] + pin] = 0
                mit_handler_done(s, tb, pf, v, pin, (hp & 1) != 0)
        advance(s, v, t)
    elif ph == EOI_L0:  # L0 emulates the EOI; a level vector's EOI goes on to the IOAPIC
        g = s[s[O_EOI_VEC] + v]
        if g == -2:
            g = lapic_eoi(s, tb, v)
        broadcast = False
        if g >= 0:
            emit(s, tb, E_KVM_EOI, v, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0)
            level = (s[s[O_TMR] + v] >> g) & 1
            honoured = s[s[O_PGRP] + g * N_GRP + G_SUPPRESS] != 0 and (s[CFG + C_SUPPRESS_ON] != 0 or split == 0)
            broadcast = level != 0 and s[s[O_PGRP] + g * N_GRP + G_IOAPIC] != 0 and not honoured
        s[s[O_EOI_VEC] + v] = g
        if broadcast and split:
            s[s[O_UEXITS] + U_IOAPIC_EOI] += 1
            emit(s, tb, E_USERSPACE_EXIT, U_IOAPIC_EOI, 0, 0, 0)
            switch(s, tb, v, USER, 0, 0, 0, 0, 0)
            at(s, v, EOI_USER, t + s[s[O_PI] + s[CFG + C_P_USERSPACE_EXIT]] // 2)
        elif broadcast:
            eoi_broadcast(s, tb, pf, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
            start = enter(s, tb, v, L1, L0, s[s[O_PI] + s[CFG + C_P_IOAPIC]], True)
            advance(s, v, start)
        else:
            start = enter(s, tb, v, L1, 0, 0, False)
            advance(s, v, start)
    elif ph == EOI_USER or ph == MMIO_USER:  # QEMU: the IOAPIC write, then back into the guest
        if ph == EOI_USER:
            eoi_broadcast(s, tb, pf, s[s[O_PGRP] + (s[s[O_EOI_VEC] + v]) * N_GRP + G_VECTOR])
        else:
            mmio_access(s, tb, pf, v)
        ue = s[s[O_PI] + s[CFG + C_P_USERSPACE_EXIT]]
        rest = ue - ue // 2
        start = enter(s, tb, v, L1, USER, s[s[O_PI] + s[CFG + C_P_IOAPIC]] + rest, True)
        if ph == EOI_USER:
            advance(s, v, start)
        else:
            mmio_next(s, v, start)
    elif ph == MMIO_L0:
        if split:
            s[s[O_UEXITS] + U_MMIO] += 1
            emit(s, tb, E_USERSPACE_EXIT, U_MMIO, 0, 0, 0)
            switch(s, tb, v, USER, 0, 0, 0, 0, 0)
            at(s, v, MMIO_USER, t + s[s[O_PI] + s[CFG + C_P_USERSPACE_EXIT]] // 2)
        else:
            mmio_access(s, tb, pf, v)
            start = enter(s, tb, v, L1, L0, s[s[O_PI] + s[CFG + C_P_IOAPIC]], True)
            mmio_next(s, v, start)
    elif ph == VMRESUME_L0:  # L0 enters L2; with an interrupt pending for L1, an immediate exit
        if deliverable(s, v):
            s[S_IMMEDIATE] += 1
            timer = mit_immediate(s, pf, v)
            start = enter(s, tb, v, L2, 0, 0, False)
            s[s[O_PT_ARMED] + v] = 1
            s[s[O_PT_DEADLINE] + v] = start + max(timer, 0)
        else:
            start = enter(s, tb, v, L2, 0, 0, False)
        start_run(s, v, start)
    else:  # REFLECT: L0 reflects L2's completion exit to L1, which continues the waiting handler
        g = s[s[O_GRP] + v]
        emit(s, tb, E_NESTED_INJECT, 0, X_MSR_WRITE if x2apic else X_APIC_ACCESS, 1, 0)
        start = enter(s, tb, v, L1, L0, s[s[O_PI] + s[CFG + C_P_NESTED_EXIT]], True)
        s[s[O_WAITING] + g] = 0
        s[s[O_PC] + v] = s[s[O_WAIT_PC] + g]
        schedule_step(s, v, start)


# handler programs


@inner
def before(s, g, pc):
    p = s[s[O_PGBEFORE] + g * s[CFG + C_W] + pc]
    return 0 if p < 0 else s[s[O_PI] + p]


@inner
def start_handler(s, v, g, t0):
    s[s[O_GRP] + v] = g
    s[s[O_PC] + v] = 0
    schedule_step(s, v, t0)


@inner
def schedule_step(s, v, t0):
    """Run the step at ``pc`` after its delay, from ``t0``; FORWARD steps without a delay
    happen at once."""
    g = s[s[O_GRP] + v]
    while s[s[O_PGSTEP] + g * s[CFG + C_W] + s[s[O_PC] + v]] == A_FORWARD and before(s, g, s[s[O_PC] + v]) == 0:
        forward(s, g)
        s[s[O_PC] + v] += 1
    at(s, v, ACT, t0 + before(s, g, s[s[O_PC] + v]))


@inner
def advance(s, v, t0):
    s[s[O_PC] + v] += 1
    schedule_step(s, v, t0)


@inner
def forward(s, g):
    for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
        d = s[s[O_PGDEV] + g * s[CFG + C_W] + k]
        if not s[s[O_FORWARDED] + d]:
            s[s[O_FORWARDED] + d] = 1
            s[s[O_SVC_REM] + d] = s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_SERVICE]]


@inner
def act(s, tb, pf, v):
    g, pc, t = s[s[O_GRP] + v], s[s[O_PC] + v], s[S_T]
    action = s[s[O_PGSTEP] + g * s[CFG + C_W] + pc]
    if action == A_FORWARD:
        forward(s, g)
        advance(s, v, t)
    elif action == A_SERVICE:
        dur = np.int64(0)
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
            d = s[s[O_PGDEV] + g * s[CFG + C_W] + k]
            if s[s[O_PENDING] + d] > 0:
                dur += s[s[O_PI] + s[s[O_PDEV] + d * N_DEV + D_SERVICE]]
        at(s, v, SERVICE_DONE, t + dur)
    elif action == A_EOI:
        guest_eoi(s, tb, pf, v)
    elif action == A_IOAPIC_EOI or action == A_MASK or action == A_UNMASK:
        # the handler writes an IOAPIC register: each of its MMIO_N accesses is an MMIO exit
        s[s[O_MMIO_ACTION] + v] = action
        if s[CFG + C_BARE]:
            ioapic_write(s, tb, pf, v, action)
            advance(s, v, t + MMIO_N[action] * s[s[O_PI] + s[CFG + C_P_MMIO]])
        else:
            s[s[O_MMIO_STEP] + v] = 0
            mmio_exit(s, tb, v)
    elif action == A_WAIT:
        s[s[O_WAITING] + g] = 1
        s[s[O_WAIT_PC] + g] = pc + 1
        vmresume(s, tb, v)
    else:  # A_RETURN: end of the handler, VMRESUME (nested L1) or iret
        if s[CFG + C_NESTED]:
            vmresume(s, tb, v)
            return
        if s[CFG + C_BARE]:
            emit(s, tb, E_HANDLER_EXIT, s[s[O_PGRP] + g * N_GRP + G_IRQ], 0, 0, 0)
        s[s[O_GRP] + v] = -1
        if deliverable(s, v):
            if s[CFG + C_BARE] or s[CFG + C_APICV]:
                at(s, v, TAKE, t)
            else:
                exit_(s, tb, X_INTERRUPT_WINDOW, RIP_L1_IRET, 0)
                switch(s, tb, v, L0, 0, 0, 0, 0, 0)
                at(s, v, L0_INJECT, t + s[s[O_PI] + s[CFG + C_P_VMEXIT]])
        else:
            start_run(s, v, t)


@inner
def mmio_exit(s, tb, v):
    exit_(s, tb, X_EPT_MISCONFIG, RIP_L1_MMIO, 0)
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)
    at(s, v, MMIO_L0, s[S_T] + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_MMIO]])


@inner
def mmio_access(s, tb, pf, v):
    """The IOAPIC side of the current access: only the acting one changes state."""
    action = s[s[O_MMIO_ACTION] + v]
    if s[s[O_MMIO_STEP] + v] == MMIO_ACTING[action]:
        ioapic_write(s, tb, pf, v, action)


@inner
def mmio_next(s, v, start):
    """Back in the guest at ``start``: the next access, or the handler's next step."""
    s[s[O_MMIO_STEP] + v] += 1
    if s[s[O_MMIO_STEP] + v] < MMIO_N[s[s[O_MMIO_ACTION] + v]]:
        at(s, v, MMIO_NEXT, start)
    else:
        advance(s, v, start)


@inner
def l1_take(s, tb, v):
    """L1, interrupts enabled, takes the highest deliverable interrupt through its IDT."""
    if s[CFG + C_APICV]:
        start_handler(s, v, ack(s, tb, v), s[S_T])
    else:
        exit_(s, tb, X_INTERRUPT_WINDOW, RIP_L1_STI, 0)
        switch(s, tb, v, L0, 0, 0, 0, 0, 0)
        at(s, v, L0_INJECT, s[S_T] + s[s[O_PI] + s[CFG + C_P_VMEXIT]])


@inner
def vmresume(s, tb, v):
    """L1 executes VMRESUME; a KVM-like L1 first takes its pending interrupts."""
    if s[CFG + C_L1_IRQ_WINDOW] and deliverable(s, v):
        l1_take(s, tb, v)
        return
    s[s[O_GRP] + v] = -1
    exit_(s, tb, X_VMRESUME, RIP_L1_VMRESUME, 0)
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)
    at(s, v, VMRESUME_L0, s[S_T] + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_NESTED_ENTRY]])


@inner
def guest_eoi(s, tb, pf, v):
    """The handler writes the LAPIC EOI register."""
    s[S_EOI_COUNT] += 1
    t = s[S_T]
    if s[CFG + C_BARE]:
        g = lapic_eoi(s, tb, v)
        if g >= 0:
            emit(s, tb, E_EOI, v, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0)
            if (s[s[O_TMR] + v] >> g) & 1:
                eoi_broadcast(s, tb, pf, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
        advance(s, v, t + s[s[O_PI] + s[CFG + C_P_EOI]])
        return
    if s[CFG + C_APICV]:
        isr = s[s[O_ISR] + v]
        g = high(s, isr) if isr else -1
        if g >= 0 and s[s[O_PGRP] + g * N_GRP + G_EOI_EXIT]:
            lapic_eoi(s, tb, v)
            exit_(s, tb, X_EOI_INDUCED, RIP_L1_EOI, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
            s[s[O_EOI_VEC] + v] = g
            switch(s, tb, v, L0, 0, 0, 0, 0, 0)
            at(s, v, EOI_L0, t + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_EOI]])
        else:
            lapic_eoi(s, tb, v)
            advance(s, v, t)
        return
    x2 = s[CFG + C_X2APIC]
    exit_(s, tb, X_MSR_WRITE if x2 else X_APIC_ACCESS, RIP_L1_EOI, 0x80B if x2 else 0x10B0)
    s[s[O_EOI_VEC] + v] = -2
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)
    at(s, v, EOI_L0, t + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_EOI]])


@inner
def ioapic_write(s, tb, pf, v, action):
    g = s[s[O_GRP] + v]
    if action == A_IOAPIC_EOI:
        if s[CFG + C_SPLIT] or s[CFG + C_BARE]:
            emit(s, tb, E_IOAPIC_EOI, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0, 0)
            eoi_broadcast(s, tb, pf, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
        else:  # KVM's IOAPIC is version 0x11: ioapic_mmio_write ignores offset 0x40
            emit(s, tb, E_IOAPIC_EOI, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 1, 0, 0)
    else:
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NPINS]):
            redirect_write(s, tb, pf, s[s[O_PGPIN] + g * s[CFG + C_W] + k], 1 if action == A_MASK else 0)


# ---------------------------------------------------------------- the loop


@inner
def finish(s, t_end):
    """Close the books at ``t_end``."""
    s[S_T] = t_end
    for v in range(s[CFG + C_V]):
        if s[s[O_RUN_START] + v] != NEVER:
            end_run(s, v, max(t_end, s[s[O_RUN_START] + v]))
        a = s[O_ACC] + v * 4
        over = s[s[O_SINCE] + v] - t_end
        if over <= 0:
            s[a + s[s[O_MODE] + v]] += t_end - s[s[O_SINCE] + v]
        else:
            p = s[O_PRE] + v * 4
            for k in range(s[s[O_PRE_N] + v] - 1, -1, -1):
                m, dt = s[p + 2 * k], s[p + 2 * k + 1]
                take = min(dt, over)
                s[a + m] -= take
                over -= take
        close_stall(s, v, t_end)
    for d in range(s[CFG + C_D]):
        s[s[O_DEV_PENDING] + d] = s[s[O_FRESH] + d]
    s[S_STAT_END_T] = t_end
    s[S_DONE] = 1


@entry
def lane_init(s, tb, pf, key0, key1, tracing):
    """A fresh lane at time 0 (``s`` holds the program and the lane's parameters, up to
    ``s[O_STATE]``; ``key0, key1``: its random key as int64): plugin state initialised and
    first arrivals drawn."""
    s[N_OFFSETS:CFG] = 0
    s[s[O_STATE]:] = 0
    s[S_KEY0] = key0
    s[S_KEY1] = key1
    s[S_TRACING] = tracing
    s[S_END_T] = s[s[O_PI] + s[CFG + C_P_DURATION]]
    s[S_SAMPLE_T] = NEVER
    for k in (S_FIRST_IRQ, S_TTP, S_TTP_L2):
        s[k] = NEVER
    V = s[CFG + C_V]
    for k in range(s[CFG + C_D]):
        s[s[O_ARR_T] + k] = NEVER
        s[s[O_EPISODE] + k] = NEVER
        s[s[O_LAT_MIN] + k] = NEVER
    for k in range(s[CFG + C_NT]):
        s[s[O_TIMER_T] + k] = NEVER
    for v in range(V):
        s[s[O_PHASE] + v] = RUN_IDLE
        s[s[O_VT] + v] = NEVER
        s[s[O_MODE] + v] = s[CFG + C_INNER]
        s[s[O_GRP] + v] = -1
        s[s[O_EOI_VEC] + v] = -1
        s[s[O_STALL_START] + v] = NEVER
        s[s[O_PT_DEADLINE] + v] = NEVER
        trace_mode(s, tb, v, 0, s[CFG + C_INNER])
    npins = s[CFG + C_PINS]
    for m in range(s[CFG + C_M]):
        base = s[O_MST] + s[s[O_PMIT] + m * N_MIT + M_STATE]
        kind = s[s[O_PMIT] + m * N_MIT + M_KIND]
        if kind == MIT_PT_THROTTLE:
            for v in range(V):
                s[base + v] = -1  # last_rip
        elif kind == MIT_LINUX_SPURIOUS:
            for p in range(npins):
                s[base + 2 * npins + p] = -(2**62)  # last_unhandled
    for d in range(s[CFG + C_D]):
        s[s[O_ARR_T] + d] = arrival_next(s, pf, d, 0, True)


@entry
def lane_resume(s, tb, pf):
    """Run the lane's events until the end of the run, or until its trace buffer is half
    full (then return; call again after taking the records out). Returns 1 when done."""
    max_events = s[s[O_PI] + s[CFG + C_P_MAX_EVENTS]]
    D, NT, V = s[CFG + C_D], s[CFG + C_NT], s[CFG + C_V]
    half = tb.shape[0] // 2
    while not s[S_DONE]:
        if s[S_TRACING] and s[S_NTB] > half:
            return 0
        # the next event: (time, slot), slots END, SAMPLE, arrivals, timers, vCPUs
        best_t, kind, idx = s[S_END_T], 0, 0
        if s[S_SAMPLE_T] < best_t:
            best_t, kind = s[S_SAMPLE_T], 1
        for i in range(D):
            if s[s[O_ARR_T] + i] < best_t:
                best_t, kind, idx = s[s[O_ARR_T] + i], 2, i
        for i in range(NT):
            if s[s[O_TIMER_T] + i] < best_t:
                best_t, kind, idx = s[s[O_TIMER_T] + i], 3, i
        for i in range(V):
            if s[s[O_VT] + i] < best_t:
                best_t, kind, idx = s[s[O_VT] + i], 4, i
        s[S_T] = best_t
        if kind == 0:
            finish(s, s[S_END_T])
            break
        if kind == 4:
            s[S_THREAD] = idx
            s[s[O_VT] + idx] = NEVER
            vcpu_event(s, tb, pf, idx)
        elif kind == 2:
            s[S_THREAD] = QEMU
            arrival(s, tb, pf, idx)
        elif kind == 3:
            s[S_THREAD] = s[CFG + C_OWNER]
            s[s[O_TIMER_T] + idx] = NEVER
            for m in range(s[CFG + C_M]):
                if s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE] == idx and s[s[O_PMIT] + m * N_MIT + M_KIND] != MIT_PT_THROTTLE:
                    mit_timer(s, tb, pf, m)
        if s[S_EVENTS] >= max_events:
            s[S_TRUNCATED] = 1
            finish(s, s[S_T])
            break
    return 1


@entry
def collect(s, out, hist, hist_full, i):
    """Lane ``i``'s counters into ``out[i]`` (the scalars, then ``s[s[O_ACC]:s[O_LAT_HIST]]``),
    its latency histogram's low 16 bits into ``hist[i]`` (``uint16[D, NB]``); whole counts
    into ``hist_full[i]`` if it has rows, else ``1`` is returned when a count needs them."""
    for k in range(N_OUT_SCALARS):
        out[i, k] = s[S_FIRST_IRQ + k]
    lo, hi = s[O_ACC], s[O_LAT_HIST]
    for k in range(hi - lo):
        out[i, N_OUT_SCALARS + k] = s[lo + k]
    over = 0
    nb = s[CFG + C_NB]
    for d in range(s[CFG + C_D]):
        for b in range(nb):
            c = s[hi + d * nb + b]
            hist[i, d, b] = c & 0xFFFF
            if hist_full.shape[0]:
                hist_full[i, d, b] = c
            elif c > 0xFFFF:
                over = 1
    return over


@njit(cache=True, parallel=True, error_model="numpy")
def run_lanes(tmpl, size, pf_shared, var_idx, var_i, var_f, keys, out, hist, hist_full, over):
    """Run every lane to its end, in parallel, untraced. Lane ``i``'s state starts as the
    program's template ``tmpl`` (``int64[s[O_STATE]]``: the program and the shared
    parameters) grown to ``size``; its parameters ``p`` with ``var_idx[p] >= 0`` come from
    ``var_i/var_f[i, var_idx[p]]``, its key from ``keys[i]`` (``int64[2]``). It leaves its
    results as :func:`collect` says (``over[i]``: its histogram needs ``hist_full``)."""
    n = keys.shape[0]
    n_params = pf_shared.shape[0]
    for i in prange(n):
        s = np.empty(size, np.int64)
        s[:tmpl.shape[0]] = tmpl
        pf = pf_shared.copy()
        for p in range(n_params):
            k = var_idx[p]
            if k >= 0:
                s[s[O_PI] + p] = var_i[i, k]
                pf[p] = var_f[i, k]
        tb = np.empty((0, TB_WIDTH), np.int64)
        lane_init(s, tb, pf, keys[i, 0], keys[i, 1], 0)
        lane_resume(s, tb, pf)
        over[i] = collect(s, out, hist, hist_full, i)
