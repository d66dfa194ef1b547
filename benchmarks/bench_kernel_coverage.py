"""The casebook scenarios `auto` now runs with the per-lane kernel (issue 12's VFIO INTx,
AMD, lazy EOI), timed with the kernel, the lockstep executor and the kernel's own
Python (backend reference) in one run; every ratio is to the kernel's time measured in the same run.

    .venv/bin/python benchmarks/bench_kernel_coverage.py [FILE.scn ...]

An event is one trace record (the ``events`` metric); the kernel is loaded (or compiled)
before the timings.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from irqlab import __version__, dsl, engine  # noqa: E402

CASES = ("examples/casebook/vfio-intx-storm/bug.scn", "examples/casebook/oneshot-vfio-unmask/bug.scn",
         "examples/casebook/founding-amd/bug.scn")


def main(paths: list[str]) -> None:
    for path in paths or CASES:
        for scn in dsl.load_all(path).values():
            prog = engine.compile(scn)
            for n in (1, 16):
                lanes = [engine.Lane(1, (i,)) for i in range(n)]
                engine.run(prog, lanes[:1], backend="kernel")
                took = {}
                for backend in ("kernel", "numpy", "reference")[: 3 if n == 1 else 2]:
                    t0 = time.perf_counter()
                    r = engine.run(prog, lanes, backend=backend)
                    took[backend] = (time.perf_counter() - t0, float(np.sum(r.metrics["events"])))
                k = took["kernel"][0]
                print(f"{path} {scn.name}, {n} lane(s): " + "; ".join(
                    f"{b} {dt:.3f} s, {ev / dt / 1e6:.2f} M lane-events/s ({dt / k:.1f}x the kernel's time)"
                    for b, (dt, ev) in took.items()))
    print(f"machine: {describe()}; irqlab {__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"python {sys.version.split()[0]}; ratios from this run")


if __name__ == "__main__":
    main(sys.argv[1:])
