"""Numbers shared by the per-lane kernel and the code that packs programs for it.

Column indices of the program arrays (``cfg``, ``dev``, ``grp``, ``mit``), the
plugin kinds the kernel implements, the lane state's fixed slots (``S_*``) and
array offsets (``O_*``), and the trace record codes (``E_*``). Kept apart from
:mod:`irqlab.engine.kernel` so that using them does not import Numba.
"""

import numpy as np

NEVER = np.int64(2**63 - 1)

# ---------------------------------------------------------------- program arrays
# cfg[...]: the program's scalars
C_V, C_D, C_PINS, C_G, C_NT, C_M, C_SPLIT, C_APICV, C_X2APIC, C_BARE, C_NESTED = range(11)
C_SUPPRESS_ON, C_ACK_ON_EXIT, C_INNER, C_OWNER, C_NUSED, C_NB = range(11, 17)
C_P_DURATION, C_P_MAX_EVENTS, C_P_VMEXIT, C_P_VMENTRY, C_P_NESTED_EXIT = range(17, 22)
C_P_NESTED_ENTRY, C_P_USERSPACE_EXIT, C_P_EOI, C_P_IOAPIC, C_P_MMIO, C_P_PT_RATE, C_P_TSC = range(22, 29)
C_W = 29  # columns of gdev, gpin, gstep, gbefore
C_L1_IRQ_WINDOW, C_P_L1_IRQ_OFF = 30, 31
# issue 12's mechanisms (kernel_mech): flags, and the parameter indices of their costs
C_AMD, C_VFIO, C_LAZY_LEVEL, C_RESAMPLE_UNMASK, C_P_VFIO, C_P_SELF_IPI = range(32, 38)
C_SERIES, C_P_EVERY = 38, 39  # the run records series (sample records, TR_SAMPLE), every run.series.every
C_TPR = 40  # issue 13's TPR/PPR, L2 exits, L2 EOIs (kernel_tpr): TPR_* flags, 0 if the program uses none
# kernel_tpr: C_TPR's flags; the slots of its program O_TPR_P (parameter indices, the l2_eoi groups' bits)
# and of its state O_TPR (TPR[7:4], then per vCPU: vmcs01's stale SVI at T_SVI, L2's exit budget at
# T_SVI + V, L2's EOI at T_SVI + 2V)
TPR_ON, TPR_EXIT, TPR_L2EOI, TPR_SVI, TPR_REFRESH = 1, 2, 4, 8, 16
TP_TPR, TP_EVERY, TP_HANDLER, TP_L2EOI, N_TP, T_CLS, T_SVI = 0, 1, 2, 3, 4, 0, 1
N_CFG = 41

# dev[d, ...]
D_MSI, D_PIN, D_VECTOR, D_LEVEL, D_DEST, D_GROUP, D_LOWERS, D_SERVICE = range(8)
D_ARR_KIND, D_MODEL_KIND, D_ARR_P0, D_ARR_P1, D_ARR_P2, D_ARR_P3 = range(8, 14)
D_VFIO = 14  # INTx of a passed-through device (its host slot is its device index)
D_SVC_KIND, D_SVC_P0, D_SVC_P1 = 15, 16, 17  # the service-time distribution (SVC_*, -1: the constant D_SERVICE)
N_DEV = 18
# grp[g, ...]
G_VECTOR, G_LEVEL, G_IOAPIC, G_DEST, G_EOI_EXIT, G_SUPPRESS, G_NSTEPS, G_NDEVS, G_NPINS, G_IRQ = range(10)
G_BODY_KIND, G_BODY_P, G_BODY_CV = 10, 11, 12  # random body time: SVC_* kind, its step's parameter, body_cv
N_GRP = 13
# mit[m, ...]
M_KIND, M_TIMER_BASE, M_STATE, M_P0, M_P1, M_P2, M_P3, M_P4, M_HOOKS, M_NTIMERS = range(10)
N_MIT = 10
# routes (kernel_routes): s[O_RT_P + RP_*] its program's header (RP_N actions; s[O_RT_P] = 0: no actions),
# then RP_W ints per action (at and every: parameter indices; its writes: count and first), RP_W per
# write (RT_IOAPIC or RT_MSI, gsi or device, dest, mask; -1 keeps), then every vCPU's first EOI-exit bits;
# the header's RP_ENTRY..RP_ACT are where each of its state arrays starts in s[O_RT:] (RT_* slots first)
(RP_N, RP_SCAN, RP_FIRST, RP_RTC, RP_ENTRY, RP_PIR, RP_SCAN_REQ, RP_BITS, RP_RTE, RP_KDEST, RP_DEAD, RP_MSI, RP_ACT,
 RP_BITS0, RP_HEAD) = range(15)
RP_W = 4
RT_IOAPIC, RT_MSI = 0, 1
RT_MISROUTED, RT_DEAD, RT_N_OUT = 0, 1, 2  # the state's first slots: the counters a lane hands back (collect)

ARR_ONCE, ARR_PERIODIC, ARR_POISSON, ARR_BURSTY, ARR_TRACE = range(5)
TRACE_TIMES_MAX = 1 << 20  # timestamps of `trace` arrivals the kernel copies into each lane's state
DEV_GENERIC, DEV_QUEUE = range(2)
DEV_TIMER = 2  # pit, rtc, stimer (kernel_timers)
SVC_CONSTANT, SVC_EXPONENTIAL, SVC_UNIFORM, SVC_LOGNORMAL, SVC_GAMMA = range(5)  # services.BODY_DISTS order
SVC_EMPIRICAL = 5  # D_SVC_P0, D_SVC_P1: its samples' start in O_PTIMES, and count
MIT_KVM_EOI_DELAY, MIT_QEMU_EOI_THROTTLE, MIT_PT_THROTTLE, MIT_LINUX_SPURIOUS, MIT_XEN_RATELIMIT = range(5)
MIT_STATE_PER_PIN = (1, 1, 0, 4, 3)  # int64 slots per pin of each kind (PT throttle: 2 per vCPU)
MIT_PLUGIN = 5  # a third-party mitigation with a kernel hook (irqlab.engine.kernel_api)
MIT_DESCHEDULE = 6  # host contention (kernel_timers); no state of its own here
MIT_STATE_PER_PIN += (0, 0)  # MIT_PLUGIN (kernel_state instead), MIT_DESCHEDULE
# the events of a plugin's kernel hook (kernel_api), their bits in M_HOOKS, and what it returns
KH_INIT, KH_IOAPIC_EOI, KH_DELIVER, KH_REDIRECT, KH_IMMEDIATE_EXIT, KH_HANDLER_DONE, KH_TIMER = range(7)
KH_NAMES = ("init", "ioapic_eoi", "deliver", "redirect", "immediate_exit", "handler_done", "timer")
KF_DEFER, KF_SERVICE = 1, 2  # defer the EOI's re-delivery / block the delivery; then service the IOAPIC

# IOAPIC accesses of an IOAPIC step (phases.MMIO_ACCESSES): how many, and which acts
MMIO_N = (0, 0, 1, 3, 2, 0, 0, 0)  # by action
MMIO_ACTING = (0, 0, 0, 1, 1, 0, 0, 0)

# handler step actions (irqlab.plugins.api.ACTIONS order)
A_SERVICE, A_EOI, A_IOAPIC_EOI, A_MASK, A_UNMASK, A_FORWARD, A_WAIT, A_RETURN = range(8)

# vCPU phases (irqlab.engine.phases)
RUN_IDLE, RUN_SVC, RUN_PT, KICK, TAKE, L0_CHECK, L0_INJECT, ACT, SERVICE_DONE = range(9)
EOI_L0, EOI_USER, MMIO_L0, MMIO_USER, VMRESUME_L0, REFLECT, MMIO_NEXT, L1_STI = range(9, 17)
RUN_EXIT, L1_EXIT, EOI_BACK = range(17, 20)  # kernel_tpr
HLT, HALT_L0, HALT_POLL, HALT_BLOCK, HALT_WAKE = range(40, 45)  # idle vCPUs (irqlab.engine.idle, kernel_idle)
L0, L1, L2, USER = range(4)
QEMU, KWORKER = -1, -2
# the event loop's slots, in the order it breaks ties (reference.run)
EV_END, EV_SAMPLE, EV_ARRIVAL, EV_TIMER, EV_HOST, EV_VCPU = range(6)
EV_ACTION = 6  # a guest action (routes; its slots come after the hosts', before the vCPUs')
EV_TSLOT = 7  # the timer mechanisms' slots (kernel_timers), scanned before the vCPUs (6: routes' actions)

# exit reasons (irqlab.engine.result.EXIT_REASONS order) and userspace exits
X_EXTERNAL_INTERRUPT, X_INTERRUPT_WINDOW, X_VMRESUME, X_PREEMPTION_TIMER, X_EOI_INDUCED = range(5)
X_APIC_ACCESS, X_MSR_WRITE, X_EPT_MISCONFIG = range(5, 8)
U_IOAPIC_EOI, U_MMIO = range(2)

RIP_L1_VMRESUME = np.int64(0xFFFFF80006A40115 - 2**64)  # phases.RIP_*, as int64 bit patterns
RIP_L1_EOI = np.int64(0xFFFFF80006A17E1A - 2**64)
RIP_L1_MMIO = np.int64(0xFFFFF80006A18C40 - 2**64)
RIP_L1_IRET = np.int64(0xFFFFF80006A17F02 - 2**64)
RIP_L1_STI = np.int64(0xFFFFF80006A40020 - 2**64)
RIP_L2_BASE = np.int64(0xFFFFF8022F3D8350 - 2**64)
RIP_GUEST_BASE = np.int64(0xFFFFFFFF81000000 - 2**64)

# ---------------------------------------------------------------- lane state
# A lane's ``s`` holds, in order: the offsets table (s[O_*] = where array O_* starts),
# the scalars (S_*), the program's scalars (s[CFG + C_*]), its arrays (dev, grp, gdev,
# gpin, gstep, gbefore, mit, pin_group, pin_level, used: flattened; the `trace` arrivals' timestamps), the integer
# parameters (s[s[O_PI] + p]), then the lane's state arrays from s[O_STATE] on.
(O_PDEV, O_PGRP, O_PGDEV, O_PGPIN, O_PGSTEP, O_PGBEFORE, O_PMIT, O_PPIN_GROUP, O_PPIN_LEVEL, O_PUSED,
 O_PTIMES,
 O_TPR_P,  # kernel_tpr's program (TPR_* below)
 O_TM_P,  # the timers' program (kernel_timers), packed right before the parameters
 O_PI,
 O_RT_P, O_IDLE_P, O_DS_PROG,  # the programs of routes, idle vCPUs, destinations (packed after the parameters)
 O_STATE,
 O_ARR_T, O_TIMER_T, O_PHASE, O_VT, O_MODE, O_SINCE, O_PRE_N, O_PRE, O_GRP, O_PC, O_RUN_START,
 O_PT_ARMED, O_PT_DEADLINE, O_RIP, O_EOI_VEC, O_MMIO_ACTION, O_IRQ_SEEN, O_STALL_START, O_IRR, O_ISR,
 O_TMR, O_P_IRR, O_P_RIRR, O_P_MASKED, O_P_LINE, O_PENDING, O_ASSERTED, O_FORWARDED, O_SVC_REM,
 O_EPISODE, O_WAITING, O_WAIT_PC, O_DRAWS, O_ARRST, O_MST, O_HANDLED_PIN, O_FRAMES, O_FRESH, O_MMIO_STEP,
 O_HOST_T, O_HOST_MASKED, O_RS_UP, O_ZT_NAME, O_ZT_EV,
 O_RT,  # routes' state (kernel_routes; its program O_RT_P: RP_*, 0 without actions)
 O_IDLE,  # idle vCPUs' state (kernel_idle; -1, as O_IDLE_P, without idle)
 O_DS_ARB,  # destinations: apic_arb_prio per vCPU (kernel_dest; O_DS_PROG -1: none)
 O_TPR,  # kernel_tpr's state (TPR_* below)
 O_TM,  # the timers' and deschedule plugins' state (kernel_timers)
 # the counters a lane hands back (kernelrun.stats_from), in this order, then its histogram
 O_ACC, O_STALL_MAX, O_EXITS, O_UEXITS, O_ACT, O_DEV_RAISED, O_DEV_DELIVERED, O_DEV_COALESCED,
 O_DEV_SERVICED, O_DEV_REDELIVERED, O_DEV_LOST, O_DEV_PENDING, O_LAT_MAX, O_LAT_MIN, O_LAT_N, O_LAT_SUM,
 O_LAT_HIST, O_SIZE) = range(85)
N_OFFSETS = O_SIZE + 1
FIRST_STATE_ARRAY = O_ARR_T
(S_T, S_THREAD, S_END_T, S_SAMPLE_T, S_FIRST_IRQ, S_TTP, S_TTP_L2, S_EOI_COUNT,
 S_RAISED, S_DELIVERED, S_COALESCED, S_SPURIOUS, S_IMMEDIATE, S_EVENTS, S_STAT_END_T,
 S_TRUNCATED, S_ZT_LOOP, S_ZT_CYCLE, S_DONE, S_NTB, S_TRACING, S_OVERFLOW, S_KEY0, S_KEY1, S_EDGE_MERGED,
 S_ZT_DEPTH, S_ZT_TURN, S_ZT_LAST_T, S_ZT_SAME, S_ZT_NH) = range(N_OFFSETS, N_OFFSETS + 30)
N_SCALARS = 30
CFG = N_OFFSETS + N_SCALARS
N_OUT_SCALARS = S_ZT_CYCLE + 1 - S_FIRST_IRQ  # out[i, :N_OUT_SCALARS] = s[S_FIRST_IRQ:S_ZT_CYCLE + 1]

# idle vCPUs (kernel_idle): its program array s[O_IDLE_P] (parameter indices, the IPI's group, then
# IP_DEV + 2 * d: device d's work parameter and work_on) and its state s[O_IDLE] (idle.N_COUNTERS, then IS_N per vCPU)
IP_HALT_POLL, IP_GROW, IP_GROW_START, IP_SHRINK, IP_WAKEUP, IP_IPI_GROUP, IP_DEV = range(7)
IS_WORK, IS_HPOLL, IS_HALT_START, IS_POLL_END, IS_WAITED, IS_N = range(6)

# zero-time cycles (kernel_mech): nested lazy EOI turns, events at one instant, the last names kept
ZT_DEPTH, ZT_EVENTS, ZT_HIST = 8, 100_000, 64

# trace records: tb[i] = (kind, t, thread, code, a0, a1, a2, a3); kind 0 event, 1 mode, 2 counter
TR_EVENT, TR_MODE, TR_COUNTER, TR_SAMPLE = range(4)
N_SAMPLE = 11  # integers of one sample (kernel.sample), in records of 4: code = which four
(E_KVM_EXIT, E_APIC_ACCEPT, E_KVM_APIC_ACCEPT, E_LINE, E_IOAPIC_SET_IRQ, E_KVM_SET_IRQ,
 E_IOAPIC_DELIVER, E_KVM_MSI_SET_IRQ, E_KVM_IOAPIC_SET_IRQ, E_REDIRECT, E_POLL, E_MSI,
 E_NESTED_VMEXIT, E_KVM_ENTRY, E_HANDLER_ENTRY, E_NESTED_INJECT, E_INJ_VIRQ, E_HANDLER_EXIT,
 E_EOI, E_KVM_EOI, E_USERSPACE_EXIT, E_IOAPIC_EOI, E_KVM_DELAYED_EOI, E_QEMU_DELAYED,
 E_SPURIOUS_DISABLE, E_XEN_RATELIMIT,
 E_VFIO_INTX, E_KVM_ACK_IRQ, E_VFIO_UNMASK, E_RESAMPLE, E_LAZY_EOI, E_ZERO_TIME_LOOP) = range(32)
E_RT_MSI_WRITE, E_RT_EXITMAP = 32, 33  # routes: irqlab_msi_write (device, dest), irqlab_eoi_exitmap (vCPU, group bits)
E_HLT_EXIT, E_APIC_IPI, E_WAKE, E_VCPU_WAKEUP, E_HALT_POLL_NS = range(34, 39)  # idle vCPUs (kernel_idle)
(E_PIT_TIMER, E_RTC_COALESCED, E_STIMER_CALLBACK, E_STIMER_EXPIRATION, E_STIMER_START, E_DESCHEDULE,
 E_RESCHEDULE) = range(48, 55)  # kernel_timers (apart from the other mechanisms' codes from 32)
TB_WIDTH = 8
FRAME = 5  # slots of one frame of kernel.service's stack
DS_LOWEST, DS_N, DS_TARGETS = range(3)  # a group's record in the destinations program (kernel_dest)
