"""The NumPy executors of this checkout against another git revision, in one run.

For each scenario of examples/ given (default: the founding storm and the QEMU-throttle
storm), runs ``lanes`` identical lanes on the lockstep executor and one lane on the
reference interpreter, in fresh subprocesses alternating between the base revision
(exported with ``git archive`` to a temporary directory) and this checkout, ``--rounds``
times, and prints the best time of each and the ratio this/base (below 1: faster). Both
trees run with this checkout's Python and packages, so only irqlab differs.

    .venv/bin/python benchmarks/bench_ab.py [--base main] [--lanes 1000] [--rounds 3] [--duration 2e-3]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = r"""
import sys, time
from dataclasses import replace
from irqlab import engine
from irqlab.dsl import load
from irqlab.ir import Quantity
scn = load(sys.argv[1])
scn = replace(scn, run=replace(scn.run, duration=Quantity(float(sys.argv[4]), "s")))
prog = engine.compile(scn)
lanes = [engine.Lane(0, (i,)) for i in range(int(sys.argv[2]))]
t = time.perf_counter(); engine.run(prog, lanes, backend=sys.argv[3]); print(time.perf_counter() - t)
"""


def timed(tree: Path, scn: Path, lanes: int, backend: str, duration: float) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", SNIPPET, str(scn), str(lanes), backend, str(duration)], env=env,
                         capture_output=True, text=True, check=True, cwd=tree)
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main")
    ap.add_argument("--lanes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2e-3, help="simulated seconds per run")
    ap.add_argument("scenarios", nargs="*", default=["examples/founding_case.scn",
                                                      "examples/founding_case_qemu_throttle.scn"])
    a = ap.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, "
          f"base {a.base}, {a.lanes} lanes (numpy) / 1 lane (reference), {a.duration * 1e3:g} ms each, "
          f"best of {a.rounds}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        archive = subprocess.run(["git", "archive", "--format=tar", a.base], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        tar_path = base / "base.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tf:
            tf.extractall(base / "tree", filter="data")
        for scn in a.scenarios:
            for backend, n in (("numpy", a.lanes), ("reference", 1)):
                best = {"base": float("inf"), "this": float("inf")}
                for _ in range(a.rounds):
                    best["base"] = min(best["base"], timed(base / "tree", base / "tree" / scn, n, backend, a.duration))
                    best["this"] = min(best["this"], timed(ROOT, ROOT / scn, n, backend, a.duration))
                print(f"{scn} {backend:9s} base {best['base']:.3f} s  this {best['this']:.3f} s  "
                      f"ratio this/base {best['this'] / best['base']:.3f}")


if __name__ == "__main__":
    main()
