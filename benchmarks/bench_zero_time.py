"""Cost of the zero-time-loop detector in the lockstep executor (issue 12).

Runs the founding case (examples/founding_case.scn; 20 ms at 1 lane, 2 ms at 1,000 lanes)
with the NumPy lockstep executor twice in the same process: as shipped, and
with ``Lockstep.same_instant`` replaced by a no-op (the baseline), alternating,
after a warm-up run. Prints the best of ``--repeat`` wall times of each and
their ratio.

    .venv/bin/python benchmarks/bench_zero_time.py
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from irqlab import __version__, engine
from irqlab.dsl import load
from irqlab.engine import lockstep
from irqlab.ir import Quantity
from machine import describe  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]


def once(program, lanes) -> tuple[float, int]:
    t = time.perf_counter()
    r = engine.run(program, lanes, backend="numpy")
    return time.perf_counter() - t, int(r.metrics["events"].sum())


def compare(program, n: int, repeat: int) -> tuple[float, float, int]:
    """Best wall times with the detector and without it (runs alternate, after a warm-up
    run), and the trace records of one run of ``n`` lanes."""
    lanes = [engine.Lane(0, (i,), dict(program.params)) for i in range(n)]
    shipped = lockstep.Lockstep.same_instant
    once(program, lanes)
    with_t, without_t, events = [], [], 0
    try:
        for _ in range(repeat):
            lockstep.Lockstep.same_instant = shipped
            t, events = once(program, lanes)
            with_t.append(t)
            lockstep.Lockstep.same_instant = lambda self, lanes: np.zeros(len(lanes), bool)
            without_t.append(once(program, lanes)[0])
    finally:
        lockstep.Lockstep.same_instant = shipped
    return min(with_t), min(without_t), events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    s = load(ROOT / "examples" / "founding_case.scn")
    print(f"machine: {describe()}; irqlab {__version__}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}")
    print(f"{'lanes':>6} {'events':>10} {'detector (s)':>13} {'baseline (s)':>13} {'ratio':>7}")
    for n, ms in ((1, 20), (1000, 2)):
        program = engine.compile(replace(s, run=replace(s.run, duration=Quantity(ms * 1e-3, "s"))))
        with_t, without_t, events = compare(program, n, args.repeat)
        print(f"{n:>6} {events:>10} {with_t:>13.3f} {without_t:>13.3f} {with_t / without_t:>7.3f}")


if __name__ == "__main__":
    main()
