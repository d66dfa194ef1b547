"""The per-lane kernel of this tree against the kernel of a base revision, in one run.

    .venv/bin/python benchmarks/bench_kernel_ab.py [--base main] [--rounds 3] [--compile] [--quick]

A change to the kernel is judged by ratios to the base measured in the same run:
the base revision is extracted (``git archive``) into a temporary directory and
each measurement runs in a fresh child process, alternating base and this tree
``--rounds`` times, so that load from other processes on a shared machine falls
on both alike. Reported per workload: the best lane-events/s of each side and
the ratio (this tree / base):

* the founding storm, 1 lane, one thread;
* the founding storm, 10,000 identical lanes, one thread;
* bench_sweep.py's desynchronized sweep at 10,000 lanes, one thread and every
  thread (the parallel speedup of each side is printed too);
* each of these again per CPU-second of the child process (``per CPU-s:``), which
  varies less than wall time when other processes share the cores;
* with ``--compile``: the cold compile in a fresh process with an empty cache
  (the best of the rounds); always: the load from the warm cache (each tree's
  own ``__pycache__``; the base's first load compiles it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe  # noqa: E402  benchmarks/machine.py

CHILD = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
t0 = time.perf_counter()
from irqlab.engine.kernelrun import kernel_module
kernel_module()
ready = time.perf_counter() - t0
import irqlab, numba
from irqlab import engine
out = {{"file": irqlab.__file__, "ready": ready}}
if {work!r}:
    from bench_engine import founding, identical, sweep_lanes
    from bench_sweep import SCENARIO

    def rate(key, prog, lanes, n_threads):
        # lane-events per wall second into out[key], per CPU-second of the process into
        # out["per CPU-s: " + key] (steadier on a shared machine)
        numba.set_num_threads(n_threads)
        engine.run(prog, lanes[:2], backend="kernel")
        t, c = time.perf_counter(), time.process_time()
        r = engine.run(prog, lanes, backend="kernel")
        events = float(r.metrics["events"].sum())
        out[key] = events / (time.perf_counter() - t)
        out["per CPU-s: " + key] = events / max(time.process_time() - c, 1e-9)

    big = {big}
    p = founding({long_s})
    rate("founding, 1 lane", p, identical(p, 1), 1)
    p = founding({short_s})
    rate(f"founding, {{big}} identical lanes", p, identical(p, big), 1)
    text = SCENARIO.replace("replications 10", f"replications {{big // 1000}}")
    p, lanes = sweep_lanes(text, "bench_sweep.scn")
    rate(f"desynchronized, {{big}} lanes, 1 thread", p, lanes, 1)
    n = numba.config.NUMBA_NUM_THREADS
    rate(f"desynchronized, {{big}} lanes, {{n}} threads", p, lanes, n)
print("RESULT " + json.dumps(out))
"""


def child(root: Path, cache: str | None, work: bool, quick: bool) -> dict:
    """Run the measurements in a fresh process importing irqlab from ``root``; ``cache``:
    its NUMBA_CACHE_DIR (None: Numba's default, the tree's own ``__pycache__``)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("NUMBA_CACHE_DIR", None)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    code = CHILD.format(bench=str(ROOT / "benchmarks"), work=work, big=1000 if quick else 10_000,
                        long_s=0.05 if quick else 0.5, short_s=0.001 if quick else 0.003)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=str(root))
    if out.returncode:
        sys.exit(f"child for {root} failed:\n{out.stderr[-3000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    if not res["file"].startswith(str(root)):
        sys.exit(f"child imported {res['file']}, not the tree under {root}")
    return res


def extract(rev: str, into: Path) -> None:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "irqlab"], capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(into, filter="data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="main", help="the git revision to compare with (default: main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time cold compiles (minutes each)")
    ap.add_argument("--quick", action="store_true", help="1,000 lanes and shorter runs")
    args = ap.parse_args()
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base], capture_output=True,
                         text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "irqlab"], capture_output=True,
                           text=True, check=True).stdout.strip()
    print(f"per-lane kernel: this tree ({head}{' + uncommitted changes' if dirty else ''}) vs base {args.base} "
          f"({rev}), {args.rounds} alternating rounds, each measurement in a fresh process")
    print(f"machine: {describe()}; load average at start {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        extract(rev, base)
        sides = {"base": base, "this": ROOT}
        best: dict[str, dict[str, float]] = {"base": {}, "this": {}}
        comp: dict[str, list[float]] = {"base": [], "this": []}
        for r in range(args.rounds):
            for side, root in sides.items():
                if args.compile:
                    with tempfile.TemporaryDirectory() as cold:
                        comp[side].append(child(root, cold, False, args.quick)["ready"])
                res = child(root, None, True, args.quick)
                for k, v in res.items():
                    if k != "file":
                        best[side][k] = max(best[side].get(k, 0.0), v) if k != "ready" else \
                            min(best[side].get(k, 1e9), v)
            print(f"  round {r + 1} done, load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"{'workload':58s} {'base M/s':>10s} {'this M/s':>10s} {'this/base':>10s}")
        for k in best["this"]:
            if k == "ready":
                continue
            b, t = best["base"][k], best["this"][k]
            print(f"{k:58s} {b / 1e6:10.2f} {t / 1e6:10.2f} {t / b:9.2f}x")
        par = [k for k in best["this"] if "threads" in k and not k.startswith("per CPU")]
        if par:
            one = [k for k in best["this"] if "1 thread" in k and not k.startswith("per CPU")][0]
            for side in sides:
                print(f"parallel speedup ({side}): {best[side][par[0]] / best[side][one]:.2f}x one thread")
        print(f"kernel load from a warm cache in a fresh process (best): base {best['base']['ready']:.2f} s, "
              f"this {best['this']['ready']:.2f} s")
        if args.compile:
            print(f"cold compile in a fresh process, empty cache (best of {args.rounds}): base "
                  f"{min(comp['base']):.1f} s, this {min(comp['this']):.1f} s "
                  f"({min(comp['base']) / min(comp['this']):.2f}x faster); all: base "
                  f"{', '.join(f'{c:.0f}' for c in comp['base'])}, this {', '.join(f'{c:.0f}' for c in comp['this'])}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
