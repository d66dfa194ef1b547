"""Idle vCPUs: the rules both executors share (docs/model.md, "Idle vCPUs").

With ``machine { idle on }`` a single-level guest's vCPU runs only the work its
interrupts bring (``device X { work 20us }``: guest time each handled service
of X makes available on the device's destination vCPU), then executes HLT. KVM
handles the HLT exit in ``kvm_vcpu_halt`` (virt/kvm/kvm_main.c): it polls for
``vcpu->halt_poll_ns`` (at most ``machine.halt_poll``, the ``halt_poll_ns``
module parameter), then blocks the vCPU thread; ``kvm_vcpu_kick`` wakes it, and
it runs again ``machine.wakeup`` later (the host scheduler's latency). The
per-vCPU polling time then grows or shrinks (:func:`halt_poll_next`).

The phases here extend :mod:`irqlab.engine.phases`. Their numbers lie above
every handler-action phase of the lockstep executor (``ACT0 + len(ACTIONS)``).
"""

from __future__ import annotations

import numpy as np

from irqlab.engine import phases as P
from irqlab.engine.trace import FORMATS
from irqlab.engine.program import GroupInfo
from irqlab.plugins.api import Step

HLT = 40  # the guest runs its work; at t it has none left and executes HLT
HALT_L0 = 41  # L0 enters kvm_vcpu_halt (after the HLT exit)
HALT_POLL = 42  # halt-polling; at t the poll time is over and the thread blocks
HALT_BLOCK = 43  # blocked in kvm_vcpu_block (no event: only a kick ends it)
HALT_WAKE = 44  # at t the vCPU thread runs again (after a poll hit or a wake-up)
END = 45  # one past the last idle phase

RUNNING = P.RUN_PHASES + (HLT,)  # guest code runs: a new interrupt kicks or is taken
NAMES = {HLT: "HLT", HALT_L0: "HALT_L0", HALT_POLL: "HALT_POLL", HALT_BLOCK: "HALT_BLOCK",
         HALT_WAKE: "HALT_WAKE"}

# Stats.idle columns: [L, N_COUNTERS] int64
WORK, WORK_DONE, POLL_OK, POLL_PS, WAIT_PS, HLT_EXITS, IPIS = range(7)
N_COUNTERS = 7
RESCHEDULE_VECTOR = 0xFD  # Linux arch/x86/include/asm/irq_vectors.h


def ipi_text(dest: int) -> str:
    """``trace_kvm_apic_ipi``'s text for a fixed, physical, edge IPI without shorthand."""
    return FORMATS["kvm_apic_ipi"].format(dest, RESCHEDULE_VECTOR)

# Shrink/grow decisions of halt_poll_next
KEEP, GROW, SHRINK, ZERO = range(4)


def halt_poll_next(hp, halt, max_hp, grow, grow_start, shrink):
    """KVM's update of ``vcpu->halt_poll_ns`` at the end of ``kvm_vcpu_halt``
    (``grow_halt_poll_ns``, ``shrink_halt_poll_ns``; ``vcpu_valid_wakeup`` is
    always true on x86). Every argument is an int64 array (or scalar) in ps,
    ``grow``/``shrink`` factors; ``hp`` is the value the halt began with (already
    capped at ``max_hp``), ``halt`` the halt's length, polling included.

    Returns ``(new hp, decision)``, decision KEEP, GROW, SHRINK or ZERO (``max_hp``
    is 0: polling off)."""
    hp, halt = np.asarray(hp, np.int64), np.asarray(halt, np.int64)
    grown = np.where(grow == 0, hp, np.maximum(hp * grow, grow_start))
    shrunk = np.where(shrink == 0, 0, hp // np.maximum(shrink, 1))
    shrunk = np.where(shrunk < grow_start, 0, shrunk)
    do_shrink = (halt > hp) & (hp > 0) & (halt > max_hp)
    do_grow = (halt > hp) & ~do_shrink & (hp < max_hp) & (halt < max_hp)
    decision = np.where(max_hp == 0, ZERO, np.where(do_shrink, SHRINK, np.where(do_grow, GROW, KEEP)))
    new = np.where(decision == ZERO, 0, np.where(decision == SHRINK, shrunk,
                                                 np.where(decision == GROW, grown, hp)))
    return new, decision


def wakeup_text(halt_ps: int, waited: bool) -> str:
    """``trace_kvm_vcpu_wakeup``'s text (include/trace/events/kvm.h)."""
    return FORMATS["kvm_vcpu_wakeup"].format("wait" if waited else "poll", halt_ps // 1000)


def poll_text(v: int, new_ps: int, grow: bool, old_ps: int) -> str:
    """``trace_kvm_halt_poll_ns``'s text (include/trace/events/kvm.h)."""
    return FORMATS["kvm_halt_poll_ns"].format(v, new_ps // 1000, "grow" if grow else "shrink", old_ps // 1000)


def ipi_group(index: int, vector: int):
    """The vector group of the guest's reschedule IPI (Linux ``sysvec_reschedule_ipi``:
    acknowledge, EOI, return; the woken task runs after it): no devices, handler
    ``costs.handler`` then EOI, ``costs.resume`` then return."""
    return GroupInfo(index=index, vector=vector, level=False, delivery="ipi", pins=(), devices=(), dest=0,
                     local=True, steps=(Step("EOI", "costs.handler"), Step("RETURN", "costs.resume")),
                     before=("costs.handler", "costs.resume"), policy="reschedule_ipi", eoi_exit=False,
                     suppress=False)
