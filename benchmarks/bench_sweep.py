"""Sweep throughput: runs/s and lane-events/s of a 10,000-run sweep, 1 and 2 Ray workers.

    .venv/bin/python benchmarks/bench_sweep.py [--replications 10] [--workers 1,2] [--inline]
    .venv/bin/python benchmarks/bench_sweep.py --baseline DIR [--repeat 3] ...

The sweep: a short scenario (a guest whose level-triggered device storms at
a swept rate, with the QEMU EOI throttle's threshold and delay swept) as
points x replications = ``--runs``. Each configuration sweeps into a fresh
output directory with the real store (SQLite + Parquet), so the figures
include planning (resolve + compile of every point), batching, shipping,
and writing.

Figures, per configuration:

* runs/s and lane-events/s over the sweep's whole wall time;
* engine time: the sum of ``engine.run`` times in the workers;
* overhead per run = (wall - engine time / workers) / runs: everything
  that is not simulation, per run (planning, scheduling, pickling, storage);
* speedup of 2 workers over 1, and, as a baseline measured in the same run,
  the engine alone (no planning, shipping, storage or batch sizing) on the
  same lanes split evenly over 1 and 2 processes in equal batches of at most
  ``max_lanes``: the ceiling any launcher could reach. The lockstep
  executor's time per step has a large fixed part, so one worker running
  fewer, larger batches is more efficient per lane than two workers sharing
  the same lanes; the engine's own speedup at 10,000 lanes is below 2.

* the driver's CPU per run: CPU time of the driver process (planning,
  shipping, collecting, storage, progress; with ``inline`` the engine too)
  over the sweep, per run. Unlike wall times it hardly depends on what
  else the machine runs.

``--baseline DIR`` compares with another checkout of irqlab (e.g. a copy of
main's): each configuration is swept ``--repeat`` times with DIR's irqlab
and with this one, alternating, each sweep in a fresh process, and the
medians are printed as ratios (this / baseline) with the load average, and
the 1 -> 2 workers ceiling that the engine's and the driver's CPU per run
allow on idle cores (the driver is one serial process).

Ray's start-up (a few seconds, once per sweep) is timed and printed
separately; it is not in the wall times: each Ray is started before its
sweep and reused by it. The CPU that other processes used meanwhile is
printed too (``others``, in cores): on a shared machine it is what makes two
workers look slow.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: the checkout whose irqlab a --child sweep imports (--baseline sets it)
CHECKOUT = os.environ.get("IRQLAB_BENCH_CHECKOUT") or os.path.dirname(HERE)
sys.path.insert(0, CHECKOUT)

from machine import describe  # noqa: E402  benchmarks/machine.py

SCENARIO = """\
# bench_sweep: a short storm (5 ms), swept over the throttle and the device rate:
# 10 x 10 x 10 points x 10 replications = 10,000 runs
scenario bench {
    vcpu 0 { L1 linux { policy lower_then_eoi } }
    device nic {
        gsi 10; vector 0x40; trigger level
        serviced_by L1 after 2us
        arrival poisson rate 20kHz
    }
    mitigation qemu_eoi_throttle { threshold 100; delay 1ms }
    run { duration 5ms; seed 1 }
    sweep {
        grid {
            qemu_eoi_throttle.threshold = [2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000]
            qemu_eoi_throttle.delay = [10us, 20us, 50us, 100us, 200us, 500us, 1ms, 2ms, 5ms, 10ms]
            nic.arrival.rate = [5kHz, 10kHz, 15kHz, 20kHz, 25kHz, 30kHz, 40kHz, 50kHz, 60kHz, 80kHz]
        }
        replications 10
    }
}
"""


def _cpu_by_pid() -> dict[int, tuple[int, int]]:
    """``pid -> (ppid, user+system clock ticks)`` of every process (Linux /proc)."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def _busy_ticks() -> int:
    """Clock ticks all CPUs spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]


class Background:
    """CPU used by everything outside this benchmark's process tree while it runs
    (other users of a shared machine, including short-lived processes), in cores:
    the machine's busy time minus this process's and its descendants' (Ray's
    raylet and workers). The figures are only comparable when this is near zero."""

    def __enter__(self) -> "Background":
        self.ok = os.path.exists("/proc/stat")
        if self.ok:
            self.t0, self.busy0, self.ours0 = time.perf_counter(), _busy_ticks(), self._ours()
            self.reaped0 = self._reaped()
        return self

    @staticmethod
    def _reaped() -> float:
        """CPU seconds of this process's children that have ended and been waited for."""
        import resource

        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    def _ours(self) -> int:
        procs = _cpu_by_pid()
        ours, changed = {os.getpid()}, True
        while changed:
            changed = False
            for pid, (ppid, _) in procs.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        self.tree = ours
        return sum(t for pid, (_, t) in procs.items() if pid in ours)

    def __exit__(self, *exc) -> None:
        if not self.ok:
            self.cores = float("nan")
            return
        hz = os.sysconf("SC_CLK_TCK")
        busy = (_busy_ticks() - self.busy0) / hz
        ours = (self._ours() - self.ours0) / hz + (self._reaped() - self.reaped0)
        wall = time.perf_counter() - self.t0
        self.cores = max(0.0, busy - ours) / wall


def wait_for_quiet(limit_s: float, threshold: float = 0.15) -> float:
    """Wait (up to ``limit_s``) until other processes use less than ``threshold`` cores
    over 3 s; return the last measurement."""
    deadline = time.monotonic() + limit_s
    while True:
        with Background() as bg:
            time.sleep(3)
        if bg.cores < threshold or time.monotonic() > deadline:
            return bg.cores
        time.sleep(10)


def versions() -> str:
    import numpy
    import pyarrow
    import ray
    import sqlalchemy

    from irqlab import __version__

    return (f"python {platform.python_version()}, irqlab {__version__}, numpy {numpy.__version__}, "
            f"ray {ray.__version__}, pyarrow {pyarrow.__version__}, sqlalchemy {sqlalchemy.__version__}")


from irqlab.experiments.launchers.ray import init_embedded  # noqa: E402


def _engine_share(text: str, lo: int, hi: int, max_lanes: int, q) -> None:
    """Child process: run lanes [lo, hi) of the sweep, in equal batches of at most
    max_lanes, with engine.run alone; put the timed seconds on ``q``."""
    import math

    import numba

    from irqlab import dsl, engine
    from irqlab.engine.program import Lane
    from irqlab.experiments import plan

    numba.set_num_threads(1)  # one kernel thread per process, as in a sweep's Ray task (one CPU)

    prep = plan.prepare(dsl.loads(text, "bench.scn"), text)
    pl = plan.validate(prep)
    runs = pl.todo[lo:hi]
    prog = pl.programs[runs[0].key]
    engine.run(prog, [Lane(1, (0,), {})])  # warm-up, untimed
    k = math.ceil(len(runs) / max_lanes)
    size = math.ceil(len(runs) / k)
    t = time.perf_counter()
    for i in range(0, len(runs), size):
        engine.run(prog, [Lane(r.seed, r.spawn_key, dict(r.lane_params)) for r in runs[i:i + size]])
    q.put(time.perf_counter() - t)


def engine_only(text: str, runs: int, workers: int, max_lanes: int) -> float:
    """Wall seconds of the pure engine on the sweep's lanes, split evenly over ``workers``
    processes running at once, each in equal batches of at most ``max_lanes``: the
    ceiling any launcher could reach (no planning, shipping, storage or batch sizing)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    share = -(-runs // workers)
    procs = [ctx.Process(target=_engine_share, args=(text, i * share, min(runs, (i + 1) * share),
                                                     max_lanes, q)) for i in range(workers)]
    for p in procs:
        p.start()
    times = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return max(times)


def sweep_once(text: str, launcher: str, workers: int, out: str):
    from irqlab.experiments.driver import SweepRequest, run_sweep

    req = SweepRequest(text=text, file="bench.scn", out_dir=out, launcher=launcher, workers=workers,
                       progress=False, command="bench_sweep", auto_ray_seconds=float("inf"))
    return run_sweep(req)


def child(text: str, config: str) -> int:
    """``--child launcher:workers``: one timed sweep (after an untimed warm-up sweep), its
    figures as one JSON line on stdout."""
    import json

    import irqlab

    launcher, workers = config.split(":")
    workers = int(workers)
    with tempfile.TemporaryDirectory(prefix="bench_sweep") as out:
        sweep_once(text[:text.index("    sweep {")] + "}\n", "inline", 1, out)
    if launcher == "ray":
        init_embedded(workers)
    with tempfile.TemporaryDirectory(prefix="bench_sweep") as out, Background() as bg:
        cpu = time.process_time()
        rep = sweep_once(text, launcher, workers, out)
        cpu = time.process_time() - cpu
    n = rep.ok + rep.failed
    print(json.dumps(dict(irqlab=os.path.dirname(irqlab.__file__), runs=n, wall=rep.wall_s,
                          engine=rep.engine_s, runs_s=n / rep.wall_s, driver_ms=cpu / n * 1e3,
                          others=bg.cores, load=os.getloadavg()[0])))
    return 0


def compare(text: str, args: argparse.Namespace, configs: list[tuple[str, int]]) -> int:
    """``--baseline DIR``: every configuration ``--repeat`` times with DIR's irqlab and this
    checkout's, alternating, each in a fresh process; medians and ratios."""
    import json
    import subprocess

    sides = {"baseline": os.path.abspath(args.baseline), "this": os.path.dirname(HERE)}
    extra = [] if args.scenario is None else ["--scenario", os.path.abspath(args.scenario)]
    got: dict[tuple[str, str], list[dict]] = {}
    for launcher, workers in configs:
        for _ in range(args.repeat):
            for side, root in sides.items():
                env = {**os.environ, "IRQLAB_BENCH_CHECKOUT": root,
                       "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                      f"{launcher}:{workers}", "--replications",
                                      str(args.replications), *extra],
                                     cwd=root, env=env, capture_output=True, text=True, check=True)
                fig = json.loads(out.stdout.strip().splitlines()[-1])
                if not fig["irqlab"].startswith(root):
                    raise SystemExit(f"the {side} sweep imported {fig['irqlab']}, not {root}'s irqlab")
                got.setdefault((f"{launcher} x{workers}", side), []).append(fig)
    med = {k: {f: statistics.median(x[f] for x in v) for f in v[0] if f != "irqlab"}
           for k, v in got.items()}
    print(f"\nbaseline {sides['baseline']}; medians of {args.repeat} sweeps per side, alternating")
    print(f"{'config':<10} {'side':<9} {'runs':>6} {'runs/s':>8} {'driver CPU/run':>15} "
          f"{'engine/run':>11} {'others':>6} {'load':>5}")
    for cfg in dict.fromkeys(c for c, _ in med):
        for side in sides:
            m = med[(cfg, side)]
            print(f"{cfg:<10} {side:<9} {m['runs']:>6.0f} {m['runs_s']:>8.0f} {m['driver_ms']:>12.3f} ms "
                  f"{m['engine'] / m['runs'] * 1e3:>8.3f} ms {m['others']:>5.2f}c {m['load']:>5.2f}")
        b, t = med[(cfg, "baseline")], med[(cfg, "this")]
        print(f"{cfg:<10} this/baseline: runs/s {t['runs_s'] / b['runs_s']:.2f}x, driver CPU per run "
              f"{t['driver_ms'] / b['driver_ms']:.2f}x")
    for side in sides:
        one, two = med.get(("ray x1", side)), med.get(("ray x2", side))
        if one and two:
            # a run costs e of a worker's CPU and d of the driver's (one process, serial); at
            # best 1 worker takes max(e, d) per run and 2 take max(e / 2, d, (e + d) / cores)
            e, d = one["engine"] / one["runs"], one["driver_ms"] / 1e3
            cores = os.cpu_count() or 1
            ceiling = max(e, d) / max(e / 2, d, (e + d) / cores)
            print(f"{side}: 1 -> 2 workers {two['runs_s'] / one['runs_s']:.2f}x; the ceiling the "
                  f"CPU per run allows on {cores} idle cores: {ceiling:.2f}x")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2", help="comma-separated Ray worker counts (default 1,2)")
    ap.add_argument("--inline", action="store_true", help="also run the inline launcher")
    ap.add_argument("--scenario", default=None, help="a .scn file instead of the built-in one")
    ap.add_argument("--replications", type=int, default=10,
                    help="replications of the built-in sweep's 1000 points (default 10: 10,000 runs)")
    ap.add_argument("--wait-quiet", type=float, default=600.0, metavar="S",
                    help="before each configuration, wait up to S seconds for other processes "
                         "to leave the CPUs idle (default 600; 0 to start at once)")
    ap.add_argument("--baseline", metavar="DIR", default=None,
                    help="compare with the irqlab of checkout DIR (sweeps alternating, in fresh "
                         "processes; --wait-quiet is not applied)")
    ap.add_argument("--repeat", type=int, default=3, help="sweeps per configuration and side "
                    "with --baseline (default 3)")
    ap.add_argument("--child", metavar="LAUNCHER:WORKERS", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    text = open(args.scenario).read() if args.scenario else \
        SCENARIO.replace("replications 10", f"replications {args.replications}")
    if args.child:
        return child(text, args.child)
    print(f"machine:  {describe()}")
    print(f"versions: {versions()}")
    # warm-up, untimed: imports, plugin discovery and the store's first use, so that the
    # first configuration does not pay for them
    with tempfile.TemporaryDirectory(prefix="bench_sweep") as out:
        one = text[:text.index("    sweep {")] + "}\n"
        sweep_once(one, "inline", 1, out)
    configs = [("inline", 1)] if args.inline else []
    configs += [("ray", int(w)) for w in args.workers.split(",")]
    if args.baseline:
        return compare(text, args, configs)
    rows = []
    for launcher, workers in configs:
        import ray

        if args.wait_quiet > 0:
            wait_for_quiet(args.wait_quiet)
        start = 0.0
        if launcher == "ray":
            t = time.perf_counter()
            init_embedded(workers)
            start = time.perf_counter() - t
        with tempfile.TemporaryDirectory(prefix="bench_sweep") as out, Background() as bg:
            cpu = time.process_time()
            rep = sweep_once(text, launcher, workers, out)
            cpu = time.process_time() - cpu
        if launcher == "ray":
            ray.shutdown()
        n = rep.ok + rep.failed
        wall = rep.wall_s
        eng = rep.engine_s
        rows.append(dict(cfg=f"{launcher} x{workers}", workers=workers, runs=n, failed=rep.failed,
                         wall=wall, plan=rep.plan_s, engine=eng, start=start,
                         runs_s=n / wall, ev_s=rep.lane_events / wall,
                         overhead_ms=(wall - eng / workers) / n * 1e3, driver_ms=cpu / n * 1e3,
                         batches=rep.batch_sizes, background=bg.cores))
    print()
    print(f"{'config':<10} {'runs':>6} {'wall s':>7} {'plan s':>6} {'engine s':>8} {'runs/s':>8} "
          f"{'lane-ev/s':>10} {'overhead/run':>12} {'driver CPU/run':>14} {'ray start':>9} {'others':>6}  "
          f"batches (n: min/median/max lanes)")
    for r in rows:
        b = r["batches"]
        bs = f"{len(b)}: {min(b)}/{int(statistics.median(b))}/{max(b)}" if b else "-"
        print(f"{r['cfg']:<10} {r['runs']:>6} {r['wall']:>7.2f} {r['plan']:>6.2f} {r['engine']:>8.2f} "
              f"{r['runs_s']:>8.0f} {r['ev_s']:>10.3g} {r['overhead_ms']:>9.3f} ms {r['driver_ms']:>11.3f} ms "
              f"{r['start']:>8.1f}s {r['background']:>5.2f}c  {bs}")
    base = next((r for r in rows if r["cfg"] == "ray x1"), None)
    two = next((r for r in rows if r["cfg"] == "ray x2"), None)
    print("(others: CPU cores used by other processes on this machine during the sweep; "
          "figures are comparable only when it is near 0)")
    if base and two:
        from irqlab.experiments.driver import SweepRequest

        max_lanes = SweepRequest("", None).max_lanes
        n = base["runs"]
        if args.wait_quiet > 0:
            wait_for_quiet(args.wait_quiet)
        with Background() as bg1:
            e1 = engine_only(text, n, 1, max_lanes)
        if args.wait_quiet > 0:
            wait_for_quiet(args.wait_quiet)
        with Background() as bg2:
            e2 = engine_only(text, n, 2, max_lanes)
        sp = two["runs_s"] / base["runs_s"]
        print(f"\nbaseline, the engine alone on the same {n} lanes (even split, equal batches "
              f"<= {max_lanes} lanes, warm): 1 process {e1:.2f} s, 2 processes {e2:.2f} s "
              f"(others {bg1.cores:.2f}c, {bg2.cores:.2f}c): the engine's own speedup {e1 / e2:.2f}x")
        print(f"speedup 1 -> 2 workers: {sp:.2f}x (target >= 1.8x), {sp / (e1 / e2):.0%} of the "
              f"engine's own")
        print(f"overhead per run, wall - engine time / workers: {base['overhead_ms']:.3f} ms (x1), "
              f"{two['overhead_ms']:.3f} ms (x2) (target < 1 ms); wall - the engine-alone "
              f"baseline: {(base['wall'] - e1) / n * 1e3:.3f} ms (x1), "
              f"{(two['wall'] - e2) / n * 1e3:.3f} ms (x2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
