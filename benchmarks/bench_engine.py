"""Engine throughput: lane-events/s of the lockstep executor vs an event-at-a-time loop.

Runs the founding case (examples/founding_case.scn: the seed's storm) at 1, 100,
10,000 and 100,000 lanes with the NumPy lockstep executor, and the same
scenario with the reference interpreter (a plain Python loop, one event at a
time) in the same process, and prints lane-events/s (an event = one trace
record), the ratio to the loop, and the peak memory per lane (tracemalloc).

A second table repeats it with every lane's costs jittered (+-50%), so lanes
drift apart and each step has to dispatch several phases at once.

    .venv/bin/python benchmarks/bench_engine.py            # full run (a minute or two)
    .venv/bin/python benchmarks/bench_engine.py --quick    # smaller sizes
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np

from irqlab import __version__, engine
from irqlab.dsl import load
from irqlab.ir import Quantity
from machine import describe  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]


def lanes_for(program, n: int, jitter: bool) -> list:
    if not jitter:
        shared = dict(program.params)
        return [engine.Lane(0, (i,), shared) for i in range(n)]
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        p = dict(program.params)
        for k in ("costs.handler", "costs.userspace_exit", "costs.nested_exit"):
            p[k] = int(p[k] * rng.uniform(0.5, 1.5))
        out.append(engine.Lane(0, (i,), p))
    return out


def measure(program, n: int, jitter: bool, backend: str) -> tuple[float, int]:
    """(lane-events/s, events) for one batch of n lanes."""
    lanes = lanes_for(program, n, jitter)
    t0 = time.perf_counter()
    result = engine.run(program, lanes, backend=backend)
    wall = time.perf_counter() - t0
    events = int(result.metrics["events"].sum())
    return events / wall, events


def memory(program, n: int) -> tuple[float, float]:
    """(state bytes per lane, tracemalloc peak bytes per lane of a whole engine.run)."""
    from irqlab.engine.lockstep import Lockstep

    lanes = lanes_for(program, n, False)
    sim = Lockstep(program, lanes)
    sim.run()
    state = sim.state_bytes() / n
    del sim
    tracemalloc.start()
    engine.run(program, lanes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return state, peak / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    args = ap.parse_args()
    scenario = load(ROOT / "examples" / "founding_case.scn")
    sizes = [1, 100, 1000] if args.quick else [1, 100, 10_000, 100_000]
    # Simulated time per size: enough for > 1 s of work at the larger sizes.
    dur_ms = {1: 50.0, 100: 20.0, 1000: 5.0, 10_000: 3.0, 100_000: 0.5}

    print("irqlab engine benchmark: founding case (split irqchip, EOI before lower, no mitigation)")
    print(f"machine: {describe()}; "
          f"{platform.python_implementation()} {platform.python_version()}, numpy {np.__version__}, "
          f"irqlab {__version__}; one core (no threads)")
    ref_prog = engine.compile(replace(scenario, run=replace(scenario.run, duration=Quantity(0.05, "s"))))
    ref_rate, ref_events = measure(ref_prog, 4, False, "reference")
    print(f"baseline: reference interpreter (event at a time, plain Python), same scenario: "
          f"{ref_rate / 1e6:.3f} M lane-events/s ({ref_events} events)")
    for jitter in (False, True):
        print()
        print("lanes are identical (the scenario is deterministic)" if not jitter
              else "lanes with +-50% jitter on handler, userspace_exit and nested_exit costs")
        print(f"{'lanes':>8} {'sim time':>9} {'events':>12} {'M lane-ev/s':>12} {'x loop':>8}")
        for n in sizes:
            d = dur_ms[n]
            prog = engine.compile(replace(scenario, run=replace(scenario.run, duration=Quantity(d * 1e-3, "s"))))
            rate, events = measure(prog, n, jitter, "numpy")
            print(f"{n:>8} {d:>7g}ms {events:>12} {rate / 1e6:>12.2f} {rate / ref_rate:>8.1f}")
    n = 1000 if args.quick else 10_000
    prog = engine.compile(replace(scenario, run=replace(scenario.run, duration=Quantity(2e-4, "s"))))
    state, peak = memory(prog, n)
    print()
    print(f"memory at {n} lanes, no traces: {state:.0f} bytes/lane of state kept for the run; "
          f"{peak:.0f} bytes/lane at the peak of engine.run (tracemalloc: state, temporaries, result)")


if __name__ == "__main__":
    main()
