"""The per-lane kernel, destinations: a message reaches the vCPUs of its vector group
(logical, broadcast) or one of them (lowest priority).

The same rules as :mod:`irqlab.engine.dest_lockstep` (same name, same order of
acceptances); docs/model.md, "Destinations", states the rules, and
:mod:`irqlab.engine.dest` matches the destinations when the program is compiled (the
vCPUs a group reaches, and with vector hashing the one KVM picks), so the kernel only
delivers.

Program (``s[O_DS_PROG]``, :func:`irqlab.engine.kernelprog._pack_dest`; the offset is -1
when no group's message is other than a fixed one to one physical APIC ID): one entry
per vector group, -1 for a plain physical fixed message, else where its record starts
(relative to ``s[O_DS_PROG]``); a record is ``DS_LOWEST`` (lowest-priority delivery),
``DS_N`` (how many targets), then the ``DS_N`` target vCPUs in vCPU order (constants in
:mod:`irqlab.engine.kernel_ids`, which packing reads without Numba).
State: ``s[s[O_DS_ARB] + v]``, vCPU ``v``'s ``apic_arb_prio`` (``int64[V]``, absent
without destinations).

The records of such a message (its destination field and mode, ``LowPrio`` at the
LAPIC) are written from the group by :class:`irqlab.engine.kernelrun.Decoder`: the
kernel's records stay those of a plain message.
"""

from __future__ import annotations

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import accept, inner  # noqa: F401


@inner
def dest_deliver(s, tb, dest, g, level):
    """``kvm_irq_delivery_to_apic`` (RefDest.deliver): accept group ``g``'s interrupt at every
    target (fixed) or at the one of lowest ``apic_arb_prio``, the first in vCPU order on a
    tie (lowest priority without vector hashing). A plain physical message goes to
    ``dest``. Returns whether any LAPIC set its IRR bit. (Its callers call ``accept``
    themselves when the program has no destinations: no call in between on the hot path.)"""
    prog = s[O_DS_PROG]
    if prog < 0 or s[prog + g] < 0:
        return accept(s, tb, dest, g, level)
    r = prog + s[prog + g]
    lowest = s[r + DS_LOWEST] != 0
    n = s[r + DS_N]
    arb = s[O_DS_ARB]
    if lowest and n > 1:
        v = s[r + DS_TARGETS]
        for k in range(1, n):
            w = s[r + DS_TARGETS + k]
            if s[arb + w] < s[arb + v]:
                v = w
        s[arb + v] += 1  # __apic_accept_irq, APIC_DM_LOWEST
        return accept(s, tb, v, g, level)
    any_set = False
    for k in range(n):
        v = s[r + DS_TARGETS + k]
        if lowest:
            s[arb + v] += 1
        any_set = accept(s, tb, v, g, level) or any_set
    return any_set
