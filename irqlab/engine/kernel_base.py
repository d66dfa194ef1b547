"""The per-lane kernel, part 1: random numbers, trace records, time accounting, the LAPIC.

See :mod:`irqlab.engine.kernel` for the kernel's design; the decorators ``inner`` and
``entry`` every kernel function uses are defined here.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants

# Every function is cached on disk. None allocates, so none needs Numba's reference counting
# (_nrt=False: no incref/decref around every call); only the entry points get a CPython
# wrapper; error_model="numpy": no zero-division checks (no divisor here can be 0).


def one_specialization(dispatcher):
    """Make calls from compiled code type constant arguments as their plain types.

    Numba compiles a function called from compiled code once per distinct argument
    types, and a constant argument (``at(s, v, KICK, t)``, ``enter(..., True)``) has a
    literal type of its own (``Literal[int](4)``): the kernel's small helpers were
    compiled 321 times instead of 67, the main cost of its first compile. LLVM
    inlines the helpers and propagates the constants anyway, so nothing is lost."""
    from numba.core import types

    if not hasattr(dispatcher, "get_call_template"):  # NUMBA_DISABLE_JIT=1: njit gave the Python function
        return dispatcher
    typed = dispatcher.get_call_template

    def get_call_template(args, kws):
        return typed(tuple(types.unliteral(a) for a in args), {k: types.unliteral(a) for k, a in kws.items()})

    dispatcher.get_call_template = get_call_template
    return dispatcher


def inner(fn):
    # forceinline stated, not inherited: a callee first compiled from a hot caller is not hot
    return one_specialization(njit(cache=True, error_model="numpy", _nrt=False, no_cpython_wrapper=True,
                                   no_cfunc_wrapper=True, forceinline=False)(fn))


def hot(fn):
    """An :func:`inner` function that LLVM always inlines into its callers (``alwaysinline``):
    a step of a hot path kept as its own function for reading. Left to LLVM's inliner such
    a step stays a call, and a call passes each array as its seven fields."""
    return one_specialization(njit(cache=True, error_model="numpy", _nrt=False, no_cpython_wrapper=True,
                                   no_cfunc_wrapper=True, forceinline=True)(fn))


def entry(fn):
    return one_specialization(njit(cache=True, error_model="numpy", _nrt=False, no_cfunc_wrapper=True)(fn))

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


@inner
def l2_exit(s, tb, v, reason, qual):
    """L2 exits to L0 with ``reason``: ``kvm_exit`` and ``kvm_nested_vmexit``; the
    preemption timer is disarmed (docs/model.md, L2's exits to L1)."""
    exit_(s, tb, reason, l2_rip(s, v), qual)
    emit(s, tb, E_NESTED_VMEXIT, l2_rip(s, v), reason, 0, 0)
    s[s[O_PT_ARMED] + v] = 0
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)


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
    et = s[S_T] + (pre_dt if has_pre else 0)
    emit_at(s, tb, et, E_KVM_ENTRY, v, 0, 0, 0)
    if s[O_RT_P]:  # guest actions (kernel_routes)
        kernel_routes.entered(s, v, et)
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
    tpr = s[s[O_TPR] + T_CLS] if s[CFG + C_TPR] & TPR_ON else 0  # TPR[7:4] (kernel_tpr)
    if not isr and not tpr:
        return True
    # PPR[7:4] is the larger of TPR[7:4] and the highest in-service class (SDM 11.8.3.1)
    ppr = (s[s[O_PGRP] + (high(s, isr)) * N_GRP + G_VECTOR] >> 4) if isr else 0
    return (s[s[O_PGRP] + (high(s, irr)) * N_GRP + G_VECTOR] >> 4) > max(tpr, ppr)


@inner
def ack(s, tb, v):
    g = high(s, s[s[O_IRR] + v])
    s[s[O_IRR] + v] &= ~(np.int64(1) << g)
    s[s[O_ISR] + v] |= np.int64(1) << g
    if s[CFG + C_TPR] & TPR_SVI:
        s[s[O_TPR] + T_SVI + v] = -1  # vmcs01's SVI follows ISR again (kernel_tpr)
    trace_lapic(s, tb, v)
    return g


@inner
def lapic_eoi(s, tb, v):
    isr = s[s[O_ISR] + v]
    if not isr:
        return -1
    g = high(s, isr)
    s[s[O_ISR] + v] = isr & ~(np.int64(1) << g)
    if s[CFG + C_TPR] & TPR_SVI:
        s[s[O_TPR] + T_SVI + v] = -1  # vmcs01's SVI follows ISR again (kernel_tpr)
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
    if s[O_RT_P]:
        kernel_routes.posted(s, tb, v, bit)
    s[s[O_IRR] + v] |= bit
    trace_lapic(s, tb, v)
    notify(s, tb, v)
    return True


@inner
def notify(s, tb, v):
    """A new interrupt is pending at ``v``: a running guest is interrupted (reference
    ``notify``; ``tb`` for hooks that record)."""
    if kernel_idle.idle_on(s) and kernel_idle.idle_notify(s, tb, v):
        return
    ph = s[s[O_PHASE] + v]
    running = ph == RUN_IDLE or ph == RUN_SVC or ph == RUN_PT or ph == HLT or ph == RUN_EXIT
    if not running or descheduled(s, v):
        return
    t = max(s[S_T], s[s[O_SINCE] + v])
    if s[CFG + C_NESTED] or (not s[CFG + C_BARE] and not s[CFG + C_APICV]):
        at(s, v, KICK, t)
    elif deliverable(s, v):
        at(s, v, TAKE, t)


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


from irqlab.engine import kernel_routes  # noqa: E402  (its hooks use this module's records: imported by module)
# kernel_idle (idle vCPUs) uses this module's helpers; accept reaches it through the module
# (bound when accept compiles), so either module may be imported first
from irqlab.engine import kernel_idle  # noqa: E402
from irqlab.engine.kernel_timers import descheduled  # noqa: E402  (kernel_timers uses this module)
