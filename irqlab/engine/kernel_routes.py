"""The per-lane kernel, guest actions that change routes (issue 13, docs/model.md "Guest
actions: route changes").

The same rules as :mod:`irqlab.engine.routes_lockstep` (same names, same order of
records). The program (``s[O_RT_P:]``, :func:`irqlab.engine.kernelprog._pack_routes`) is a
header (``RP_*`` in :mod:`irqlab.engine.kernel_ids`; ``s[O_RT_P]`` = 0: the program has
no actions, and the rest of this module does nothing), the actions and their writes, and
every vCPU's EOI-exit bits at the start. The state (``s[O_RT:]``) is the counters
``RT_MISROUTED``, ``RT_DEAD`` (ps), then the arrays whose starts the header gives:
``RP_ENTRY[v]`` (the time of the vCPU's last VM entry), ``RP_PIR[v]`` (group bits still in
the posted-interrupt descriptor), ``RP_SCAN_REQ[v]`` (KVM_REQ_SCAN_IOAPIC pending),
``RP_BITS[v]`` (the EOI-exit bitmap, bit g = vector group g), ``RP_RTE[pin]`` (the
redirection table's destination), ``RP_KDEST[pin]`` (KVM's route for the pin),
``RP_DEAD[pin]`` (when the pin's Remote IRR was orphaned; NEVER: it is not),
``RP_MSI[d]`` (an MSI device's destination) and ``RP_ACT[k]`` (action ``k``'s next time).

The hooks the other kernel modules call: :func:`entered` (``enter``), :func:`posted`
(``accept``), :func:`settle` (``vcpu_event``), :func:`pin_dest` and :func:`misroute`
(``deliver``), :func:`dev_dest` (``arrival``), :func:`eoi_exit` and :func:`eoi_unseen`
(``guest_eoi``), :func:`rirr_cleared` (``eoi_tail``), the redirection write's
:func:`rte_write`, :func:`kernel_route`, :func:`rescan_pin` and :func:`split_update`, and
:func:`action_event`, :func:`next_action`, :func:`routes_init`, :func:`routes_finish`,
:func:`routes_collect` in the event loop.
"""

from __future__ import annotations

import numpy as np

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import emit, emit_at, inner

RT_SCAN_PENDING_PIR, RT_SCAN_PENDING, RT_SCAN_ROUTE = range(3)  # ir.EOI_SCANS order (RP_SCAN)


@inner
def rt_on(s):
    """Whether the program has guest actions (else the routes are the program's own)."""
    return s[O_RT_P] != 0


@inner
def rt(s, field, i):
    """Where element ``i`` of the state array ``field`` (an ``RP_*`` start) is in ``s``."""
    return s[O_RT] + s[s[O_RT_P] + field] + i


@inner
def routes_init(s):
    """A fresh lane's routes: every pin's and MSI's destination as the program has it, the
    EOI-exit bitmaps as compiled, and each action's first time (its ``at`` parameter)."""
    if not rt_on(s):
        return
    prog = s[O_RT_P]
    for d in range(s[CFG + C_D]):
        dest = s[s[O_PDEV] + d * N_DEV + D_DEST]
        s[rt(s, RP_MSI, d)] = dest
        pin = s[s[O_PDEV] + d * N_DEV + D_PIN]
        if pin >= 0:
            s[rt(s, RP_RTE, pin)] = dest
            s[rt(s, RP_KDEST, pin)] = dest
    for pin in range(s[CFG + C_PINS]):
        s[rt(s, RP_DEAD, pin)] = NEVER
    for v in range(s[CFG + C_V]):
        s[rt(s, RP_BITS, v)] = s[prog + s[prog + RP_BITS0] + v]
    for k in range(s[prog + RP_N]):
        s[rt(s, RP_ACT, k)] = s[s[O_PI] + s[prog + RP_HEAD + k * RP_W]]


# ---------------------------------------------------------------- actions


@inner
def next_action(s):
    """``(time, k)`` of the earliest action (the first of equal times)."""
    best_t, best = NEVER, 0
    for k in range(s[s[O_RT_P] + RP_N]):
        t = s[rt(s, RP_ACT, k)]
        if t < best_t:
            best_t, best = t, k
    return best_t, best


@inner
def action_event(s, tb, pf, plug, k):
    """Action ``k`` happens: its writes in order, then its next time (``every``)."""
    prog = s[O_RT_P]
    a = prog + RP_HEAD + k * RP_W
    w0 = prog + s[a + 3]
    for j in range(s[a + 2]):
        w = w0 + j * RP_W
        target, idx, dest, mask = s[w], s[w + 1], s[w + 2], s[w + 3]
        if target == RT_IOAPIC:
            masked = s[s[O_P_MASKED] + idx] if mask < 0 else mask
            kernel_ioapic.redirect_write(s, tb, pf, plug, idx, masked, dest)
        else:
            emit(s, tb, E_RT_MSI_WRITE, idx, dest, 0, 0)
            s[rt(s, RP_MSI, idx)] = dest
    every = s[s[O_PI] + s[a + 1]]
    s[rt(s, RP_ACT, k)] = s[S_T] + every if every > 0 else NEVER


@inner
def update_kvm_routes(s, tb):
    """QEMU ``ioapic_update_kvm_routes``: the MSI route of every unmasked pin follows its
    redirection entry; committing the routes requests a rescan on every vCPU."""
    for k in range(s[CFG + C_NUSED]):
        pin = s[s[O_PUSED] + k]
        if not s[s[O_P_MASKED] + pin]:
            s[rt(s, RP_KDEST, pin)] = s[rt(s, RP_RTE, pin)]
    for v in range(s[CFG + C_V]):
        request_scan(s, tb, v)


@inner
def request_scan(s, tb, v):
    """KVM_REQ_SCAN_IOAPIC on ``v`` (the callers go through the vCPUs in ascending order): a
    vCPU running guest code rescans at once, one in KVM or QEMU at its next entry."""
    if s[CFG + C_BARE]:
        return
    settle(s, tb, v)
    if in_guest(s, v):
        route_scan(s, tb, v, s[S_T])
    else:
        s[rt(s, RP_SCAN_REQ, v)] = 1


@inner
def in_guest(s, v):
    mode = s[s[O_MODE] + v]
    return (mode == L1 or mode == L2) and s[S_T] >= s[rt(s, RP_ENTRY, v)]


@inner
def route_scan(s, tb, v, t):
    """``vcpu_scan_ioapic`` on ``v``, its record stamped ``t``: the PIR synced first (per
    ``eoi_scan``), then the bitmap of the tracked pins routed to ``v`` or whose vector still
    awaits an EOI there (``routes.scan_bits``)."""
    prog = s[O_RT_P]
    mode, split = s[prog + RP_SCAN], s[CFG + C_SPLIT]
    if mode == RT_SCAN_PENDING_PIR or (mode == RT_SCAN_PENDING and not split):
        s[rt(s, RP_PIR, v)] = 0
    pending = np.int64(0)
    if mode != RT_SCAN_ROUTE:
        pending = (s[s[O_IRR] + v] & ~s[rt(s, RP_PIR, v)]) | s[s[O_ISR] + v]
    table = RP_KDEST if split else RP_RTE
    bits = np.int64(0)
    for k in range(s[CFG + C_NUSED]):
        pin = s[s[O_PUSED] + k]
        g = s[s[O_PPIN_GROUP] + pin]
        tracked = s[s[O_PPIN_LEVEL] + pin] != 0 or pin == s[prog + RP_RTC]
        if tracked and (s[rt(s, table, pin)] == v or (pending >> g) & 1):
            bits |= np.int64(1) << g
    s[rt(s, RP_SCAN_REQ, v)] = 0
    s[rt(s, RP_BITS, v)] = bits
    thread = s[S_THREAD]
    s[S_THREAD] = v
    emit_at(s, tb, t, E_RT_EXITMAP, v, bits, 0, 0)
    s[S_THREAD] = thread


# ---------------------------------------------------------------- hooks


@inner
def entered(s, v, et):
    """``v``'s VM entry at ``et``: its rescan and PIR sync happen then (:func:`settle`)."""
    if rt_on(s):
        s[rt(s, RP_ENTRY, v)] = et


@inner
def settle(s, tb, v):
    """What ``v``'s last VM entry did, once it has happened: a pending rescan (its record
    stamped with the entry's time), then ``sync_pir_to_irr``."""
    if not rt_on(s):
        return
    if (s[rt(s, RP_SCAN_REQ, v)] or s[rt(s, RP_PIR, v)]) and in_guest(s, v):
        if s[rt(s, RP_SCAN_REQ, v)]:
            route_scan(s, tb, v, s[rt(s, RP_ENTRY, v)])
        s[rt(s, RP_PIR, v)] = 0


@inner
def posted(s, tb, v, bit):
    """An interrupt accepted at ``v`` while it is outside guest mode waits in the PIR."""
    if rt_on(s) and s[CFG + C_APICV] and not s[CFG + C_BARE]:
        settle(s, tb, v)
        if not in_guest(s, v):
            s[rt(s, RP_PIR, v)] |= bit


@inner
def pin_dest(s, pin):
    """The vCPU KVM's route for ``pin`` names now."""
    if rt_on(s):
        return s[rt(s, RP_KDEST, pin)]
    return s[s[O_PGRP] + s[s[O_PPIN_GROUP] + pin] * N_GRP + G_DEST]


@inner
def misroute(s, pin, dest):
    """A delivery of ``pin`` to ``dest`` through a stale KVM route is counted."""
    if rt_on(s) and dest != s[rt(s, RP_RTE, pin)]:
        s[s[O_RT] + RT_MISROUTED] += 1


@inner
def dev_dest(s, d):
    """The vCPU device ``d``'s route names now (its MSI message, or its pin's KVM route)."""
    if rt_on(s):
        if s[s[O_PDEV] + d * N_DEV + D_MSI]:
            return s[rt(s, RP_MSI, d)]
        return s[rt(s, RP_KDEST, s[s[O_PDEV] + d * N_DEV + D_PIN])]
    return s[s[O_PDEV] + d * N_DEV + D_DEST]


@inner
def eoi_exit(s, v, g):
    """Whether group ``g`` is in ``v``'s EOI-exit bitmap."""
    if rt_on(s):
        return (s[rt(s, RP_BITS, v)] >> g) & 1 != 0
    return s[s[O_PGRP] + g * N_GRP + G_EOI_EXIT] != 0


@inner
def eoi_unseen(s, v, g):
    """An EOI of group ``g`` that did not exit: a level pin whose Remote IRR is set and whose
    vector no LAPIC holds any more stays blocked (the line is dead)."""
    if not rt_on(s):
        return
    held = False
    for u in range(s[CFG + C_V]):
        if ((s[s[O_IRR] + u] | s[s[O_ISR] + u]) >> g) & 1:
            held = True
    for k in range(s[s[O_PGRP] + g * N_GRP + G_NPINS]):
        pin = s[s[O_PGPIN] + g * s[CFG + C_W] + k]
        dead = rt(s, RP_DEAD, pin)
        if s[s[O_PPIN_LEVEL] + pin] and s[s[O_P_RIRR] + pin] and not held and s[dead] == NEVER:
            s[dead] = s[S_T]


@inner
def rirr_cleared(s, pin):
    if rt_on(s) and s[rt(s, RP_DEAD, pin)] != NEVER:
        s[s[O_RT] + RT_DEAD] += s[S_T] - s[rt(s, RP_DEAD, pin)]
        s[rt(s, RP_DEAD, pin)] = NEVER


@inner
def rte_write(s, pin, dest):
    """A redirection write's destination (``dest`` -1 keeps it); returns the old one (-1:
    the program has no actions)."""
    if not rt_on(s):
        return -1
    old = s[rt(s, RP_RTE, pin)]
    if dest >= 0:
        s[rt(s, RP_RTE, pin)] = dest
    return old


@inner
def kernel_route(s, pin):
    """The in-kernel IOAPIC's route is its redirection table."""
    if rt_on(s):
        s[rt(s, RP_KDEST, pin)] = s[rt(s, RP_RTE, pin)]


@inner
def rescan_pin(s, tb, old, pin):
    """KVM ``ioapic_write_indirect``: a rescan of the entry's old and new vCPUs."""
    if not rt_on(s):
        return
    new = s[rt(s, RP_RTE, pin)]
    request_scan(s, tb, min(old, new))
    if new != old:
        request_scan(s, tb, max(old, new))


@inner
def split_update(s, tb, before):
    """QEMU's redirection write commits the KVM routes before its re-service (``before``,
    ``rte_update routes_first``) or after it."""
    if rt_on(s) and (s[s[O_RT_P] + RP_FIRST] != 0) == before:
        update_kvm_routes(s, tb)


@inner
def routes_finish(s, t_end):
    if not rt_on(s):
        return
    for pin in range(s[CFG + C_PINS]):
        since = s[rt(s, RP_DEAD, pin)]
        if since != NEVER and t_end > since:
            s[s[O_RT] + RT_DEAD] += t_end - since


@inner
def routes_collect(s, out, i, at):
    """The lane's RT_N_OUT counters into ``out[i, at:]`` (a program with actions only); the
    next free column."""
    if not rt_on(s):
        return at
    for k in range(RT_N_OUT):
        out[i, at + k] = s[s[O_RT] + k]
    return at + RT_N_OUT


from irqlab.engine import kernel_ioapic  # noqa: E402  (it calls this module's hooks: imported by module)
