"""The per-lane kernel: one lane's event loop in the Numba-compilable subset of Python.

Each lane runs its whole event loop to completion, in native code, lanes in
parallel (``prange``). Run with the JIT off it is the readable reference (backend ``reference``,
:mod:`irqlab.engine.kernelpy`); the differential tests hold it to the lockstep
executor bit for bit (same order of simultaneous events, same order of plugin
hooks, same random draws). There is ONE kernel for every program: the program
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

The code is in three modules: :mod:`irqlab.engine.kernel_base` (random numbers,
records, time accounting, the LAPIC), :mod:`irqlab.engine.kernel_ioapic` (the
IOAPIC, mitigations, devices, guest code runs) and this one (the vCPU's phases,
the event loop and the entry points).

Built-in plugins are the ``ARR_*``, ``DEV_*`` and ``MIT_*`` kinds here; their
code is the kernel form of the NumPy hooks in :mod:`irqlab.plugins.builtin`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from irqlab.engine.kernel_ids import *  # noqa: F403  the kernel's constants
from irqlab.engine.kernel_base import (  # noqa: F401
    ack, after, at, deliverable, emit, enter, entry, exit_, high, inner, l2_exit, l2_rip, lapic_eoi, popcount, record,
    switch, trace_mode,
)
from irqlab.engine.kernel_ioapic import (  # noqa: F401
    arrival, arrival_next, close_stall, cur_fwd, device_service, end_run, eoi_broadcast, host_event,
    call_hook, mit_handler_done, mit_immediate, mit_timer, plugin_has, plugin_timer, redirect_write, start_run,
)
from irqlab.engine.kernel_idle import idle_collect, idle_event, idle_init, idle_on
from irqlab.engine.kernel_mech import deep_in_instant, event_name, same_instant
from irqlab.engine.kernel_routes import (
    action_event, eoi_exit, eoi_unseen, next_action, routes_collect, routes_finish, routes_init, settle,
)
from irqlab.engine.kernel_service import body_time, service_time
from irqlab.engine.kernel_timers import n_tslots, timer_eoi, timer_expire, timer_of, timers_init, tslot, tslot_event
from irqlab.engine.kernel_tpr import (
    l1_deliverable, l2_eoi_back, l2_eoi_exit, l2_eoi_group, l2_eoi_svi, l2_eoi_taken, run_exit, tpr_init,
    vmresume_pending,
)


# ---------------------------------------------------------------- the vCPU's phases


@inner
def vcpu_event(s, tb, pf, plug, v):
    if s[O_RT_P]:  # guest actions (kernel_routes)
        settle(s, tb, v)
    ph = s[s[O_PHASE] + v]
    t = s[S_T]
    nested, bare, split, x2apic = s[CFG + C_NESTED], s[CFG + C_BARE], s[CFG + C_SPLIT], s[CFG + C_X2APIC]
    vmexit = s[s[O_PI] + s[CFG + C_P_VMEXIT]]
    if ph == RUN_SVC:  # L2 has finished servicing a forwarded device
        end_run(s, v, t)
        d = cur_fwd(s, v)
        s[s[O_SVC_REM] + d] = 0
        s[s[O_FORWARDED] + d] = 0
        device_service(s, tb, pf, plug, d, -1)
        g = s[s[O_PDEV] + d * N_DEV + D_GROUP]
        done = True
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
            if s[s[O_FORWARDED] + s[s[O_PGDEV] + g * s[CFG + C_W] + k]]:
                done = False
        if s[s[O_WAITING] + g] and done:
            l2_exit(s, tb, v, X_MSR_WRITE if x2apic else X_APIC_ACCESS, 0x80B if x2apic else 0x10B0)  # phases.eoi_exit
            s[s[O_GRP] + v] = g
            at(s, v, REFLECT, t + vmexit)
        elif done and l2_eoi_group(s, g):
            l2_eoi_exit(s, tb, v)
        else:
            start_run(s, v, t)
    elif ph == RUN_PT:  # the preemption timer fires in L2
        end_run(s, v, t)
        l2_exit(s, tb, v, X_PREEMPTION_TIMER, 0)
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
        start_handler(s, pf, plug, v, g, t)
    elif ph == L0_CHECK or ph == EOI_BACK:  # nested: L0's check_nested_events after an L2 exit
        if ph == EOI_BACK:  # back from QEMU after an EOI L2 wrote (kernel_tpr)
            switch(s, tb, v, L0, 0, 0, 0, 0, 0)
        if deliverable(s, v):
            if s[CFG + C_ACK_ON_EXIT]:
                g = ack(s, tb, v)
                info = 0x80000000 | s[s[O_PGRP] + g * N_GRP + G_VECTOR]
            else:
                g, info = -1, 0
            emit(s, tb, E_NESTED_INJECT, info, 0, 0, 0)
            start = enter(s, tb, v, L1, L0, s[s[O_PI] + s[CFG + C_P_NESTED_EXIT]], True)
            if g >= 0:
                start_handler(s, pf, plug, v, g, start)
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
            start_handler(s, pf, plug, v, g, start)
        elif nested:  # a nested L1 enables interrupts and goes on to VMRESUME
            at(s, v, L1_STI, enter(s, tb, v, L1, 0, 0, False))
        else:
            start = enter(s, tb, v, L1, 0, 0, False)
            start_run(s, v, start)
    elif ph == L1_STI:  # nested L1 enables interrupts after handling an exit
        if not l1_deliverable(s, v):
            vmresume(s, tb, pf, plug, v)
        else:
            l1_take(s, tb, pf, plug, v)
    elif ph == MMIO_NEXT:  # the next access of a multi-access IOAPIC register write
        mmio_exit(s, tb, v)
    elif ph == ACT:
        act(s, tb, pf, plug, v)
    elif ph == SERVICE_DONE:
        g = s[s[O_GRP] + v]
        any_handled = False
        # handled per pin, in pin order (the reference's sorted dict)
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
            d = s[s[O_PGDEV] + g * s[CFG + C_W] + k]
            h = device_service(s, tb, pf, plug, d, v)
            any_handled = any_handled or h
            if s[s[O_PDEV] + d * N_DEV + D_PIN] >= 0:
                s[s[O_HANDLED_PIN] + s[s[O_PDEV] + d * N_DEV + D_PIN]] |= 2 | int(h)
        if not any_handled:
            s[S_SPURIOUS] += 1
        for pin in range(s[CFG + C_PINS]):
            hp = s[s[O_HANDLED_PIN] + pin]
            if hp:
                s[s[O_HANDLED_PIN] + pin] = 0
                mit_handler_done(s, tb, pf, plug, v, pin, (hp & 1) != 0)
        advance(s, pf, plug, v, t)
    elif ph == EOI_L0:  # L0 emulates the EOI; a level vector's EOI goes on to the IOAPIC
        g = s[s[O_EOI_VEC] + v]
        if g == -2:
            g = lapic_eoi(s, tb, v)
            l2_eoi_svi(s, v, g)
        broadcast = False
        if g >= 0:
            emit(s, tb, E_KVM_EOI, v, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0)
            timer_eoi(s, tb, pf, plug, g)
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
            eoi_broadcast(s, tb, pf, plug, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
            eoi_return(s, tb, pf, plug, v, L0, s[s[O_PI] + s[CFG + C_P_IOAPIC]], True)
        else:
            eoi_return(s, tb, pf, plug, v, L0, 0, False)
    elif ph == EOI_USER or ph == MMIO_USER:  # QEMU: the IOAPIC write, then back into the guest
        if ph == EOI_USER:
            eoi_broadcast(s, tb, pf, plug, s[s[O_PGRP] + (s[s[O_EOI_VEC] + v]) * N_GRP + G_VECTOR])
        else:
            mmio_access(s, tb, pf, plug, v)
        ue = s[s[O_PI] + s[CFG + C_P_USERSPACE_EXIT]]
        rest = ue - ue // 2
        if ph == EOI_USER:
            eoi_return(s, tb, pf, plug, v, USER, s[s[O_PI] + s[CFG + C_P_IOAPIC]] + rest, True)
        else:
            mmio_next(s, pf, plug, v, enter(s, tb, v, L1, USER, s[s[O_PI] + s[CFG + C_P_IOAPIC]] + rest, True))
    elif ph == MMIO_L0:
        if split:
            s[s[O_UEXITS] + U_MMIO] += 1
            emit(s, tb, E_USERSPACE_EXIT, U_MMIO, 0, 0, 0)
            switch(s, tb, v, USER, 0, 0, 0, 0, 0)
            at(s, v, MMIO_USER, t + s[s[O_PI] + s[CFG + C_P_USERSPACE_EXIT]] // 2)
        else:
            mmio_access(s, tb, pf, plug, v)
            start = enter(s, tb, v, L1, L0, s[s[O_PI] + s[CFG + C_P_IOAPIC]], True)
            mmio_next(s, pf, plug, v, start)
    elif ph == VMRESUME_L0:  # L0 enters L2; with an interrupt pending for L1, an immediate exit
        if vmresume_pending(s, v):
            s[S_IMMEDIATE] += 1
            if s[CFG + C_AMD]:  # SVM: a self-IPI, no preemption timer (docs/model.md, AMD SVM)
                timer = s[s[O_PI] + s[CFG + C_P_SELF_IPI]]
            else:
                timer = mit_immediate(s, pf, plug, v)
            start = enter(s, tb, v, L2, 0, 0, False)
            s[s[O_PT_ARMED] + v] = 1
            s[s[O_PT_DEADLINE] + v] = start + max(timer, 0)
        else:
            start = enter(s, tb, v, L2, 0, 0, False)
        start_run(s, v, start)
    elif ph == RUN_EXIT:  # L2 makes an access L1 intercepts (kernel_tpr)
        end_run(s, v, t)
        run_exit(s, tb, v)
    elif ph == L1_EXIT:  # L1 has handled L2's reflected exit
        vmresume(s, tb, pf, plug, v)
    elif ph >= HLT:  # idle vCPUs (kernel_idle); at HLT the guest's run ends, not as a stall
        if ph == HLT:
            end_run(s, v, t)
            close_stall(s, v, t)
        idle_event(s, tb, v, ph)
    else:  # REFLECT: L0 reflects L2's completion exit to L1, which continues the waiting handler
        g = s[s[O_GRP] + v]
        emit(s, tb, E_NESTED_INJECT, 0, X_MSR_WRITE if x2apic else X_APIC_ACCESS, 1, 0)
        start = enter(s, tb, v, L1, L0, s[s[O_PI] + s[CFG + C_P_NESTED_EXIT]], True)
        s[s[O_WAITING] + g] = 0
        s[s[O_PC] + v] = s[s[O_WAIT_PC] + g]
        schedule_step(s, pf, plug, v, start)


# handler programs


@inner
def step_delay(s, pf, g, pc):
    """The handler time before step ``pc``: its parameter, or a draw of the policy's random
    body time (call once per step: it may draw)."""
    p = s[s[O_PGBEFORE] + g * s[CFG + C_W] + pc]
    if p < 0:
        return 0
    if p == s[s[O_PGRP] + g * N_GRP + G_BODY_P]:
        return body_time(s, pf, g, s[s[O_PI] + p])
    return s[s[O_PI] + p]


@inner
def start_handler(s, pf, plug, v, g, t0):
    s[s[O_GRP] + v] = g
    s[s[O_PC] + v] = 0
    schedule_step(s, pf, plug, v, t0)


@inner
def schedule_step(s, pf, plug, v, t0):
    """Run the step at ``pc`` after its delay, from ``t0``; FORWARD steps without a delay
    happen at once."""
    g = s[s[O_GRP] + v]
    delay = step_delay(s, pf, g, s[s[O_PC] + v])
    while s[s[O_PGSTEP] + g * s[CFG + C_W] + s[s[O_PC] + v]] == A_FORWARD and delay == 0:
        forward(s, pf, plug, g)
        s[s[O_PC] + v] += 1
        delay = step_delay(s, pf, g, s[s[O_PC] + v])
    at(s, v, ACT, t0 + delay)


@inner
def advance(s, pf, plug, v, t0):
    s[s[O_PC] + v] += 1
    schedule_step(s, pf, plug, v, t0)


@inner
def forward(s, pf, plug, g):
    for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
        d = s[s[O_PGDEV] + g * s[CFG + C_W] + k]
        if not s[s[O_FORWARDED] + d]:
            s[s[O_FORWARDED] + d] = 1
            s[s[O_SVC_REM] + d] = service_time(s, pf, d)


@inner
def act(s, tb, pf, plug, v):
    g, pc, t = s[s[O_GRP] + v], s[s[O_PC] + v], s[S_T]
    action = s[s[O_PGSTEP] + g * s[CFG + C_W] + pc]
    if action == A_FORWARD:
        forward(s, pf, plug, g)
        advance(s, pf, plug, v, t)
    elif action == A_SERVICE:
        dur = np.int64(0)
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NDEVS]):
            d = s[s[O_PGDEV] + g * s[CFG + C_W] + k]
            if s[s[O_PENDING] + d] > 0:
                dur += service_time(s, pf, d)
        at(s, v, SERVICE_DONE, t + dur)
    elif action == A_EOI:
        guest_eoi(s, tb, pf, plug, v)
    elif action == A_IOAPIC_EOI or action == A_MASK or action == A_UNMASK:
        # the handler writes an IOAPIC register: each of its MMIO_N accesses is an MMIO exit
        s[s[O_MMIO_ACTION] + v] = action
        if s[CFG + C_BARE]:
            ioapic_write(s, tb, pf, plug, v, action)
            advance(s, pf, plug, v, t + MMIO_N[action] * s[s[O_PI] + s[CFG + C_P_MMIO]])
        else:
            s[s[O_MMIO_STEP] + v] = 0
            mmio_exit(s, tb, v)
    elif action == A_WAIT:
        s[s[O_WAITING] + g] = 1
        s[s[O_WAIT_PC] + g] = pc + 1
        vmresume(s, tb, pf, plug, v)
    else:  # A_RETURN: end of the handler, VMRESUME (nested L1) or iret
        if s[CFG + C_NESTED]:
            vmresume(s, tb, pf, plug, v)
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
def mmio_access(s, tb, pf, plug, v):
    """The IOAPIC side of the current access: only the acting one changes state."""
    action = s[s[O_MMIO_ACTION] + v]
    if s[s[O_MMIO_STEP] + v] == MMIO_ACTING[action]:
        ioapic_write(s, tb, pf, plug, v, action)


@inner
def mmio_next(s, pf, plug, v, start):
    """Back in the guest at ``start``: the next access, or the handler's next step."""
    s[s[O_MMIO_STEP] + v] += 1
    if s[s[O_MMIO_STEP] + v] < MMIO_N[s[s[O_MMIO_ACTION] + v]]:
        at(s, v, MMIO_NEXT, start)
    else:
        advance(s, pf, plug, v, start)


@inner
def l1_take(s, tb, pf, plug, v):
    """L1, interrupts enabled, takes the highest deliverable interrupt through its IDT."""
    if s[CFG + C_APICV]:
        start_handler(s, pf, plug, v, ack(s, tb, v), s[S_T])
    else:
        exit_(s, tb, X_INTERRUPT_WINDOW, RIP_L1_STI, 0)
        switch(s, tb, v, L0, 0, 0, 0, 0, 0)
        at(s, v, L0_INJECT, s[S_T] + s[s[O_PI] + s[CFG + C_P_VMEXIT]])


@inner
def vmresume(s, tb, pf, plug, v):
    """L1 executes VMRESUME; a KVM-like L1 first takes its pending interrupts."""
    if s[CFG + C_L1_IRQ_WINDOW] and l1_deliverable(s, v):
        l1_take(s, tb, pf, plug, v)
        return
    s[s[O_GRP] + v] = -1
    exit_(s, tb, X_VMRESUME, RIP_L1_VMRESUME, 0)
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)
    at(s, v, VMRESUME_L0, s[S_T] + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_NESTED_ENTRY]])


@inner
def guest_eoi(s, tb, pf, plug, v):
    """The handler writes the LAPIC EOI register."""
    s[S_EOI_COUNT] += 1
    t = s[S_T]
    if s[CFG + C_BARE]:
        g = lapic_eoi(s, tb, v)
        if g >= 0:
            emit(s, tb, E_EOI, v, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0)
            if (s[s[O_TMR] + v] >> g) & 1:
                eoi_broadcast(s, tb, pf, plug, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
        advance(s, pf, plug, v, t + s[s[O_PI] + s[CFG + C_P_EOI]])
        return
    if s[CFG + C_APICV]:
        isr = s[s[O_ISR] + v]
        g = high(s, isr) if isr else -1
        if g >= 0 and eoi_exit(s, v, g):
            lapic_eoi(s, tb, v)
            exit_(s, tb, X_EOI_INDUCED, RIP_L1_EOI, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
            s[s[O_EOI_VEC] + v] = g
            switch(s, tb, v, L0, 0, 0, 0, 0, 0)
            at(s, v, EOI_L0, t + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_EOI]])
        else:
            lapic_eoi(s, tb, v)
            if g >= 0:
                eoi_unseen(s, v, g)
            advance(s, pf, plug, v, t)
        return
    x2 = s[CFG + C_X2APIC]
    exit_(s, tb, X_MSR_WRITE if x2 else X_APIC_ACCESS, RIP_L1_EOI, 0x80B if x2 else 0x10B0)
    s[s[O_EOI_VEC] + v] = -2
    switch(s, tb, v, L0, 0, 0, 0, 0, 0)
    at(s, v, EOI_L0, t + s[s[O_PI] + s[CFG + C_P_VMEXIT]] + s[s[O_PI] + s[CFG + C_P_EOI]])


@inner
def eoi_return(s, tb, pf, plug, v, mode, extra, has_pre):
    """Back from an EOI exit after ``extra`` more time in ``mode`` (L0 or userspace): into
    L1's handler, or after an EOI L2 wrote (kernel_tpr) on to L0's nested-event check."""
    if l2_eoi_taken(s, v):
        l2_eoi_back(s, v, extra)
    else:
        advance(s, pf, plug, v, enter(s, tb, v, L1, mode, extra, has_pre))


@inner
def ioapic_write(s, tb, pf, plug, v, action):
    g = s[s[O_GRP] + v]
    if action == A_IOAPIC_EOI:
        if s[CFG + C_SPLIT] or s[CFG + C_BARE]:
            emit(s, tb, E_IOAPIC_EOI, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 0, 0, 0)
            eoi_broadcast(s, tb, pf, plug, s[s[O_PGRP] + g * N_GRP + G_VECTOR])
        else:  # KVM's IOAPIC is version 0x11: ioapic_mmio_write ignores offset 0x40
            emit(s, tb, E_IOAPIC_EOI, s[s[O_PGRP] + g * N_GRP + G_VECTOR], 1, 0, 0)
    else:
        for k in range(s[s[O_PGRP] + g * N_GRP + G_NPINS]):
            redirect_write(s, tb, pf, plug, s[s[O_PGPIN] + g * s[CFG + C_W] + k], 1 if action == A_MASK else 0, -1)


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
    routes_finish(s, t_end)
    for d in range(s[CFG + C_D]):
        s[s[O_DEV_PENDING] + d] = s[s[O_FRESH] + d]
    s[S_STAT_END_T] = t_end
    s[S_DONE] = 1


@inner
def sample(s, tb):
    """Record the series' integers at this instant (before its events; reference.sample):
    time per mode (L2, L1, L0, userspace, summed over the vCPUs, the current stays
    included), EOIs, exits, raised, delivered, pending, IRR bits, lines high; as
    TR_SAMPLE records of four (code 0, 1, 2), which ``kernelrun.Decoder`` turns into the
    fields."""
    t = s[S_T]
    m2, m1, m0, mu = np.int64(0), np.int64(0), np.int64(0), np.int64(0)
    irr = 0
    for v in range(s[CFG + C_V]):
        a = s[O_ACC] + v * 4
        extra = t - s[s[O_SINCE] + v] if t > s[s[O_SINCE] + v] else 0
        mode = s[s[O_MODE] + v]
        m0 += s[a + L0] + (extra if mode == L0 else 0)
        m1 += s[a + L1] + (extra if mode == L1 else 0)
        m2 += s[a + L2] + (extra if mode == L2 else 0)
        mu += s[a + USER] + (extra if mode == USER else 0)
        irr += popcount(s[s[O_IRR] + v])
    exits = np.int64(0)
    for k in range(8):
        exits += s[s[O_EXITS] + k]
    pending, lines = np.int64(0), 0
    for d in range(s[CFG + C_D]):
        pending += s[s[O_PENDING] + d]
    for p in range(s[CFG + C_PINS]):
        if s[s[O_P_LINE] + p] > 0:
            lines += 1
    record(s, tb, TR_SAMPLE, t, 0, 0, m2, m1, m0, mu)
    record(s, tb, TR_SAMPLE, t, 0, 1, s[S_EOI_COUNT], exits, s[S_RAISED], s[S_DELIVERED])
    record(s, tb, TR_SAMPLE, t, 0, 2, pending, irr, lines, 0)
    s[S_SAMPLE_T] = t + max(s[s[O_PI] + s[CFG + C_P_EVERY]], 1)


@entry
def lane_init(s, tb, pf, plug, key0, key1, tracing):
    """A fresh lane at time 0 (``s`` holds the program and the lane's parameters, up to
    ``s[O_STATE]``; ``key0, key1``: its random key as int64): plugin state initialised and
    first arrivals drawn."""
    s[N_OFFSETS:CFG] = 0
    s[s[O_STATE]:] = 0
    s[S_KEY0] = key0
    s[S_KEY1] = key1
    s[S_TRACING] = tracing
    s[S_END_T] = s[s[O_PI] + s[CFG + C_P_DURATION]]
    s[S_SAMPLE_T] = 0 if s[CFG + C_SERIES] else NEVER
    for k in (S_FIRST_IRQ, S_TTP, S_TTP_L2):
        s[k] = NEVER
    V = s[CFG + C_V]
    for k in range(s[CFG + C_D]):
        s[s[O_ARR_T] + k] = NEVER
        s[s[O_EPISODE] + k] = NEVER
        s[s[O_LAT_MIN] + k] = NEVER
    for k in range(s[CFG + C_NT]):
        s[s[O_TIMER_T] + k] = NEVER
    for k in range(s[CFG + C_D]):
        s[s[O_HOST_T] + k] = NEVER
    s[S_ZT_LAST_T] = -1
    routes_init(s)
    for v in range(V):
        s[s[O_PHASE] + v] = RUN_IDLE
        s[s[O_VT] + v] = NEVER
        s[s[O_MODE] + v] = s[CFG + C_INNER]
        s[s[O_GRP] + v] = -1
        s[s[O_EOI_VEC] + v] = -1
        s[s[O_STALL_START] + v] = NEVER
        s[s[O_PT_DEADLINE] + v] = NEVER
        trace_mode(s, tb, v, 0, s[CFG + C_INNER])
    if idle_on(s):
        idle_init(s)
    tpr_init(s)
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
    for m in range(s[CFG + C_M]):
        if plugin_has(s, m, KH_INIT):
            call_hook(plug, KH_INIT, s, pf, m, 0, 0)
    timers_init(s)
    for d in range(s[CFG + C_D]):
        s[s[O_ARR_T] + d] = arrival_next(s, pf, d, 0, True)


@entry
def lane_resume(s, tb, pf, plug):
    """Run the lane's events until the end of the run, or until its trace buffer is half
    full (then return; call again after taking the records out). Returns 1 when done."""
    max_events = s[s[O_PI] + s[CFG + C_P_MAX_EVENTS]]
    D, NT, V, vfio = s[CFG + C_D], s[CFG + C_NT], s[CFG + C_V], s[CFG + C_VFIO]
    routes = s[O_RT_P] != 0  # kernel_routes.rt_on
    NS = n_tslots(s)
    half = tb.shape[0] // 2
    while not s[S_DONE]:
        if (s[S_TRACING] or s[CFG + C_SERIES]) and s[S_NTB] > half:
            return 0
        # the next event: (time, slot), slots END, SAMPLE, arrivals, timers, VFIO hosts, actions, vCPUs
        best_t, kind, idx = s[S_END_T], EV_END, 0
        if s[S_SAMPLE_T] < best_t:
            best_t, kind = s[S_SAMPLE_T], EV_SAMPLE
        for i in range(D):
            if s[s[O_ARR_T] + i] < best_t:
                best_t, kind, idx = s[s[O_ARR_T] + i], EV_ARRIVAL, i
        for i in range(NT):
            if s[s[O_TIMER_T] + i] < best_t:
                best_t, kind, idx = s[s[O_TIMER_T] + i], EV_TIMER, i
        if vfio:
            for i in range(D):
                if s[s[O_HOST_T] + i] < best_t:
                    best_t, kind, idx = s[s[O_HOST_T] + i], EV_HOST, i
        if routes:
            act_t, i = next_action(s)
            if act_t < best_t:
                best_t, kind, idx = act_t, EV_ACTION, i
        for i in range(NS):
            if s[tslot(s, i)] < best_t:
                best_t, kind, idx = s[tslot(s, i)], EV_TSLOT, i
        for i in range(V):
            if s[s[O_VT] + i] < best_t:
                best_t, kind, idx = s[s[O_VT] + i], EV_VCPU, i
        s[S_T] = best_t
        if kind == EV_END:
            finish(s, s[S_END_T])
            break
        name = event_name(s, kind, idx) if deep_in_instant(s) else -1
        if kind == EV_VCPU:
            s[S_THREAD] = idx
            s[s[O_VT] + idx] = NEVER
            vcpu_event(s, tb, pf, plug, idx)
        elif kind == EV_ARRIVAL:
            s[S_THREAD] = QEMU
            if timer_of(s, idx) >= 0:
                timer_expire(s, tb, pf, plug, idx)
            else:
                arrival(s, tb, pf, plug, idx)
        elif kind == EV_TIMER:
            s[S_THREAD] = s[CFG + C_OWNER]
            s[s[O_TIMER_T] + idx] = NEVER
            for m in range(s[CFG + C_M]):
                base, kind = s[s[O_PMIT] + m * N_MIT + M_TIMER_BASE], s[s[O_PMIT] + m * N_MIT + M_KIND]
                if kind == MIT_PLUGIN:
                    if base <= idx < base + s[s[O_PMIT] + m * N_MIT + M_NTIMERS]:
                        plugin_timer(s, tb, pf, plug, m, idx - base)
                elif base == idx and kind != MIT_PT_THROTTLE:
                    mit_timer(s, tb, pf, plug, m)
        elif kind == EV_HOST:
            s[S_THREAD] = KWORKER
            s[s[O_HOST_T] + idx] = NEVER
            host_event(s, tb, pf, plug, idx)
        elif kind == EV_ACTION:
            s[S_THREAD] = s[CFG + C_OWNER]
            action_event(s, tb, pf, plug, idx)
        elif kind == EV_SAMPLE:
            sample(s, tb)
        elif kind == EV_TSLOT:
            tslot_event(s, tb, pf, plug, idx)
        if s[S_ZT_LOOP] or same_instant(s, tb, name):
            finish(s, s[S_T])
            break
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
    col = routes_collect(s, out, i, N_OUT_SCALARS + hi - lo)
    idle_collect(s, out, i, col)
    return over


@njit(cache=True, parallel=True, error_model="numpy")
def run_lanes(tmpl, size, pf_shared, var_idx, var_i, var_f, keys, out, hist, hist_full, over, plug):
    """Run every lane to its end, in parallel, untraced. Lane ``i``'s state starts as the
    program's template ``tmpl`` (``int64[s[O_STATE]]``: the program and the shared
    parameters) grown to ``size``; its parameters ``p`` with ``var_idx[p] >= 0`` come from
    ``var_i/var_f[i, var_idx[p]]``, its key from ``keys[i]`` (``int64[2]``). It leaves its
    results as :func:`collect` says (``over[i]``: its histogram needs ``hist_full``). ``plug``:
    the third-party mitigations' kernel hook (:mod:`irqlab.engine.kernel_api`)."""
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
        lane_init(s, tb, pf, plug, keys[i, 0], keys[i, 1], 0)
        lane_resume(s, tb, pf, plug)
        over[i] = collect(s, out, hist, hist_full, i)
