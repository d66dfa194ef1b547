"""Cost of the route-change mechanism (issue 13) for scenarios that do not use it, and its
speed on one that does.

Runs the same workloads with this tree's irqlab and with a baseline tree's (another
checkout, e.g. ``git worktree add /tmp/base main``), alternating in fresh processes, and
prints lane-events/s and the ratio current/baseline of each (medians of ``--repeat``
rounds, measured in the same run, so the ratio holds on a busy machine):

* the founding storm (examples/founding_case.scn), reference interpreter, 1 lane;
* the founding storm, lockstep executor, 2,000 lanes;
* case A's machine (examples/casebook/lost-eoi-reroute/fix.scn; current tree only, as the
  baseline cannot run it), lockstep, 2,000 lanes.

    .venv/bin/python benchmarks/bench_routes.py --baseline /tmp/base [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

WORK = r"""
import json, sys, time
from dataclasses import replace
from irqlab import engine, __version__
from irqlab.dsl import load
from irqlab.ir import Quantity

def rate(path, backend, lanes, duration):
    s = load(path)
    s = replace(s, run=replace(s.run, duration=Quantity(duration, "s"), max_events=10**9))
    prog = engine.compile(s)
    ls = [engine.Lane(i, (i,)) for i in range(lanes)]
    engine.run(prog, ls[:1], backend=backend)  # warm up
    t = time.perf_counter()
    r = engine.run(prog, ls, backend=backend)
    dt = time.perf_counter() - t
    return float(r.metrics["events"].sum()) / dt

root, which = sys.argv[1], sys.argv[2]
out = {"version": __version__}
if which in ("storm", "all"):
    out["storm_reference_1"] = rate(root + "/examples/founding_case.scn", "reference", 1, 2e-3)
    out["storm_lockstep_2000"] = rate(root + "/examples/founding_case.scn", "numpy", 2000, 0.2e-3)
if which == "all":
    out["case_a_lockstep_2000"] = rate(root + "/examples/casebook/lost-eoi-reroute/fix.scn", "numpy", 2000, 1e-3)
print(json.dumps(out))
"""


def measure(tree: Path, which: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", WORK, str(tree), which], env=env, capture_output=True,
                         text=True, check=True, cwd=str(tree))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="another checkout of irqlab (e.g. main)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    base_runs, cur_runs = [], []
    for _ in range(a.repeat):
        base_runs.append(measure(a.baseline, "storm"))
        cur_runs.append(measure(HERE, "all"))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"baseline {a.baseline} (irqlab {base_runs[0]['version']}), current {HERE}; "
          f"{a.repeat} alternating rounds, medians")
    print(f"{'workload':28} {'baseline ev/s':>14} {'current ev/s':>14} {'current/baseline':>17}")
    for key in ("storm_reference_1", "storm_lockstep_2000"):
        b = statistics.median(r[key] for r in base_runs)
        c = statistics.median(r[key] for r in cur_runs)
        print(f"{key:28} {b:14,.0f} {c:14,.0f} {c / b:17.3f}")
    c = statistics.median(r["case_a_lockstep_2000"] for r in cur_runs)
    print(f"{'case_a_lockstep_2000':28} {'-':>14} {c:14,.0f} {'-':>17}")


if __name__ == "__main__":
    main()
