"""A compiled program as the arrays the per-lane kernel reads (no Numba needed here).

:func:`kernel_support` says whether the kernel can run a program (and if not,
why); :func:`pack` turns the program into :class:`Packed` arrays, shaped and
indexed as :mod:`irqlab.engine.kernel` documents (``cfg``, ``dev[D, N_DEV]``,
``grp[G, N_GRP]``, ``mit[M, N_MIT]`` ...), and lays out a lane's state ``s``.
A plugin supports the kernel when its class sets ``kernel_kind`` to one of the
kinds the kernel implements (the built-in plugins do); see
docs/implementations.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irqlab.engine import kernel_ids as K
from irqlab.engine.program import Program
from irqlab.engine.stats import N_BINS
from irqlab.plugins.api import ACTIONS
from irqlab.plugins.builtin.services import BODY_DISTS

# the parameters each plugin kind reads, in the order of its P0..P3 columns
ARRIVAL_PARAMS = {K.ARR_ONCE: ("at",), K.ARR_PERIODIC: ("period", "start", "count"),
                  K.ARR_POISSON: ("rate", "start"), K.ARR_BURSTY: ("rate", "on", "off", "start"),
                  K.ARR_TRACE: ("offset",)}  # then P1, P2: its timestamps' start in O_PTIMES, and count
MITIGATION_PARAMS = {K.MIT_KVM_EOI_DELAY: ("threshold", "delay", "hz"), K.MIT_QEMU_EOI_THROTTLE: ("threshold", "delay"),
                     K.MIT_PT_THROTTLE: ("threshold", "delay"),
                     K.MIT_LINUX_SPURIOUS: ("window", "threshold", "reset", "poll", "pre_5_13"),
                     K.MIT_XEN_RATELIMIT: ("limit", "window"),
                     K.MIT_DESCHEDULE: ("vcpu", "start", "period", "length")}
SERVICE_PARAMS = {K.SVC_CONSTANT: ("mean",), K.SVC_EXPONENTIAL: ("mean",), K.SVC_UNIFORM: ("low", "high"),
                  K.SVC_LOGNORMAL: ("mean", "sigma"), K.SVC_GAMMA: ("mean", "shape")}


KERNEL_MECHANISMS = frozenset({"vfio", "amd", "lazy_eoi"})  # Program.mechanisms the kernel runs (kernel_mech)
KERNEL_MECHANISMS |= {"routes"}  # kernel_routes
KERNEL_MECHANISMS |= {"idle"}  # kernel_idle
KERNEL_MECHANISMS |= {"destinations"}  # kernel_dest
KERNEL_MECHANISMS |= {"tpr", "l2_exit", "l2_eoi"}  # kernel_tpr
KERNEL_MECHANISMS |= {"timers_pit", "timers_rtc", "timers_stimer", "deschedule"}  # kernel_timers


def kernel_support(program: Program) -> str | None:
    """``None`` if the kernel runs ``program``, else why not (one sentence fragment)."""
    others = program.mechanisms - KERNEL_MECHANISMS
    if others:
        return f"the kernel does not run {', '.join(sorted(others))} yet"
    for d in program.devices:
        plugins = ((d.arrival, "arrival"), (d.model, "device"))
        if d.service_dist is not None:
            plugins += ((d.service_dist, "service"),)
        for plugin, kind in plugins:
            if kernel_kind(plugin) is None:
                return f"{kind} plugin '{plugin.name}' has no kernel support"
    hooks = set()
    for m in program.mitigations:
        if kernel_kind(m.plugin) is None:
            return f"mitigation plugin '{m.plugin.name}' has no kernel support"
        if kernel_kind(m.plugin) == K.MIT_PLUGIN:
            hooks.add(vars(type(m.plugin))["kernel_hook"])
            if len(type(m.plugin).params) > 5:
                return f"mitigation plugin '{m.plugin.name}' has more than 5 parameters (the kernel's limit)"
    if len(hooks) > 1:
        return "more than one third-party kernel hook in the scenario"
    if hooks:
        try:
            kernel_hook(program)
        except Exception as e:  # noqa: BLE001 - a broken plugin falls back to its NumPy hooks
            return f"the kernel hook '{hooks.pop()}' failed to load ({type(e).__name__}: {e})"
    tables = [len(p.kernel_times()) for p in _tabled(program)]
    if sum(tables) > K.TRACE_TIMES_MAX:
        return f"trace arrivals and empirical service times of more than {K.TRACE_TIMES_MAX} values"
    if 0 in tables[sum(1 for d in program.devices if kernel_kind(d.arrival) == K.ARR_TRACE):]:
        return "an empirical service time without samples"
    if len(program.groups) > 62:
        return "more than 62 vectors"
    return None


def _tabled(program: Program) -> list:
    """The plugins whose values the kernel reads from a table (``O_PTIMES``): `trace`
    arrivals, then empirical service times."""
    return ([d.arrival for d in program.devices if kernel_kind(d.arrival) == K.ARR_TRACE]
            + [d.service_dist for d in program.devices
               if d.service_dist is not None and kernel_kind(d.service_dist) == K.SVC_EMPIRICAL])


def kernel_kind(plugin) -> int | None:
    """The kernel kind a plugin's own class declares (``kernel_kind``; a mitigation naming its
    ``kernel_hook``: ``MIT_PLUGIN``), not inherited: a subclass that changes a hook does not
    silently keep its base's kernel code."""
    own = vars(type(plugin))
    if plugin.kind == "mitigation" and own.get("kernel_hook"):
        return K.MIT_PLUGIN
    return own.get("kernel_kind")


def hook_target(program: Program) -> tuple[str, str] | None:
    """``(module, function)`` of the program's third-party kernel hook (a mitigation's
    ``kernel_hook = "module:function"``), or None."""
    for m in program.mitigations:
        if kernel_kind(m.plugin) == K.MIT_PLUGIN:
            module, _, name = vars(type(m.plugin))["kernel_hook"].partition(":")
            return module, name
    return None


def kernel_hook(program: Program):
    """The compiled kernel hook of the program's third-party mitigations (:func:`hook_target`),
    or :func:`irqlab.engine.kernel_api.no_plugin`."""
    import importlib

    from irqlab.engine import kernel_api
    from irqlab.engine.kernelrun import fresh_hook

    target = hook_target(program)
    if target is None:
        return kernel_api.no_plugin
    return fresh_hook(importlib.import_module(target[0]), target[1])


@dataclass
class Packed:
    """A program for the kernel: ``tmpl`` (``int64[s[O_STATE]]``), the start of every lane's
    state ``s`` (offsets, zeroed scalars, the program's arrays, the parameters at their
    program values), ``size`` the length of ``s``, ``paths`` the parameters in index order."""

    tmpl: np.ndarray
    size: int
    paths: tuple[str, ...]

    @property
    def o(self) -> np.ndarray:
        return self.tmpl[: K.N_OFFSETS]


def pack(program: Program) -> Packed:
    """The arrays of ``program`` (which :func:`kernel_support` accepts)."""
    p = program
    paths = tuple(sorted(p.params))
    index = {path: i for i, path in enumerate(paths)}
    V, D, G, M, Pn = p.n_vcpus, len(p.devices), len(p.groups), len(p.mitigations), p.n_pins
    i64 = np.int64

    cfg = np.zeros(K.N_CFG, i64)
    cfg[[K.C_V, K.C_D, K.C_PINS, K.C_G, K.C_NT, K.C_M]] = V, D, Pn, G, p.n_timers, M
    cfg[K.C_SPLIT], cfg[K.C_APICV], cfg[K.C_X2APIC] = p.split, p.apicv, p.x2apic
    cfg[K.C_BARE], cfg[K.C_NESTED] = p.bare, p.nested
    cfg[K.C_SUPPRESS_ON], cfg[K.C_ACK_ON_EXIT] = p.suppress_mode == "on", p.ack_on_exit
    cfg[K.C_INNER], cfg[K.C_OWNER] = p.innermost, (-1 if p.split else -2)
    used = sorted({d.pin for d in p.devices if d.pin >= 0})
    cfg[K.C_NUSED], cfg[K.C_NB] = len(used), N_BINS
    cfg[K.C_L1_IRQ_WINDOW] = getattr(p, "l1_irq_window", False)
    cfg[K.C_AMD], cfg[K.C_VFIO] = "amd" in p.mechanisms, bool(p.vfio_devices)
    cfg[K.C_LAZY_LEVEL], cfg[K.C_RESAMPLE_UNMASK] = p.lazy_eoi_level, p.resample_on_unmask
    cfg[K.C_SERIES] = bool(p.series_fields)
    cfg[K.C_TPR], tpr_prog, tpr_state = _pack_tpr(p, index)
    for slot, path in ((K.C_P_DURATION, "run.duration"), (K.C_P_MAX_EVENTS, "run.max_events"),
                       (K.C_P_VMEXIT, "costs.vmexit"), (K.C_P_VMENTRY, "costs.vmentry"),
                       (K.C_P_NESTED_EXIT, "costs.nested_exit"), (K.C_P_NESTED_ENTRY, "costs.nested_entry"),
                       (K.C_P_USERSPACE_EXIT, "costs.userspace_exit"), (K.C_P_EOI, "costs.eoi"),
                       (K.C_P_IOAPIC, "costs.ioapic"), (K.C_P_MMIO, "costs.mmio"),
                       (K.C_P_PT_RATE, "machine.preemption_timer_rate"), (K.C_P_TSC, "machine.tsc"),
                       (K.C_P_L1_IRQ_OFF, "costs.l1_irq_off"), (K.C_P_VFIO, "costs.vfio"),
                       (K.C_P_SELF_IPI, "costs.self_ipi"), (K.C_P_EVERY, "run.series.every")):
        cfg[slot] = index.get(path, -1)

    dev = np.zeros((D, K.N_DEV), i64)
    times: list[np.ndarray] = []
    for d in p.devices:
        row = dev[d.index]
        row[K.D_MSI], row[K.D_PIN], row[K.D_VECTOR] = d.delivery == "msi", d.pin, d.vector
        row[K.D_LEVEL], row[K.D_DEST], row[K.D_GROUP] = d.trigger == "level", d.dest, d.group
        row[K.D_LOWERS], row[K.D_SERVICE], row[K.D_VFIO] = d.lowers_line, index.get(d.service, -1), d.vfio
        row[K.D_SVC_KIND], row[K.D_SVC_P0], row[K.D_SVC_P1] = -1, -1, -1
        if d.service_dist is not None and kernel_kind(d.service_dist) == K.SVC_EMPIRICAL:
            row[K.D_SVC_KIND] = K.SVC_EMPIRICAL
            row[K.D_SVC_P0], row[K.D_SVC_P1] = sum(len(x) for x in times), len(d.service_dist.kernel_times())
            times.append(d.service_dist.kernel_times())
        elif d.service_dist is not None:
            row[K.D_SVC_KIND] = kernel_kind(d.service_dist)
            for j, name in enumerate(SERVICE_PARAMS[row[K.D_SVC_KIND]]):
                row[K.D_SVC_P0 + j] = index[f"{d.service}.{name}"]
        kind = kernel_kind(d.arrival)
        row[K.D_ARR_KIND], row[K.D_MODEL_KIND] = kind, kernel_kind(d.model)
        for j, name in enumerate(ARRIVAL_PARAMS[kind]):
            row[K.D_ARR_P0 + j] = index[f"{d.arrival_path}.{name}"]
        if kind == K.ARR_TRACE:
            row[K.D_ARR_P1], row[K.D_ARR_P2] = sum(len(x) for x in times), len(d.arrival.kernel_times())
            times.append(d.arrival.kernel_times())

    width = max([1] + [len(g.devices) for g in p.groups] + [len(g.pins) for g in p.groups]
                + [len(g.steps) for g in p.groups])
    grp = np.zeros((G, K.N_GRP), i64)
    gdev, gpin = np.zeros((G, width), i64), np.zeros((G, width), i64)
    gstep, gbefore = np.zeros((G, width), i64), np.full((G, width), -1, i64)
    for g in p.groups:
        row = grp[g.index]
        row[K.G_VECTOR], row[K.G_LEVEL], row[K.G_IOAPIC] = g.vector, g.level, g.delivery == "ioapic"
        row[K.G_DEST], row[K.G_EOI_EXIT], row[K.G_SUPPRESS] = g.dest, g.eoi_exit, g.suppress
        row[K.G_NSTEPS], row[K.G_NDEVS], row[K.G_NPINS] = len(g.steps), len(g.devices), len(g.pins)
        row[K.G_IRQ] = g.pins[0] if g.pins else g.vector
        row[K.G_BODY_KIND], row[K.G_BODY_P], row[K.G_BODY_CV] = K.SVC_CONSTANT, -2, -1
        if g.body_dist != "constant":
            row[K.G_BODY_KIND] = BODY_DISTS.index(g.body_dist)
            row[K.G_BODY_P], row[K.G_BODY_CV] = index[f"{g.body_path}.body"], index[f"{g.body_path}.body_cv"]
        gdev[g.index, : len(g.devices)] = g.devices
        gpin[g.index, : len(g.pins)] = g.pins
        for k, (step, before) in enumerate(zip(g.steps, g.before)):
            gstep[g.index, k] = ACTIONS.index(step.action)
            gbefore[g.index, k] = -1 if before is None else index[before]

    mit = np.zeros((M, K.N_MIT), i64)
    state = 0
    for m in p.mitigations:
        kind = kernel_kind(m.plugin)
        row = mit[m.index]
        row[K.M_KIND], row[K.M_TIMER_BASE], row[K.M_STATE] = kind, m.timer_base, state
        row[K.M_NTIMERS] = type(m.plugin).timers
        if kind == K.MIT_PLUGIN:
            names = tuple(prm.name for prm in type(m.plugin).params)
            row[K.M_HOOKS] = sum(1 << e for e, h in enumerate(K.KH_NAMES) if h == "init" or h in type(m.plugin).hooks
                                 or (h == "timer" and type(m.plugin).timers))
        else:
            names = MITIGATION_PARAMS[kind]
        for j, name in enumerate(names):
            row[K.M_P0 + j] = index[f"{m.path}.{name}"]
        if kind == K.MIT_PLUGIN:
            state += int(m.plugin.kernel_state(Pn, V))
        else:
            state += 2 * V if kind == K.MIT_PT_THROTTLE else K.MIT_STATE_PER_PIN[kind] * Pn

    tm_prog, tm_state = _pack_timers(p, index)
    # the template: offsets, scalars, cfg, program arrays, parameters; then the state arrays
    o = np.zeros(K.N_OFFSETS, i64)
    cfg[K.C_W] = width
    chunks = [o, np.zeros(K.N_SCALARS, i64), cfg]
    at = K.CFG + K.N_CFG
    pin_group = np.asarray(p.pin_group, i64) if Pn else np.zeros(0, i64)
    pin_level = np.asarray(p.pin_level, i64) if Pn else np.zeros(0, i64)
    pi = np.zeros(len(paths), i64)
    rt_prog, rt_size = _pack_routes(p, index)
    for j, path in enumerate(paths):
        pi[j] = _as_int(np.asarray([p.params[path]]))[0]
    idle_prog, idle_state = _pack_idle(p, index)
    for slot, arr in ((K.O_PDEV, dev), (K.O_PGRP, grp), (K.O_PGDEV, gdev), (K.O_PGPIN, gpin),
                      (K.O_PGSTEP, gstep), (K.O_PGBEFORE, gbefore), (K.O_PMIT, mit),
                      (K.O_PPIN_GROUP, pin_group), (K.O_PPIN_LEVEL, pin_level),
                      (K.O_PUSED, np.asarray(used, i64)),
                      (K.O_PTIMES, np.concatenate(times).astype(i64) if times else np.zeros(0, i64)),
                      (K.O_TPR_P, tpr_prog), (K.O_TM_P, tm_prog), (K.O_PI, pi),
                      (K.O_RT_P, rt_prog), (K.O_IDLE_P, idle_prog), (K.O_DS_PROG, _pack_dest(p))):
        o[slot] = at
        chunks.append(arr.reshape(-1))
        at += arr.size
    o[K.O_DS_PROG] = o[K.O_DS_PROG] if "destinations" in p.mechanisms else -1
    if not rt_prog.size:
        o[K.O_RT_P] = 0  # no guest actions (kernel_routes.rt_on)
    o[K.O_STATE] = at
    sizes = {
        K.O_ARR_T: D, K.O_TIMER_T: p.n_timers, K.O_PRE: 4 * V, K.O_P_IRR: Pn, K.O_P_RIRR: Pn,
        K.O_P_MASKED: Pn, K.O_P_LINE: Pn, K.O_PENDING: D, K.O_ASSERTED: D, K.O_FORWARDED: D,
        K.O_SVC_REM: D, K.O_EPISODE: D, K.O_WAITING: G, K.O_WAIT_PC: G, K.O_DRAWS: 3 * D + M + G,
        K.O_ARRST: 2 * D, K.O_MST: state, K.O_HANDLED_PIN: Pn, K.O_FRAMES: K.FRAME * (Pn + 1),
        K.O_FRESH: D, K.O_HOST_T: D, K.O_HOST_MASKED: D, K.O_RS_UP: Pn, K.O_ZT_NAME: K.ZT_HIST,
        K.O_TPR: tpr_state,
        K.O_ZT_EV: K.ZT_HIST, K.O_DEV_REDELIVERED: D, K.O_DEV_LOST: D, K.O_DEV_PENDING: D, K.O_LAT_MIN: D,
        K.O_ACC: 4 * V, K.O_EXITS: 8, K.O_IDLE: idle_state,
        K.O_UEXITS: 2, K.O_ACT: M, K.O_DEV_RAISED: D, K.O_DEV_DELIVERED: D, K.O_DEV_COALESCED: D,
        K.O_DEV_SERVICED: D, K.O_LAT_MAX: D, K.O_LAT_N: D, K.O_LAT_SUM: D, K.O_LAT_HIST: D * N_BINS,
        K.O_RT: rt_size, K.O_TM: tm_state, K.O_DS_ARB: V if "destinations" in p.mechanisms else 0,
    }
    for name in range(K.FIRST_STATE_ARRAY, K.O_SIZE):
        o[name] = at
        at += sizes.get(name, V)  # the rest are per vCPU
    o[K.O_SIZE] = at
    if not p.idle:
        o[[K.O_IDLE_P, K.O_IDLE]] = -1  # kernel_idle.idle_on
    tmpl = np.concatenate(chunks)
    return Packed(tmpl, int(at), paths)


def _pack_routes(p: Program, index: dict[str, int]) -> tuple[np.ndarray, int]:
    """The routes program (``s[O_RT_P:]``, :mod:`irqlab.engine.kernel_routes`) and the size of
    its state (``s[O_RT:]``): none for a program without guest actions."""
    from irqlab.engine.compiler import RTC_GSI
    from irqlab.ir import EOI_SCANS

    if not p.actions:
        return np.zeros(0, np.int64), 0
    V, Pn, D, A = p.n_vcpus, p.n_pins, len(p.devices), len(p.actions)
    writes = [w for a in p.actions for w in a.writes]
    head = np.zeros(K.RP_HEAD, np.int64)
    head[K.RP_N], head[K.RP_SCAN] = A, EOI_SCANS.index(p.eoi_scan)
    head[K.RP_FIRST], head[K.RP_RTC] = p.rte_update == "routes_first", -1 if p.split else RTC_GSI
    at = K.RT_N_OUT
    for field, n in ((K.RP_ENTRY, V), (K.RP_PIR, V), (K.RP_SCAN_REQ, V), (K.RP_BITS, V), (K.RP_RTE, Pn),
                     (K.RP_KDEST, Pn), (K.RP_DEAD, Pn), (K.RP_MSI, D), (K.RP_ACT, A)):
        head[field] = at
        at += n
    head[K.RP_BITS0] = K.RP_HEAD + K.RP_W * (A + len(writes))
    acts = np.zeros((A, K.RP_W), np.int64)
    first = K.RP_HEAD + K.RP_W * A
    for a in p.actions:
        acts[a.index] = index[a.at], index[a.every], len(a.writes), first
        first += K.RP_W * len(a.writes)
    rows = np.array([(K.RT_IOAPIC if target == "ioapic" else K.RT_MSI, i, dest, mask)  # routes.KEEP is -1
                     for target, i, dest, mask in writes], np.int64).reshape(-1, K.RP_W)
    bits0 = np.zeros(V, np.int64)  # kernel_routes.routes_init
    for g in p.groups:
        if g.eoi_exit:
            for v in g.targets or (g.dest,):
                bits0[v] |= 1 << g.index
    return np.concatenate([head, acts.reshape(-1), rows.reshape(-1), bits0]), at


def _pack_idle(p: Program, index: dict[str, int]) -> tuple[np.ndarray, int]:
    """Idle vCPUs (``kernel_idle``): its program array (the parameter indices of the halt
    polling and the wake-up, the reschedule IPI's group, each device's ``work`` parameter
    and ``work_on``) and the size of its state (the counters and ``IS_N`` per vCPU); empty
    and 0 without idle."""
    from irqlab.engine.idle import N_COUNTERS

    if not p.idle:
        return np.zeros(0, np.int64), 0
    head = [index[f"machine.{name}"] for name in ("halt_poll", "halt_poll_grow", "halt_poll_grow_start",
                                                  "halt_poll_shrink", "wakeup")] + [p.ipi_group]  # IP_*
    devs = [x for d in p.devices for x in (index[f"device.{d.name}.work"], d.work_on)]
    return np.asarray(head + devs, np.int64), N_COUNTERS + K.IS_N * p.n_vcpus


def _pack_dest(p: Program) -> np.ndarray:
    """The destinations program (:mod:`irqlab.engine.kernel_dest`): per group -1 (a plain
    message) or where its record starts: lowest, the number of targets, the targets.
    Empty without destinations (every message a fixed one to one physical APIC ID)."""
    if "destinations" not in p.mechanisms:
        return np.zeros(0, np.int64)
    out = [-1] * len(p.groups)
    for g in p.groups:
        if g.msg is not None:
            out[g.index] = len(out)
            rec = [0] * K.DS_TARGETS + list(g.targets)
            rec[K.DS_LOWEST], rec[K.DS_N] = int(g.lowest), len(g.targets)
            out += rec
    return np.asarray(out, np.int64)


def _pack_tpr(p: Program, index: dict[str, int]) -> tuple[int, np.ndarray, int]:
    """kernel_tpr's program: ``(flags, prog, state)``, the ``TPR_*`` flags of ``cfg[C_TPR]``,
    the array ``O_TPR_P`` (``int64[N_TP]``: the indices of ``machine.tpr``,
    ``machine.l2_exit_every`` and ``costs.handler``, -1 if absent, and the bits of the groups
    whose EOI L2 writes) and the size of the state ``O_TPR`` (``1 + 3 * V``); all empty when
    the program uses none of TPR, L2 exits and L2 EOIs."""
    l2_eoi = [g.index for g in p.groups if g.l2_eoi]
    svi = bool(l2_eoi) and p.apicv and not p.defer_svi  # vmcs01's SVI can go stale (docs/model.md, the nested vPPR)
    flags = ((K.TPR_ON if p.tpr else 0) | (K.TPR_EXIT if p.l2_exit else 0) | (K.TPR_L2EOI if l2_eoi else 0)
             | (K.TPR_SVI if svi else 0) | (K.TPR_REFRESH if svi and p.vppr_refresh else 0))
    if not flags:
        return 0, np.zeros(0, np.int64), 0
    prog = np.zeros(K.N_TP, np.int64)
    prog[[K.TP_TPR, K.TP_EVERY, K.TP_HANDLER]] = [index.get(path, -1) for path in
                                                  ("machine.tpr", "machine.l2_exit_every", "costs.handler")]
    prog[K.TP_L2EOI] = sum(1 << g for g in l2_eoi)
    return flags, prog, 1 + 3 * p.n_vcpus


def _pack_timers(p: Program, index: dict[str, int]) -> tuple[np.ndarray, int]:
    """The timers' program (``int64``, laid out as :mod:`irqlab.engine.kernel_timers`
    says; empty without timer devices and deschedule plugins) and the size of their state."""
    from irqlab.engine import kernel_timers_ids as T

    n_ds = len(p.desched)
    if not p.timer_devices and not n_ds:
        return np.zeros(0, np.int64), 0
    D, V = len(p.devices), p.n_vcpus
    kinds = {"pit": (T.TM_PIT, "reinject"), "rtc": (T.TM_RTC, "slew"), "stimer": (T.TM_STIMER, "retry")}
    rtcs = [j for j, (_, kind) in enumerate(p.timer_devices) if kind == "rtc"]
    head = [len(p.timer_devices), n_ds, len(rtcs)]
    dev = [-1] * D
    timers = []
    for j, (di, kind) in enumerate(p.timer_devices):
        d = p.devices[di]
        dev[di] = j
        code, param = kinds[kind]
        slot = n_ds + rtcs.index(j) if kind == "rtc" else -1
        # dsl/timer_checks.py: a timer's arrival is periodic
        timers += [di, code, index[f"{d.model_path}.{param}"], index[f"{d.arrival_path}.period"], slot]
    prog = np.asarray(head + dev + timers + rtcs, np.int64)
    state = T.NTS * len(p.timer_devices) + n_ds + len(rtcs) + T.NDS * n_ds + (T.NH * V if n_ds else 0)
    return prog, state


def lane_param_arrays(packed: Packed, params: dict[str, np.ndarray]):
    """``(tmpl, pf, var_idx, var_i, var_f)``: the template with the parameters every lane
    shares, those parameters as float64 (``pf[NP]``), and those that vary (``var_idx[p]``
    their column in ``var_*[L, K]``, -1 if shared), each as int64 and float64 (a lane's
    value, as ``Program.lane_params`` gives it)."""
    n_params = len(packed.paths)
    tmpl = packed.tmpl.copy()
    pi0 = int(tmpl[K.O_PI])
    shared_f = np.zeros(n_params, np.float64)
    var_idx = np.full(n_params, -1, np.int64)
    varying = []
    for j, path in enumerate(packed.paths):
        arr = params[path]
        if (arr.strides and arr.strides[0] == 0) or len(arr) <= 1 or (arr == arr[0]).all():
            if len(arr):
                tmpl[pi0 + j], shared_f[j] = _as_int(arr[:1])[0], arr[:1].astype(np.float64)[0]
        else:
            var_idx[j] = len(varying)
            varying.append(arr)
    n = len(next(iter(params.values()))) if params else 0
    var_i = np.zeros((n, len(varying)), np.int64)
    var_f = np.zeros((n, len(varying)), np.float64)
    for k, arr in enumerate(varying):
        var_i[:, k] = _as_int(arr)
        var_f[:, k] = arr.astype(np.float64)
    return tmpl, shared_f, var_idx, var_i, var_f


def _as_int(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "i":
        return arr
    with np.errstate(invalid="ignore", over="ignore"):
        return np.nan_to_num(arr, posinf=0, neginf=0).astype(np.int64)
