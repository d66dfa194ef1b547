"""Run a batch with the per-lane kernel, and turn what it leaves into a BatchResult.

Untraced lanes run in one parallel call (:func:`irqlab.engine.kernel.run_lanes`).
A traced lane runs alone, with a record buffer of :data:`TRACE_BUFFER` records:
the kernel stops when it is half full, the records are handed to the lane's
:class:`~irqlab.engine.trace.Trace` (decoded into the text the other executors
emit) and the lane resumes, so the kernel's own memory stays bounded however
long the trace.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

import numpy as np

from irqlab.engine import kernel_ids as K
from irqlab.engine.idle import N_COUNTERS as N_IDLE, RESCHEDULE_VECTOR
from irqlab.engine.kernelprog import Packed, kernel_hook, lane_param_arrays, pack
from irqlab.engine.program import Lane, Program
from irqlab.engine.result import EXIT_REASONS, USERSPACE_EXITS, BatchResult
from irqlab.engine.rng import lane_keys
from irqlab.engine.stats import N_BINS, Stats, finish_batch, series_arrays
from irqlab.engine.trace import Trace, record_text

TRACE_BUFFER = 1 << 16
EXACT_SUM = 2**53  # latency sums (int64 in the kernel) equal a float64 sum below this

_compiled = False


def kernel_module(notify: Callable[[str], None] | None = None):
    """The Numba kernel module, compiled or loaded from the on-disk cache. ``notify`` is
    told (``"compiling"``) before the first call of the process, which compiles the
    kernel, or loads it from the cache in well under a second."""
    global _compiled
    from irqlab.engine import kernel

    if not _compiled:
        drop_stale_cache(kernel)
        if not _cache_present(kernel):
            if notify is not None:
                notify("compiling")
            elif sys.stderr.isatty():
                print("irqlab: compiling the per-lane kernel (once per installation; cached on disk)...",
                      file=sys.stderr, flush=True)
        _warm(kernel)
        _compiled = True
    return kernel


# the kernel's modules: Numba's cache of a function is keyed by its own file only, but holds
# the code of the functions it calls and the constants it imports from these
KERNEL_SOURCES = ("kernel_ids", "kernel_base", "kernel_ioapic", "kernel_mech", "kernel_service", "kernel")
KERNEL_SOURCES += ("kernel_routes",)
KERNEL_SOURCES += ("kernel_idle",)
KERNEL_SOURCES += ("kernel_dest",)
KERNEL_SOURCES += ("kernel_tpr",)
KERNEL_SOURCES += ("kernel_timers_ids", "kernel_timers")
KERNEL_SOURCES += ("kernel_api",)  # inlined into third-party hooks (fresh_hook)
STAMP = "irqlab_kernel.stamp"


def source_stamp() -> str:
    """A hash of the kernel's source files."""
    import hashlib

    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in KERNEL_SOURCES:
        with open(os.path.join(here, f"{name}.py"), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def drop_stale_cache(kernel) -> None:
    """Delete the kernel's cached code if it was compiled from other sources (a change to
    ``kernel_ids.py`` or to a callee's module leaves the callers' cache entries valid to
    Numba, with the old code inside), then record the current sources' stamp."""
    try:
        drop_stale(kernel.run_lanes._cache._cache_path, KERNEL_SOURCES, STAMP)
    except AttributeError:  # no cache to check: Numba compiles, as without one
        pass


def drop_stale(path: str, modules, stamp_name: str) -> bool:
    """In the cache directory ``path``, delete the cached code of ``modules`` (file stems)
    unless ``stamp_name`` there records the kernel's current :func:`source_stamp`; then
    record it. True if it deleted (the code must be compiled again)."""
    stamp = source_stamp()
    stamp_file = os.path.join(path, stamp_name)
    try:
        if os.path.exists(stamp_file):
            with open(stamp_file, encoding="ascii") as f:
                if f.read() == stamp:
                    return False
        if not os.path.isdir(path):
            return False
        prefixes = tuple(f"{name}." for name in modules)
        dropped = False
        for name in os.listdir(path):
            if name.startswith(prefixes) and name.endswith((".nbi", ".nbc")):
                os.remove(os.path.join(path, name))
                dropped = True
        with open(stamp_file, "w", encoding="ascii") as f:
            f.write(stamp)
        return dropped
    except OSError:  # a read-only cache: Numba does not write there either
        return False


def fresh_hook(module, name: str):
    """``module.name``, a third-party kernel hook (:mod:`irqlab.engine.kernel_api`), compiled
    against the kernel's current layout. The hook inlines kernel_api's helpers, which read
    the lane at the offsets of ``kernel_ids.py``; Numba keys the hook's cache by its own
    file only, so after a change of the layout its cached code would read the wrong slots.
    When the kernel's sources changed since the hook's cache was written, the stale code
    (the helpers' and every cached function of the hook's module) is deleted and the module
    is imported again, which compiles it."""
    import importlib

    from irqlab.engine import kernel_api

    hook = getattr(module, name)
    path = getattr(getattr(hook, "_cache", None), "_cache_path", None)
    helpers = getattr(getattr(kernel_api.now, "_cache", None), "_cache_path", None)
    if path is None or helpers is None:  # the JIT is off, or nothing is cached
        return hook
    drop_stale(helpers, KERNEL_SOURCES, STAMP)
    stem = os.path.splitext(os.path.basename(module.__file__))[0]
    if drop_stale(path, (stem,), f"irqlab_hook.{stem}.stamp"):
        module = importlib.reload(module)
        hook = getattr(module, name)
    return hook


def _cache_present(kernel) -> bool:
    """Whether Numba's cache already holds ``run_lanes`` (then the first call loads it)."""
    try:
        cache = kernel.run_lanes._cache
        return os.path.exists(cache._cache_path) and any(
            f.startswith("kernel.run_lanes") and f.endswith(".nbi") for f in os.listdir(cache._cache_path))
    except Exception:  # noqa: BLE001 - only decides whether to say "compiling"
        return False


def _warm(kernel) -> None:
    """Compile (or load) the kernel's entry points with the types every run uses."""
    from irqlab.engine.program import Lane

    pr = _WARM_PROGRAM()
    run_packed(kernel, pr, pack(pr), [Lane(0), Lane(1)], (0,))  # a traced lane and the parallel batch


def _WARM_PROGRAM() -> Program:
    from irqlab import engine
    from irqlab.ir import Device, LevelSpec, Machine, Quantity, RunSpec, Scenario, Vcpu
    from irqlab.ir import COSTS, Arg, PluginUse

    costs = tuple(Arg(k, d) for k, (d, _) in COSTS.items())
    once = PluginUse("arrival", "once", (Arg("at", Quantity(0.0, "s")),))
    dev = Device("d", vector=0x30, delivery="ioapic", gsi=10, trigger="level", arrival=once,
                 model=PluginUse("device", "generic", ()), serviced_by="L1", service=Quantity(1e-6, "s"))
    pol = PluginUse("policy", "lower_then_eoi", (Arg("body", "costs.handler"),))
    scn = Scenario(name="warm", machine=Machine(), costs=costs,
                   vcpus=(Vcpu(0, (LevelSpec("L0", "l0"), LevelSpec("L1", "l1", pol))),),
                   devices=(dev,), mitigations=(), run=RunSpec(duration=Quantity(1e-5, "s")))
    return engine.compile(scn)


def run_kernel(program: Program, lanes: Sequence[Lane], trace_lanes: tuple[int, ...] = (),
               notify: Callable[[str], None] | None = None, *, jit: bool = True) -> BatchResult:
    """Every lane of ``lanes`` with the kernel (``program`` must pass ``kernel_support``):
    compiled, or (``jit=False``) its own Python run as the readable reference
    (:mod:`irqlab.engine.kernelpy`), with the same results."""
    if jit:
        kn, plug = kernel_module(notify), None
    else:
        from irqlab.engine.kernelpy import python_kernel
        from irqlab.engine.kernelprog import hook_target

        target = hook_target(program)
        modules = python_kernel(target and target[0])
        kn = modules["irqlab.engine.kernel"]
        plug = getattr(modules[target[0]], target[1]) if target else modules["irqlab.engine.kernel_api"].no_plugin
    # as Python (here, or NUMBA_DISABLE_JIT=1) the random numbers' hash wraps uint64 with
    # NumPy's overflow warning; the compiled kernel wraps silently
    with np.errstate(over="ignore"):
        return run_packed(kn, program, pack(program), list(lanes), tuple(trace_lanes), plug)


def run_packed(kn, program: Program, packed: Packed, lanes: list[Lane], trace_lanes: tuple[int, ...],
               plug=None) -> BatchResult:
    """Run ``lanes`` with the kernel module ``kn`` and the hook ``plug`` (None: the program's
    compiled :func:`~irqlab.engine.kernelprog.kernel_hook`)."""
    n = len(lanes)
    params = program.lane_params(lanes)
    keys = lane_keys([(ln.seed, tuple(ln.spawn_key)) for ln in lanes]).view(np.int64)
    tmpl, pf, var_idx, var_i, var_f = lane_param_arrays(packed, params)
    o = packed.o
    D = len(program.devices)
    out = np.empty((n, K.N_OUT_SCALARS + int(o[K.O_LAT_HIST] - o[K.O_ACC])
                    + (K.RT_N_OUT if program.actions else 0) + (N_IDLE if program.idle else 0)),
                   np.int64)
    hist = np.empty((n, D, N_BINS), np.uint16)
    over = np.zeros(n, np.uint8)
    traced = sorted(i for i in set(trace_lanes) if 0 <= i < n)
    if plug is None:
        plug = kernel_hook(program)

    import numba

    # lanes differ in cost (desynchronized sweeps): hand them to the threads in small chunks
    numba.set_parallel_chunksize(max(1, min(64, n // (8 * numba.get_num_threads()))))

    def batch(rows, full=None):
        """Run ``rows`` (None: all) in parallel into out/hist/over (``full``: whole counts)."""
        if rows is None:
            kn.run_lanes(tmpl, packed.size, pf, var_idx, var_i, var_f, keys, out, hist, _NO_FULL, over, plug)
            return
        if not len(rows):
            return
        o2 = np.empty((len(rows), out.shape[1]), np.int64)
        h2 = np.empty((len(rows), D, N_BINS), np.uint16)
        v2 = np.zeros(len(rows), np.uint8)
        kn.run_lanes(tmpl, packed.size, pf, var_idx, np.ascontiguousarray(var_i[rows]),
                     np.ascontiguousarray(var_f[rows]), np.ascontiguousarray(keys[rows]), o2, h2,
                     _NO_FULL if full is None else full, v2, plug)
        if full is None:
            out[rows], hist[rows], over[rows] = o2, h2, v2

    # a traced lane, and every lane of a run with series, runs alone with a record buffer
    alone = list(range(n)) if program.series_fields else traced
    if not program.series_fields:
        batch(np.array([i for i in range(n) if i not in set(traced)], np.int64) if traced else None)
    traces: dict = {}
    samples = [[] for _ in range(n)] if program.series_fields else None  # none: no list per lane
    for i in alone:
        trace, lane_samples = _run_traced(kn, program, tmpl, packed.size, pf, var_idx, var_i, var_f, keys, i,
                                          out, hist, over, i in traced, plug)
        if samples is not None:
            samples[i] = lane_samples
        if trace is not None:
            traces[i] = trace
    stats = stats_from(program, out, hist)
    if over.any():  # a histogram bin passed 65535: rerun those lanes for the whole counts
        rows = np.flatnonzero(over)
        full = np.zeros((len(rows), D, N_BINS), np.int64)
        batch(rows, full)
        stats._hi()[rows] = (full >> 16).astype(np.uint16)
    if D and (stats.lat_sum >= EXACT_SUM).any():  # past 2**53 ps the float sums may round
        from irqlab.engine.lockstep import run_lockstep

        return run_lockstep(program, lanes, tuple(traced))
    return finish_batch(program, stats, params, ["ok"] * n, [None] * n, traces, series_arrays(program, samples or []))


_NO_FULL = np.zeros((0, 0, 0), np.int64)


def _run_traced(kn, program, tmpl, size, pf, var_idx, var_i, var_f, keys, i, out, hist, over, tracing, plug):
    """Run lane ``i`` alone with a record buffer: ``(its Trace or None, its series samples)``."""
    s = np.empty(size, np.int64)
    s[: len(tmpl)] = tmpl
    pf = pf.copy()
    pi0 = int(tmpl[K.O_PI])
    for p, k in enumerate(var_idx):
        if k >= 0:
            s[pi0 + p], pf[p] = var_i[i, k], var_f[i, k]
    tb = np.empty((TRACE_BUFFER, K.TB_WIDTH), np.int64)
    trace = Trace() if tracing else None
    decode = Decoder(program, trace, s)
    kn.lane_init(s, tb, pf, plug, keys[i, 0], keys[i, 1], int(tracing))
    while True:
        done = kn.lane_resume(s, tb, pf, plug)
        if s[K.S_OVERFLOW]:
            raise RuntimeError("kernel trace buffer overflow within one event")
        decode(tb[: s[K.S_NTB]])
        s[K.S_NTB] = 0
        if done:
            break
    if trace is not None:
        trace.end_ps = int(s[K.S_STAT_END_T])
    over[i] = kn.collect(s, out, hist, _NO_FULL, i)
    return trace, decode.samples


def stats_from(program: Program, out: np.ndarray, hist: np.ndarray) -> Stats:
    """The :class:`Stats` of the lanes, as views of the kernel's ``out`` rows."""
    n = len(out)
    V, D, M = program.n_vcpus, len(program.devices), len(program.mitigations)
    at = K.N_OUT_SCALARS

    def take(width: int) -> np.ndarray:
        nonlocal at
        col = out[:, at:at + width]
        at += width
        return col

    sc = out[:, :K.N_OUT_SCALARS]
    acc = take(4 * V).reshape(n, V, 4)
    stall_max, exits, uexits, act = take(V), take(len(EXIT_REASONS)), take(len(USERSPACE_EXITS)), take(M)
    dr, dd, dc, ds = take(D), take(D), take(D), take(D)
    dredel, dlost, dpend = take(D), take(D), take(D)
    lat_max, lat_min, lat_n, lat_sum = take(D), take(D), take(D), take(D)
    routes = {}
    if program.actions:  # kernel_routes.routes_collect
        routes = dict(zip(("misrouted", "dead_ps"), take(K.RT_N_OUT).T))
    idle = take(N_IDLE) if program.idle else None  # kernel_idle.idle_collect
    return Stats(acc=acc, stall_max=stall_max, first_irq=sc[:, 0], ttp=sc[:, 1], ttp_l2=sc[:, 2],
                 eoi_count=sc[:, 3], raised=sc[:, 4], delivered=sc[:, 5], coalesced=sc[:, 6],
                 spurious=sc[:, 7], immediate=sc[:, 8], events=sc[:, 9], end_t=sc[:, 10],
                 truncated=sc[:, 11].astype(bool), exits=exits, uexits=uexits, act=act,
                 dev_raised=dr, dev_delivered=dd, dev_coalesced=dc, dev_serviced=ds,
                 dev_redelivered=dredel, dev_lost=dlost, dev_pending=dpend.astype(bool),
                 lat_hist=hist, lat_max=lat_max, lat_min=lat_min, lat_sum=lat_sum.astype(np.float64), lat_n=lat_n,
                 zt_loop=sc[:, 12].astype(bool), zt_cycle=sc[:, 13], idle=idle, **routes)


# ---------------------------------------------------------------- trace records -> Trace

M64 = (1 << 64) - 1
TRIG = ("edge", "level")


class Decoder:
    """Turns kernel trace records into a :class:`Trace`'s records, modes and counters. A
    record's integers become the fields of its form (:data:`ARGS`), and its text is
    written by :func:`irqlab.engine.trace.record_text`, as for every executor.
    ``state``: the lane's ``s``, where a zero-time loop's record finds the names of the
    events of its cycle."""

    def __init__(self, program: Program, trace: Trace, state: np.ndarray | None = None) -> None:
        self.p = program
        self.trace = trace
        self.state = state
        self.recent: list[str] = []  # the last records' "event text" (a nested zero-time cycle's turn)
        self.samples: list[tuple[float, ...]] = []  # the series, as reference.sample records them
        self.part: list[int] = []
        self.spread = {g.vector: g for g in program.groups if g.msg is not None}  # destinations (kernel_dest)

    def __call__(self, rows: np.ndarray) -> None:
        tr = self.trace
        for kind, t, thread, code, a0, a1, a2, a3 in rows.tolist():
            if kind == K.TR_MODE:
                tr.modes.append((t, thread, code))
            elif kind == K.TR_COUNTER:
                name = f"gsi {thread} line" if code == 2 else f"vCPU {thread} {'ISR' if code else 'IRR'}"
                tr.counters.append((t, name, a0))
            elif kind == K.TR_SAMPLE:
                self.part += (a0, a1, a2, a3)
                if code == 2:
                    self.sample(t, self.part)
                    self.part = []
            else:
                event, text = self.text(code, a0, a1, a2, a3)
                self.recent.append(f"{event} {text}")
                if len(self.recent) > 2 * K.ZT_HIST:
                    del self.recent[:K.ZT_HIST]
                tr.add(t, thread, event, text)

    def sample(self, t: int, ints: list[int]) -> None:
        """One sample of kernel.sample's integers, as the fields reference.sample records."""
        l2, l1, l0, user, eoi, exits, raised, delivered, pending, irr, line, _ = ints
        values = {"t_ns": t / 1000.0, "l2_time_ns": l2 / 1000.0, "l1_time_ns": l1 / 1000.0, "l0_time_ns": l0 / 1000.0,
                  "userspace_time_ns": user / 1000.0, "eoi_count": eoi, "exits_total": exits,
                  "interrupts_raised": raised, "interrupts_delivered": delivered, "pending": pending,
                  "irr": irr, "line": line}
        self.samples.append((t / 1000.0,) + tuple(float(values[f]) for f in self.p.series_fields))

    def text(self, code: int, a0: int, a1: int, a2: int, a3: int) -> tuple[str, str]:
        devs = self.p.devices
        if code == K.E_HANDLER_ENTRY:
            return record_text("irq_handler_entry", a0, devs[a1].name, vendor=self.p.vendor)
        if code == K.E_VFIO_INTX:
            return record_text("irqlab_vfio_intx", devs[a0].name, vendor=self.p.vendor)
        if code == K.E_VFIO_UNMASK:
            return record_text("irqlab_vfio_unmask", devs[a0].name, a1, vendor=self.p.vendor)
        if code == K.E_ZERO_TIME_LOOP:
            return self.zero_time_text(a0, a1, a2)
        if code == K.E_RT_MSI_WRITE:
            return record_text("irqlab_msi_write", devs[a0].name, a1, vendor=self.p.vendor)
        if code == K.E_RT_EXITMAP:
            from irqlab.engine.routes import bitmap_text

            return record_text("irqlab_eoi_exitmap", a0, bitmap_text(self.p.groups, a1), vendor=self.p.vendor)
        if code in DEST_VECTOR and self.spread and (a0, a1, a2)[DEST_VECTOR[code]] in self.spread:
            return self.dest_text(code, self.spread[(a0, a1, a2)[DEST_VECTOR[code]]], a0, a1, a2, a3)
        form, fields = ARGS[code]
        if callable(form):
            form = form(a0, a1, a2, a3)
        return record_text(form, *fields(a0, a1, a2, a3), vendor=self.p.vendor)

    def dest_text(self, code: int, grp, a0: int, a1: int, a2: int, a3: int) -> tuple[str, str]:
        """A record of group ``grp``'s message, other than a fixed one to one physical APIC ID
        (kernel_dest records it as a plain one): its destination field and mode as
        :func:`irqlab.engine.dest.message_text` writes them, and ``LowPrio`` at the LAPIC
        that accepts a lowest-priority one (RefDest.deliver)."""
        from irqlab.engine.dest import message_text

        vendor = self.p.vendor
        if code == K.E_KVM_APIC_ACCEPT:
            form = "kvm_apic_accept_irq lowest" if grp.lowest else "kvm_apic_accept_irq"
            return record_text(form, a0, a1, TRIG[a2], vendor=vendor)
        dst, how = message_text(grp)
        if code == K.E_KVM_MSI_SET_IRQ:
            return record_text("kvm_msi_set_irq dest", dst, a1, *how.split("|"), TRIG[a2], vendor=vendor)
        return record_text("kvm_ioapic_set_irq dest", a0, dst, a2, *how.split("|"), TRIG[a3], vendor=vendor)

    def zero_time_text(self, n: int, at_instant: int, period: int) -> tuple[str, str]:
        """The record of a zero-time loop (kernel_mech): ``n`` records per turn, and the turn
        (nested lazy EOIs: its records; events at one instant: the names of ``period`` events)."""
        if not at_instant:
            return record_text("irqlab_zero_time_loop", n, K.ZT_DEPTH, " -> ".join(self.recent[len(self.recent) - n:]),
                               vendor=self.p.vendor)
        s = self.state
        nh = int(s[K.S_ZT_NH])
        names = s[int(s[K.O_ZT_NAME]) + nh - period: int(s[K.O_ZT_NAME]) + nh].tolist()
        return record_text("irqlab_zero_time_loop instant", n, K.ZT_EVENTS, " -> ".join(map(self.event_name, names)),
                           vendor=self.p.vendor)

    def event_name(self, code: int) -> str:
        """The text of :func:`irqlab.engine.kernel_mech.event_name`'s integer."""
        from irqlab.engine import phases as P
        from irqlab.engine.idle import NAMES as IDLE_NAMES
        from irqlab.plugins.api import ACTIONS

        code, action = divmod(code, 16)
        code, ph = divmod(code, 64)
        kind, i = divmod(code, 65536)
        if kind == K.EV_VCPU:
            return f"vcpu {i} ACT {ACTIONS[action]}" if ph == K.ACT else f"vcpu {i} {P.NAMES.get(ph) or IDLE_NAMES[ph]}"
        if kind == K.EV_ARRIVAL:
            return f"arrival {self.p.devices[i].name}"
        if kind == K.EV_HOST:
            return f"vfio {self.p.devices[i].name}"
        if kind == K.EV_ACTION:
            return f"action {i}"
        if kind == K.EV_TSLOT:
            return f"tslot {i}"
        return f"{('end', 'sample', 'arrival', 'timer')[kind]} {i}"


# the records of a message's delivery, and which of a0..a2 is its vector (Decoder.dest_text)
DEST_VECTOR = {K.E_KVM_MSI_SET_IRQ: 1, K.E_KVM_IOAPIC_SET_IRQ: 2, K.E_KVM_APIC_ACCEPT: 1}
X = EXIT_REASONS
U = {K.U_IOAPIC_EOI: ("KVM_EXIT_IOAPIC_EOI", 26)}  # else KVM_EXIT_MMIO (6)
# record code -> (its form in trace.FORMATS, or a function of the integers choosing it;
#                 the form's fields from the record's integers a0..a3)
ARGS = {
    K.E_KVM_EXIT: ("kvm_exit", lambda a, b, c, d: (X[a], b & M64, c)),
    K.E_APIC_ACCEPT: ("irqlab_apic_accept", lambda a, b, c, d: (a, b, TRIG[c])),
    K.E_KVM_APIC_ACCEPT: ("kvm_apic_accept_irq", lambda a, b, c, d: (a, b, TRIG[c])),
    K.E_LINE: ("irqlab_line", lambda a, b, c, d: (a, b)),
    K.E_IOAPIC_SET_IRQ: ("ioapic_set_irq", lambda a, b, c, d: (a, b)),
    K.E_KVM_SET_IRQ: ("kvm_set_irq", lambda a, b, c, d: (a, b, c)),
    K.E_IOAPIC_DELIVER: ("irqlab_ioapic_deliver", lambda a, b, c, d: (a, b, TRIG[c])),
    K.E_KVM_MSI_SET_IRQ: ("kvm_msi_set_irq", lambda a, b, c, d: (a, b, TRIG[c])),
    K.E_KVM_IOAPIC_SET_IRQ: ("kvm_ioapic_set_irq", lambda a, b, c, d: (a, b, c, TRIG[d])),
    K.E_REDIRECT: (lambda a, b, c, d: "irqlab_redirect dest" if c else "irqlab_redirect",
                   lambda a, b, c, d: (a, b, d)),
    K.E_POLL: ("irqlab_poll", lambda a, b, c, d: (a,)),
    K.E_MSI: ("irqlab_msi", lambda a, b, c, d: (a, b)),
    K.E_NESTED_VMEXIT: ("kvm_nested_vmexit", lambda a, b, c, d: (a & M64, X[b])),
    K.E_KVM_ENTRY: ("kvm_entry", lambda a, b, c, d: (a,)),
    K.E_NESTED_INJECT: ("kvm_nested_vmexit_inject", lambda a, b, c, d: (X[b], a)),
    K.E_INJ_VIRQ: ("kvm_inj_virq", lambda a, b, c, d: (a,)),
    K.E_HANDLER_EXIT: ("irq_handler_exit", lambda a, b, c, d: (a,)),
    K.E_EOI: ("irqlab_eoi", lambda a, b, c, d: (a, b)),
    K.E_KVM_EOI: ("kvm_eoi", lambda a, b, c, d: (a, b)),
    K.E_USERSPACE_EXIT: ("kvm_userspace_exit", lambda a, b, c, d: U.get(a, ("KVM_EXIT_MMIO", 6))),
    K.E_IOAPIC_EOI: (lambda a, b, c, d: "irqlab_ioapic_eoi ignored" if b else "irqlab_ioapic_eoi",
                     lambda a, b, c, d: (a,)),
    K.E_KVM_DELAYED_EOI: ("kvm_ioapic_delayed_eoi_inj", lambda a, b, c, d: (a,)),
    K.E_QEMU_DELAYED: ("ioapic_eoi_delayed_reassert", lambda a, b, c, d: (a,)),
    K.E_SPURIOUS_DISABLE: ("irqlab_spurious_disable", lambda a, b, c, d: (a,)),
    K.E_XEN_RATELIMIT: ("irqlab_xen_ratelimit", lambda a, b, c, d: (a,)),
    K.E_KVM_ACK_IRQ: ("kvm_ack_irq", lambda a, b, c, d: (a,)),
    K.E_RESAMPLE: ("irqlab_resample", lambda a, b, c, d: (a,)),
    K.E_LAZY_EOI: ("irqlab_lazy_eoi", lambda a, b, c, d: (a, b)),
    # idle vCPUs (kernel_idle)
    K.E_HLT_EXIT: ("kvm_exit", lambda a, b, c, d: ("HLT", a & M64, 0)),
    K.E_APIC_IPI: ("kvm_apic_ipi", lambda a, b, c, d: (a, RESCHEDULE_VECTOR)),
    K.E_WAKE: ("irqlab_wake", lambda a, b, c, d: (a,)),
    K.E_VCPU_WAKEUP: ("kvm_vcpu_wakeup", lambda a, b, c, d: ("wait" if b else "poll", a // 1000)),
    K.E_HALT_POLL_NS: ("kvm_halt_poll_ns", lambda a, b, c, d: (a, b // 1000, "grow" if c else "shrink", d // 1000)),
    K.E_PIT_TIMER: ("irqlab_pit_timer", lambda a, b, c, d: (a,)),
    K.E_RTC_COALESCED: ("irqlab_rtc_coalesced", lambda a, b, c, d: (a,)),
    K.E_STIMER_CALLBACK: ("kvm_hv_stimer_callback", lambda a, b, c, d: (a,)),
    K.E_STIMER_EXPIRATION: ("kvm_hv_stimer_expiration", lambda a, b, c, d: (a, b)),
    K.E_STIMER_START: ("kvm_hv_stimer_start_periodic", lambda a, b, c, d: (a, b, c)),
    K.E_DESCHEDULE: ("irqlab_deschedule", lambda a, b, c, d: (a, b)),
    K.E_RESCHEDULE: ("irqlab_reschedule", lambda a, b, c, d: (a,)),
}
