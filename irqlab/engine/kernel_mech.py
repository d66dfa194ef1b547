"""The per-lane kernel, issue 12's mechanisms: VFIO INTx through KVM's resampling irqfd,
the lazy EOI's zero-time cycle, and the detector of events recurring at one instant.

The same rules as :mod:`irqlab.engine.mech_lockstep` (same names, same order of
records); docs/model.md, "Passthrough INTx (VFIO)" and "AMD SVM", states the rules. The
parts that go on into the IOAPIC (``line_effect``, ``eoi_one``, ``lazy_eoi``) are in
:mod:`irqlab.engine.kernel_ioapic`, which calls these.

State (offsets in :mod:`irqlab.engine.kernel_ids`): ``O_HOST_T[d]`` when KVM's irqfd
asserts the GSI of VFIO device ``d`` (its host slot), ``O_HOST_MASKED[d]`` VFIO masked the
host line, ``O_RS_UP[pin]`` the resampler's source holds the GSI high; ``S_ZT_*`` the
zero-time detectors, ``O_ZT_NAME/O_ZT_EV[ZT_HIST]`` the names of the last events at one
instant (:func:`event_name`) and the record count after each.
"""

from __future__ import annotations

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import emit, hot, inner  # noqa: F401

# ---------------------------------------------------------------- VFIO INTx


@inner
def pin_vfio(s, pin):
    """Whether a VFIO device is on ``pin`` (a resampler is registered for its GSI)."""
    if not s[CFG + C_VFIO]:
        return False
    for d in range(s[CFG + C_D]):
        if s[s[O_PDEV] + d * N_DEV + D_VFIO] and s[s[O_PDEV] + d * N_DEV + D_PIN] == pin:
            return True
    return False


@inner
def vfio_rise(s, tb, d):
    """The passed-through device asserts its line: the host's ``vfio_intx_handler`` masks it
    and signals the irqfd, which asserts the GSI ``costs.vfio`` later."""
    if s[s[O_HOST_MASKED] + d]:
        return
    s[s[O_HOST_MASKED] + d] = 1
    emit(s, tb, E_VFIO_INTX, d, 0, 0, 0)
    k = s[O_HOST_T] + d
    s[k] = min(s[k], s[S_T] + s[s[O_PI] + s[CFG + C_P_VFIO]])


@inner
def host_raise(s, tb, d):
    """KVM's irqfd injects for device ``d``: ``kvm_set_irq(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID,
    gsi, 1)``. Returns the line the IOAPIC then sees (the caller's ``line_effect``)."""
    pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
    if not s[s[O_RS_UP] + pin]:
        s[s[O_RS_UP] + pin] = 1
        s[s[O_P_LINE] + pin] += 1
    emit(s, tb, E_KVM_SET_IRQ, pin, 1, 1, 0)
    return 1 if s[s[O_P_LINE] + pin] > 0 else 0


@inner
def resampler_ack_head(s, tb, pin):
    """KVM's ack notifier for a GSI with a resampler (``irqfd_resampler_ack``) up to the
    IOAPIC's view of the line: de-assert the resampler's source. Returns the line level
    (the caller runs ``line_effect`` with it, then :func:`vfio_unmask`)."""
    emit(s, tb, E_KVM_ACK_IRQ, pin, 0, 0, 0)
    if s[s[O_RS_UP] + pin]:
        s[s[O_RS_UP] + pin] = 0
        s[s[O_P_LINE] + pin] -= 1
    emit(s, tb, E_KVM_SET_IRQ, pin, 0, 1, 0)
    return 1 if s[s[O_P_LINE] + pin] > 0 else 0


@inner
def vfio_unmask(s, tb, pin):
    """VFIO's ``vfio_pci_intx_unmask_handler`` for each device on ``pin``: unmask the host
    line; a device still asserting fires again (masked again, irqfd ``costs.vfio`` later)."""
    for d in range(s[CFG + C_D]):
        if not s[s[O_PDEV] + d * N_DEV + D_VFIO] or s[s[O_PDEV] + d * N_DEV + D_PIN] != pin:
            continue
        if not s[s[O_HOST_MASKED] + d]:
            continue
        still = s[s[O_ASSERTED] + d]
        emit(s, tb, E_VFIO_UNMASK, d, 1 if still else 0, 0, 0)
        s[s[O_HOST_MASKED] + d] = 0
        if still:
            vfio_rise(s, tb, d)


@inner
def unmask_resample(s, tb, pin):
    """KVM fef8f2b90edb: unmasking a level pin with ``irr`` set and Remote IRR clear that has a
    resampler clears ``irr`` and notifies the resampler instead of delivering. Returns
    whether it applied (else the caller services the pin)."""
    if not (s[CFG + C_RESAMPLE_UNMASK] and pin_vfio(s, pin)):
        return False
    emit(s, tb, E_RESAMPLE, pin, 0, 0, 0)
    s[s[O_P_IRR] + pin] = 0
    vfio_unmask(s, tb, pin)
    return True


# ---------------------------------------------------------------- zero-time cycles


@inner
def lazy_enter(s, tb, pin):
    """The start of ``lazy_eoi`` (f458d039db7e) for a level ``pin``: whether it applies (the
    vector is in neither IRR nor ISR at its destination; not past a zero-time loop); at
    ZT_DEPTH nested turns the loop is reported instead. True: a turn began (depth + 1,
    its record emitted); the caller runs ``eoi_one`` and then :func:`lazy_leave`."""
    if not (s[CFG + C_LAZY_LEVEL] and s[s[O_PPIN_LEVEL] + pin]) or s[S_ZT_LOOP]:
        return False
    g = s[s[O_PPIN_GROUP] + pin]
    v = s[s[O_PGRP] + g * N_GRP + G_DEST]
    if ((s[s[O_IRR] + v] | s[s[O_ISR] + v]) >> g) & 1:
        return False
    if s[S_ZT_DEPTH] >= ZT_DEPTH:
        # one turn of the cycle: the records since the innermost turn began
        s[S_ZT_LOOP] = 1
        s[S_ZT_CYCLE] = s[S_EVENTS] - s[S_ZT_TURN]
        emit(s, tb, E_ZERO_TIME_LOOP, s[S_ZT_CYCLE], 0, 0, 0)
        return False
    s[S_ZT_DEPTH] += 1
    emit(s, tb, E_LAZY_EOI, pin, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0)
    s[S_ZT_TURN] = s[S_EVENTS] - 1
    return True


@inner
def lazy_leave(s):
    s[S_ZT_DEPTH] -= 1


@inner
def event_name(s, kind, i):
    """An event's name in a zero-time cycle, as an integer (``Decoder`` spells it as
    ``Lockstep.event_name`` does): its slot, index, and a vCPU's phase and action."""
    ph, action = 0, 0
    if kind == EV_VCPU:
        ph = s[s[O_PHASE] + i]
        if ph == ACT:
            g = s[s[O_GRP] + i]
            action = s[s[O_PGSTEP] + g * s[CFG + C_W] + s[s[O_PC] + i]]
    return ((kind * 65536 + i) * 64 + ph) * 16 + action


@inner
def deep_in_instant(s):
    """Whether the next event (at ``s[S_T]``) is among the last ZT_HIST before ZT_EVENTS."""
    return s[S_T] == s[S_ZT_LAST_T] and s[S_ZT_SAME] + 1 > ZT_EVENTS - ZT_HIST


@hot
def same_instant(s, tb, name):
    """After an event: count the lane's events at one instant (``name`` >= 0: the event's,
    among the last ZT_HIST before ZT_EVENTS); at ZT_EVENTS report the cycle they repeat
    (its shortest period of names) and return True. (Inlined into the event loop: it runs
    after every event; :func:`instant_name` is its rare rest.)"""
    if s[S_T] != s[S_ZT_LAST_T]:
        s[S_ZT_LAST_T] = s[S_T]
        s[S_ZT_SAME] = 0
        s[S_ZT_NH] = 0
        return False
    s[S_ZT_SAME] += 1
    if name < 0:
        return False
    return instant_name(s, tb, name)


@inner
def instant_name(s, tb, name):
    """:func:`same_instant` for an event named ``name``: keep its name; at ZT_EVENTS report."""
    nh = s[S_ZT_NH]
    s[s[O_ZT_NAME] + nh] = name
    s[s[O_ZT_EV] + nh] = s[S_EVENTS]
    nh += 1
    s[S_ZT_NH] = nh
    if s[S_ZT_SAME] < ZT_EVENTS:
        return False
    names = s[O_ZT_NAME]
    p = nh // 2 - 1  # mech_lockstep.describe_cycle
    for k in range(1, nh // 2):
        same = True
        for j in range(k):
            if s[names + nh - k + j] != s[names + nh - 2 * k + j]:
                same = False
                break
        if same:
            p = k
            break
    n = s[s[O_ZT_EV] + nh - 1] - s[s[O_ZT_EV] + nh - 1 - p]
    s[S_ZT_LOOP] = 1
    s[S_ZT_CYCLE] = n
    emit(s, tb, E_ZERO_TIME_LOOP, n, 1, p, 0)
    return True
