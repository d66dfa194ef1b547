"""This tree's NumPy executors against another checkout of irqlab (e.g. main), in one run.

Each round runs, in a fresh process per tree and alternating between the two trees
(each figure the best of 3 runs after a warm-up run),
the founding storm (examples/founding_case.scn) and two scenarios with random
arrivals (examples/level_highrate.scn, baremetal_edge_poisson.scn: the lanes
desynchronize) with the lockstep executor over LANES lanes, 2 ms each. It prints each tree's best
lane-events per CPU second (process time, one thread: less sensitive than wall time to
the other processes of a shared machine) and the ratio this tree / baseline tree: a
change's cost on the old scenarios, measured on the same machine at the same time.

    .venv/bin/python benchmarks/bench_against.py --baseline /work/main [--lanes 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from dataclasses import replace
from irqlab import engine, __version__
from irqlab.dsl import load
from irqlab.ir import Quantity

lanes_n, root = int(sys.argv[1]), sys.argv[2]
out = {"version": __version__}


def measure(key, name, backend, n, duration_s):
    s = load(root + f"/examples/{name}.scn")
    prog = engine.compile(replace(s, run=replace(s.run, duration=Quantity(duration_s, "s"))))
    lanes = [engine.Lane(0, (i,)) for i in range(n)]
    engine.run(prog, lanes[:2], backend=backend)  # warm-up: lazy imports, plugin registry
    best = None
    for _ in range(3):
        t0 = time.process_time()
        r = engine.run(prog, lanes, backend=backend)
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    out[key] = float(r.metrics["events"].sum()) / best


measure("storm_numpy", "founding_case", "numpy", lanes_n, 0.002)
for name in ("level_highrate", "baremetal_edge_poisson"):  # random arrivals: lanes desynchronize
    measure(f"{name}_numpy", name, "numpy", lanes_n, 0.002)
print(json.dumps(out))
"""


def run_tree(root: Path, lanes: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", CHILD, str(lanes), str(root)], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(HERE / "benchmarks"))
    from machine import describe

    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, type=Path, help="another irqlab checkout (e.g. /work/main)")
    ap.add_argument("--lanes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    best: dict[str, dict[str, float]] = {"this": {}, "baseline": {}}
    for _ in range(a.rounds):
        for name, root in (("baseline", a.baseline.resolve()), ("this", HERE)):
            for k, v in run_tree(root, a.lanes).items():
                if k != "version":
                    best[name][k] = max(best[name].get(k, 0.0), v)
    print(f"machine: {describe()}; python {sys.version.split()[0]}; {a.lanes} lanes; best of {a.rounds} "
          f"alternating rounds; baseline {a.baseline}")
    for k in sorted(best["this"]):
        t, b = best["this"][k], best["baseline"][k]
        print(f"{k:18s} this {t / 1e6:8.3f} M lane-events/CPU-s   baseline {b / 1e6:8.3f}   ratio {t / b:6.3f}")


if __name__ == "__main__":
    main()
