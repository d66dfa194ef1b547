"""Engine throughput: the per-lane kernel against the lockstep executor, the kernel's own
Python (backend reference) and a plain SimPy model of the storm loop, in one run.

Every figure is lane-events/s (an event = one trace record) measured in this
process, and every ratio is to a baseline measured in the same run, so the
figures are comparable on a busy machine even when the absolute ones are not:

* the founding storm (examples/founding_case.scn), 1 lane, per core: kernel vs
  its own Python (JIT off), lockstep, and SimPy (events/s of a SimPy process that
  walks the same storm loop, written below);
* 10,000 identical lanes, one core: kernel vs lockstep;
* the desynchronized sweep (benchmarks/bench_sweep.py's scenario: every lane a
  different throttle threshold, delay and Poisson rate), 10,000 lanes: kernel on
  one core, kernel on every core (the ratio is the parallel speedup), lockstep;
* the README's main job (the embedded default sweep, 24 runs): engine time;
* the kernel's compile (in a fresh process with an empty cache, ``--compile``)
  and its load from the cache in a fresh process;
* memory per lane at 10,000 lanes (tracemalloc peak of engine.run).

    .venv/bin/pip install -e '.[bench]'               # SimPy
    .venv/bin/python benchmarks/bench_engine.py [--quick] [--compile]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np

from irqlab import __version__, engine
from irqlab.dsl import load, loads
from irqlab.ir import Quantity
from machine import describe  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def threads(n: int) -> None:
    import numba

    numba.set_num_threads(n)


CPU_RATES: dict[str, float] = {}


def timed(program, lanes, backend: str, label: str = "") -> tuple[float, int, float]:
    """(lane-events/s, events, wall s) of one engine.run; the lane-events per second of CPU
    time this process used (all its threads) go to ``CPU_RATES[label]``."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = engine.run(program, lanes, backend=backend)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    events = int(result.metrics["events"].sum())
    if label:
        CPU_RATES[label] = events / max(cpu, 1e-9)
    return events / wall, events, wall


def rounds_arg(text: str) -> int:
    """--rounds: a whole number from 1 to 100 (each round times 10,000 lanes twice)."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a whole number, not '{text}'") from None
    if not 1 <= n <= 100:
        raise argparse.ArgumentTypeError(f"wants 1 to 100 rounds, not {n}")
    return n


def median_run(runs: list[tuple[float, int, float]]) -> tuple[float, int, float]:
    """The run of median wall time among ``timed`` results."""
    return sorted(runs, key=lambda r: r[2])[len(runs) // 2]


def founding(duration_s: float):
    scn = load(ROOT / "examples" / "founding_case.scn")
    return engine.compile(replace(scn, run=replace(scn.run, duration=Quantity(duration_s, "s"))))


def identical(program, n: int) -> list:
    shared = dict(program.params)
    return [engine.Lane(0, (i,), shared) for i in range(n)]


def sweep_lanes(text: str, name: str):
    """The program and the lanes of every run of a sweep (as the sweep would batch them)."""
    from irqlab.experiments import plan

    prep = plan.prepare(loads(text, name), text)
    pl = plan.validate(prep)
    prog = pl.programs[pl.todo[0].key]
    return prog, [engine.Lane(r.seed, r.spawn_key, dict(r.lane_params)) for r in pl.todo]


# ---------------------------------------------------------------- SimPy model of the storm loop


def simpy_storm(duration_ps: int, costs: dict[str, int], service_ps: int) -> tuple[float, int]:
    """The founding storm as a plain SimPy model: a vCPU process that walks the loop (L2
    entered with an immediate exit, L0 reflects the interrupt to L1, L1's handler EOIs,
    the EOI exits to QEMU, whose IOAPIC re-raises the still-high line, L1 forwards the
    device to L2 and resumes it) and an IOAPIC process that re-asserts the line on each
    EOI. Returns (events/s, events), an event = one SimPy event processed."""
    import simpy

    env = simpy.Environment()
    c = costs
    count = [0]
    eoi = [env.event()]

    def ioapic():
        while True:
            yield eoi[0]
            eoi[0] = env.event()
            count[0] += 1
            yield env.timeout(c["ioapic"])  # re-assert: the line is still high
            count[0] += 1

    def vcpu():
        while True:
            yield env.timeout(c["vmexit"])  # PREEMPTION_TIMER exit from L2
            count[0] += 1
            yield env.timeout(c["nested_exit"] + c["vmentry"])  # reflect into L1
            count[0] += 1
            yield env.timeout(c["handler"])  # handler body, then EOI
            count[0] += 1
            yield env.timeout(c["vmexit"] + c["eoi"])  # EOI_INDUCED exit
            count[0] += 1
            yield env.timeout(c["userspace_exit"] // 2)  # KVM_EXIT_IOAPIC_EOI to QEMU
            eoi[0].succeed()
            count[0] += 1
            yield env.timeout(c["userspace_exit"] - c["userspace_exit"] // 2 + c["vmentry"])
            count[0] += 1
            yield env.timeout(c["resume"])  # forward to L2, RETURN (VMRESUME)
            count[0] += 1
            yield env.timeout(c["vmexit"] + c["nested_entry"] + c["vmentry"])  # into L2, timer 0
            count[0] += 1

    env.process(ioapic())
    env.process(vcpu())
    t0 = time.perf_counter()
    env.run(until=duration_ps)
    wall = time.perf_counter() - t0
    return count[0] / wall, count[0]


def compile_in_fresh_process(cache_dir: str) -> tuple[float, float]:
    """(wall s, CPU s) of ``kernel_module()`` in a fresh process with ``cache_dir`` as its
    Numba cache: a compile when it is empty. CPU seconds compare across loads."""
    code = ("import time; t = time.perf_counter(); c = time.process_time(); "
            "from irqlab.engine.kernelrun import kernel_module; kernel_module(); "
            "print(time.perf_counter() - t, time.process_time() - c)")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    ap.add_argument("--compile", action="store_true",
                    help="also time a cold compile in a fresh process with an empty cache (minutes)")
    ap.add_argument("--rounds", type=rounds_arg, default=1,
                    help="time the desynchronized sweep this many times on one thread and on every core, "
                         "alternating, and report the medians (the parallel speedup on a noisy machine)")
    args = ap.parse_args()
    import numba

    from irqlab.engine.kernelrun import kernel_module

    n_big = 1000 if args.quick else 10_000
    cores = numba.config.NUMBA_NUM_THREADS
    print("irqlab engine benchmark: per-lane kernel vs lockstep vs its own Python vs SimPy, one run")
    print(f"machine: {describe()}; {platform.python_implementation()} {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}, irqlab {__version__}")
    print("the machine may be shared: compare the ratios (same run), not the absolute figures")
    t0 = time.perf_counter()
    kernel_module()
    print(f"kernel ready in {time.perf_counter() - t0:.2f} s (compiled, or loaded from the cache)")
    print()

    # 1. the founding storm, one lane, one core
    threads(1)
    long_s = 0.05 if args.quick else 0.5
    k_rate, k_ev, k_wall = timed(founding(long_s), identical(founding(long_s), 1), "kernel", "k1")
    engine.run(founding(1e-5), [engine.Lane(0)], backend="reference")  # its one-time import, as the kernel's load
    r_rate, r_ev, _ = timed(founding(0.002), identical(founding(0.002), 1), "reference", "r1")
    l_rate, l_ev, _ = timed(founding(0.002), identical(founding(0.002), 1), "numpy", "l1")
    prog = founding(long_s)
    costs = {k.split(".", 1)[1]: int(v) for k, v in prog.params.items() if k.startswith("costs.")}
    try:
        c0 = time.process_time()
        s_rate, s_ev = simpy_storm(int(0.05e12), costs, 20_000_000)
        CPU_RATES["s1"] = s_ev / max(time.process_time() - c0, 1e-9)
    except ImportError:
        s_rate, s_ev = float("nan"), 0
        CPU_RATES["s1"] = float("nan")
    k_cpu = CPU_RATES["k1"]
    print("founding storm, 1 lane, one thread              M lane-ev/s (wall)  kernel is   "
          "M lane-ev/s per CPU-second  kernel is")
    print(f"  kernel ({long_s * 1e3:g} ms simulated, {k_ev} events) {k_rate / 1e6:>10.2f}            "
          f"{k_cpu / 1e6:>10.2f}")
    for name, rate, key, ev in (("kernel's Python (reference)", r_rate, "r1", r_ev), ("lockstep", l_rate, "l1", l_ev),
                                ("SimPy model of the storm loop", s_rate, "s1", s_ev)):
        print(f"  {name} ({ev} events){'':<{max(1, 30 - len(name) - len(str(ev)))}} {rate / 1e6:>10.3f}"
              f"  {k_rate / rate:8.1f}x   {CPU_RATES[key] / 1e6:>10.3f}  {k_cpu / CPU_RATES[key]:8.1f}x")
    print()

    # 2. identical lanes, one core
    prog = founding(0.003 if not args.quick else 0.001)
    lanes = identical(prog, n_big)
    kr, ke, _ = timed(prog, lanes, "kernel", "k2")
    lr, le, _ = timed(prog, lanes, "numpy", "l2")
    print(f"founding storm, {n_big} identical lanes, one thread: kernel {kr / 1e6:.2f} M lane-ev/s wall, "
          f"{CPU_RATES['k2'] / 1e6:.2f} M per CPU-second; lockstep {lr / 1e6:.2f} M wall, "
          f"{CPU_RATES['l2'] / 1e6:.2f} M per CPU-second: {kr / lr:.2f}x wall, "
          f"{CPU_RATES['k2'] / CPU_RATES['l2']:.2f}x CPU")

    # 3. the desynchronized sweep
    from bench_sweep import SCENARIO

    text = SCENARIO.replace("replications 10", f"replications {n_big // 1000}")
    prog, lanes = sweep_lanes(text, "bench_sweep.scn")
    ones, alls = [], []
    for _ in range(args.rounds):  # alternating, so both see the same machine
        threads(1)
        ones.append(timed(prog, lanes, "kernel", "k3"))
        threads(cores)
        alls.append(timed(prog, lanes, "kernel", "k3n"))
    (k1, e1, w1), (kn, _, wn) = median_run(ones), median_run(alls)
    threads(1)
    ls, _, _ = timed(prog, lanes, "numpy", "l3")
    if args.rounds > 1:
        per = sorted(a[2] / b[2] for a, b in zip(ones, alls))
        print(f"desynchronized sweep, {cores} threads against one, {args.rounds} alternating rounds: median "
              f"{w1 / wn:.2f}x (per round {per[0]:.2f}x-{per[-1]:.2f}x)")
    print(f"desynchronized sweep, {len(lanes)} lanes ({e1} events): kernel one thread {k1 / 1e6:.2f} M lane-ev/s "
          f"wall, {CPU_RATES['k3'] / 1e6:.2f} M per CPU-second; {cores} threads {kn / 1e6:.2f} M wall "
          f"({w1 / wn:.2f}x one thread); lockstep {ls / 1e6:.2f} M wall, {CPU_RATES['l3'] / 1e6:.2f} M per "
          f"CPU-second (kernel {k1 / ls:.2f}x wall)")

    # 4. the README's main job: the embedded default sweep
    threads(cores)
    default = (ROOT / "irqlab" / "data" / "default.scn").read_text()
    prog, lanes = sweep_lanes(default, "default.scn")
    for be in ("kernel", "numpy"):
        t0 = time.perf_counter()
        engine.run(prog, lanes, backend=be)
        print(f"the README's main job ({len(lanes)} runs) engine time, {be}: {time.perf_counter() - t0:.3f} s",
              end="; " if be == "kernel" else "\n")

    # 5. compile and cache load
    code = ("import time; t = time.perf_counter(); from irqlab.engine.kernelrun import kernel_module; "
            "kernel_module(); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    load_s = float(out.stdout.strip().splitlines()[-1])
    print(f"kernel load from the cache in a fresh process (import numba included): {load_s:.2f} s")
    if args.compile:
        with tempfile.TemporaryDirectory() as d:
            c, cpu = compile_in_fresh_process(d)
        print(f"kernel compile in a fresh process, empty cache: {c:.1f} s wall, {cpu:.1f} s CPU "
              f"(load average {os.getloadavg()[0]:.1f})")

    # 6. memory per lane
    threads(cores)
    prog = founding(2e-4)
    lanes = identical(prog, n_big)
    for be in ("kernel", "numpy"):
        engine.run(prog, lanes[:10], backend=be)
        tracemalloc.start()
        engine.run(prog, lanes, backend=be)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"memory at {n_big} lanes, {be}: {peak / n_big:.0f} bytes/lane at the peak of engine.run",
              end="; " if be == "kernel" else "\n")


if __name__ == "__main__":
    main()
