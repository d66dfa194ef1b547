"""The per-lane kernel, issue 13's mechanism 4: task and processor priority, L2's exits to
L1, an L2 that EOIs L1's vLAPIC, and the nested vPPR that goes stale with vmcs01's SVI
(case G).

The same rules as :mod:`irqlab.engine.tpr_lockstep`, function by function (same names,
same order of records); docs/model.md, "Task and processor priority and the nested vPPR",
states the rules. The PPR rule itself is in ``kernel_base.deliverable`` (it reads
``T_CLS``), the SVI's resync in ``kernel_base.ack`` and ``lapic_eoi``; the phases call
these from ``kernel.vcpu_event``.

Program (``s[CFG + C_TPR]``: ``TPR_*`` flags, 0 when the program uses none of this, and
then both arrays below are empty): ``s[O_TPR_P + TP_*]`` the parameter indices of
``machine.tpr``, ``machine.l2_exit_every`` and ``costs.handler``, and the bits of the
groups whose EOI L2 writes (policy ``l2_eoi``). State, ``s[s[O_TPR] + ...]``: ``T_CLS``
TPR[7:4] (``machine.tpr >> 4``, the same on every vCPU), then per vCPU ``v``:
``T_SVI + v`` the group whose vector vmcs01's SVI still holds (-1: SVI is right),
``T_SVI + V + v`` L2 execution left before its next exit to L1, ``T_SVI + 2V + v`` the
EOI exit being handled is L2's.
"""

from __future__ import annotations

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import at, deliverable, emit_at, enter, high, inner, l2_exit


@inner
def tpr_init(s):
    """prio_init: a fresh lane's TPR class, SVIs and L2 exit budgets (``s[O_TPR]`` zeroed)."""
    flags = s[CFG + C_TPR]
    if not flags:
        return
    t, prog, V = s[O_TPR], s[O_TPR_P], s[CFG + C_V]
    if flags & TPR_ON:
        s[t + T_CLS] = s[s[O_PI] + s[prog + TP_TPR]] >> 4
    every = s[s[O_PI] + s[prog + TP_EVERY]] if flags & TPR_EXIT else 0
    for v in range(V):
        s[t + T_SVI + v] = -1
        s[t + T_SVI + V + v] = every


@inner
def l1_deliverable(s, v):
    """Whether L1 can take its highest pending vector itself: with APICv, RVI's class must
    also be above the class of a stale vmcs01 SVI (SDM 29.2.1, 29.1.3)."""
    if not deliverable(s, v):
        return False
    if not s[CFG + C_TPR] & TPR_SVI:
        return True
    stale = s[s[O_TPR] + T_SVI + v]
    if stale < 0:
        return True
    g = high(s, s[s[O_IRR] + v])
    return (s[s[O_PGRP] + g * N_GRP + G_VECTOR] >> 4) > (s[s[O_PGRP] + stale * N_GRP + G_VECTOR] >> 4)


@inner
def vmresume_pending(s, v):
    """L0 emulating VMRESUME asks for an immediate exit: with cda3960fbcc5 (``vppr_refresh``)
    by the refreshed PPR, before it by the vPPR vmcs01's SVI gave (``vmx_has_apicv_interrupt``)."""
    if s[CFG + C_TPR] & TPR_REFRESH:
        return deliverable(s, v)
    return l1_deliverable(s, v)


# ---------------------------------------------------------------- L2's exits to L1


@inner
def exit_elapsed(s, v, elapsed):
    """``end_run``: ``elapsed`` of L2 execution count towards its next exit to L1."""
    if s[CFG + C_TPR] & TPR_EXIT:
        s[s[O_TPR] + T_SVI + s[CFG + C_V] + v] -= elapsed


@inner
def exit_schedule(s, v, t0):
    """After ``start_run``: L2's next exit to L1 comes ``exit_rem`` of execution after ``t0``,
    unless a service or the preemption timer comes first (or at the same time)."""
    if not s[CFG + C_TPR] & TPR_EXIT:
        return
    t = t0 + s[s[O_TPR] + T_SVI + s[CFG + C_V] + v]
    if t < s[s[O_VT] + v]:
        at(s, v, RUN_EXIT, t)


@inner
def run_exit(s, tb, v):
    """ph_run_exit, after ``end_run``: L2 makes an MMIO access that L1 emulates (an
    ``EPT_MISCONFIG`` exit, reflected); L1 handles it for ``costs.handler``, then L1_EXIT."""
    t = s[S_T]
    prog = s[O_TPR_P]
    s[s[O_TPR] + T_SVI + s[CFG + C_V] + v] = s[s[O_PI] + s[prog + TP_EVERY]]
    l2_exit(s, tb, v, X_EPT_MISCONFIG, 0)
    vmexit = s[s[O_PI] + s[CFG + C_P_VMEXIT]]
    emit_at(s, tb, t + vmexit, E_NESTED_INJECT, 0, X_EPT_MISCONFIG, 0, 0)
    start = enter(s, tb, v, L1, L0, vmexit + s[s[O_PI] + s[CFG + C_P_NESTED_EXIT]], True)
    at(s, v, L1_EXIT, start + s[s[O_PI] + s[prog + TP_HANDLER]])


# ---------------------------------------------------------------- L2's EOI of L1's vector


@inner
def l2_eoi_group(s, g):
    """Whether L2 writes the EOI of group ``g`` itself (policy ``l2_eoi``)."""
    return (s[CFG + C_TPR] & TPR_L2EOI) != 0 and (s[s[O_TPR_P] + TP_L2EOI] >> g) & 1 != 0


@inner
def l2_eoi_exit(s, tb, v):
    """L2 has serviced the devices of a vector it EOIs itself: its write of the EOI exits to
    L0, which emulates it on L1's vLAPIC (``kvm_lapic_reg_write`` -> ``apic_set_eoi``)."""
    s[S_EOI_COUNT] += 1
    x2 = s[CFG + C_X2APIC]
    l2_exit(s, tb, v, X_MSR_WRITE if x2 else X_APIC_ACCESS, 0x80B if x2 else 0x10B0)  # phases.eoi_exit
    s[s[O_EOI_VEC] + v] = -2
    s[s[O_TPR] + T_SVI + 2 * s[CFG + C_V] + v] = 1
    at(s, v, EOI_L0, s[S_T] + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_EOI]])


@inner
def l2_eoi_svi(s, v, g):
    """After L0 emulated L2's EOI of group ``g``: with APICv, KVM before 04bc93cf49d1 updated
    SVI only in vmcs02, so vmcs01's SVI keeps ``g``'s vector."""
    t = s[O_TPR]
    if s[CFG + C_TPR] & TPR_SVI and s[t + T_SVI + 2 * s[CFG + C_V] + v] and g >= 0:
        s[t + T_SVI + v] = g


@inner
def l2_eoi_taken(s, v):
    """Whether the EOI exit ``v`` is handling is L2's (then :func:`l2_eoi_back`, not L1)."""
    return (s[CFG + C_TPR] & TPR_L2EOI) != 0 and s[s[O_TPR] + T_SVI + 2 * s[CFG + C_V] + v] != 0


@inner
def l2_eoi_back(s, v, extra):
    """Back from L2's EOI exit after ``extra`` more time: L0 goes on with its check of
    nested events (``apic_set_eoi`` requested KVM_REQ_EVENT) instead of entering L1."""
    s[s[O_TPR] + T_SVI + 2 * s[CFG + C_V] + v] = 0
    at(s, v, L0_CHECK if s[s[O_MODE] + v] == L0 else EOI_BACK, s[S_T] + extra)
