"""Lazy planning: time and peak memory of planning and driving huge sweeps.

    .venv/bin/python benchmarks/bench_planning.py [--runs 10000000] [--baseline 100000]

Prints the machine and versions, then, each measured in a fresh process (peak
RSS from ``getrusage``):

* ``--dry-run`` of a 10^9-point grid (three axes of 1000 values, 2 replications);
* the sweep driver over a sweep of ``--baseline`` runs and one of ``--runs``
  runs (100 points x replications), with the real planner, batcher and inline
  launcher but a no-op engine and a no-op store, so what is measured is the
  planning and driving side: planning (resolving, identity, store lookups per
  chunk), batching and the end-of-sweep bookkeeping.

Ratios are against the baseline sweep measured in this run: peak memory should
not grow with the sweep's size. No assertion: benchmarks print, tests assert.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

from machine import describe  # benchmarks/machine.py

SCENARIO = """
scenario bench {{
    vcpu 0 {{ L1 linux {{ policy lower_then_eoi }} }}
    device nic {{
        gsi 10; vector 0x40; trigger level
        serviced_by L1 after 2us
        arrival poisson rate 20kHz
    }}
    mitigation qemu_eoi_throttle {{ threshold 100; delay 1ms }}
    run {{ duration 1ms }}
    sweep {{
        grid {{ {axes} }}
        replications {reps}
    }}
}}
"""


def _values(unit: str, n: int) -> str:
    return ", ".join(f"{i}{unit}" for i in range(1, n + 1))


def grid_text(n_axis: int, reps: int) -> str:
    axes = (f"qemu_eoi_throttle.threshold = [{_values('', n_axis)}]\n"
            f"            nic.arrival.rate = [{_values('Hz', n_axis)}]\n"
            f"            nic.service = [{_values('ns', n_axis)}]")
    return SCENARIO.format(axes=axes, reps=reps)


def sweep_text(runs: int) -> str:
    return SCENARIO.format(axes=f"qemu_eoi_throttle.threshold = [{_values('', 100)}]",
                           reps=max(1, runs // 100))


class NullStore:
    """Stores nothing; answers 'nothing stored' per chunk."""

    def begin_sweep(self, info):
        pass

    def stored_status(self, sweep_id, run_ids):
        return {}

    def write_batch(self, sweep_id, runs, result):
        return []

    def finish_sweep(self, *a):
        pass

    def close(self):
        pass


class NullProgram:
    key = "k"
    params: dict = {}


def null_run(program, lanes):
    from irqlab.experiments.driver import failed_result

    result = failed_result([None] * len(lanes))
    result.status[:] = ["ok"] * len(lanes)
    return result


def child(kind: str, size: int) -> None:
    """Measure one case in this (fresh) process; print a JSON line."""
    t0 = time.perf_counter()
    if kind == "dry-run":
        from irqlab.cli.sweep import dry_run_text
        from irqlab.experiments.driver import SweepRequest, parse_scenario

        text = grid_text(1000, 2)
        req = SweepRequest(text=text, file="bench.scn")
        out = dry_run_text(parse_scenario(text, "bench.scn"), req)
        planned = int(out.split(" = ")[1].split()[0])
    else:
        from irqlab.experiments.driver import SweepRequest, run_sweep

        text = sweep_text(size)
        req = SweepRequest(text=text, file="bench.scn", launcher="inline", progress=False,
                           max_lanes=4096, probe_lanes=4096)
        report = run_sweep(req, run_fn=null_run, compile_fn=lambda s: NullProgram(),
                           store=NullStore())
        planned = report.ok
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"planned": planned, "wall_s": wall, "peak_mb": rss}))


def measure(kind: str, size: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", kind, str(size)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000_000)
    ap.add_argument("--baseline", type=int, default=100_000)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], int(a.child[1]))
        return
    import numpy

    from irqlab import __version__

    print(f"machine: {describe()}")
    print(f"python {platform.python_version()}, numpy {numpy.__version__}, irqlab {__version__}")
    d = measure("dry-run", 0)
    print(f"--dry-run of a 10^9-point grid ({d['planned']:,} runs): {d['wall_s']:.2f} s, "
          f"peak RSS {d['peak_mb']:.0f} MB")
    base = measure("sweep", a.baseline)
    big = measure("sweep", a.runs)
    for name, m in (("baseline", base), ("measured", big)):
        print(f"sweep driver, {name}: {m['planned']:,} runs planned and driven in {m['wall_s']:.1f} s "
              f"({m['planned'] / m['wall_s']:,.0f} runs/s), batches of up to 4096 lanes, "
              f"peak RSS {m['peak_mb']:.0f} MB")
    print(f"ratio measured/baseline: {big['planned'] / base['planned']:.0f}x the runs, "
          f"{big['peak_mb'] / base['peak_mb']:.2f}x the peak memory, "
          f"{(big['wall_s'] / big['planned']) / (base['wall_s'] / base['planned']):.2f}x the time per run")


if __name__ == "__main__":
    main()
