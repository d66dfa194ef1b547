"""Import rate of `trace-cmd report` text, in lines/s, and peak memory.

    .venv/bin/python benchmarks/bench_traces.py [--lines N]

Writes a trace-cmd report of N lines (default 500,000: the founding case's loop,
as `irqlab trace` prints it, repeated with advancing timestamps) to a temporary
directory, then runs each stage in a fresh Python process (so its peak RSS is
its own, from wait4):

* baseline: reading the same file line by line and splitting each line at ': '
  (the least any text importer must do);
* read: irqlab.traces.reader.read_records (line forms and typed fields);
* import: `irqlab traces import` to Parquet (row groups written as they fill);
* summary: `irqlab traces summary` (counts and the storm detector).

Prints lines/s of CPU time (user + system of the stage's process, from wait4:
on a shared machine wall time mostly measures the other jobs), wall time, the
ratio of each stage's CPU time to the baseline's measured in this run, and peak
RSS (a bounded-memory import keeps it flat as N grows: run
with two sizes to see). No assertion: benchmarks print, tests assert.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

from machine import describe  # benchmarks/machine.py

STAGES = {
    "baseline": "import sys\nn = 0\nwith open(sys.argv[1], encoding='utf-8') as f:\n"
                "    for line in f:\n        n += len(line.split(': '))\n",
    "read": "import sys\nfrom irqlab.traces.reader import ReadStats, read_records\n"
            "for _ in read_records([sys.argv[1]], ReadStats(), print):\n    pass\n",
    "import": "import sys\nfrom irqlab.cli.main import main\n"
              "sys.exit(main(['traces', 'import', sys.argv[1], '-o', sys.argv[1] + '.parquet']))\n",
    "summary": "import sys\nfrom irqlab.cli.main import main\n"
               "sys.exit(main(['traces', 'summary', sys.argv[1]]))\n",
}


def make_trace(path: str, lines: int) -> None:
    """N lines of the founding case's report, its loop repeated with advancing times."""
    from irqlab.cli.main import main  # noqa: F401 - registers the commands
    from irqlab.cli.sim import lanes_for, load_resolved
    from irqlab import engine
    from irqlab.engine.trace import format_report

    scenario = load_resolved(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "founding_case.scn"), ("run.duration=1ms",))
    program = engine.compile(scenario)
    lanes, _ = lanes_for(scenario, program, None, None, only=0)
    trace = engine.run(program, lanes, trace_lanes=[0]).traces[0]
    body = [ln for ln in format_report(trace) if "CPU 0/KVM" in ln][100:]
    span = 1e-3
    with open(path, "w", encoding="utf-8") as f:
        n, rep = 0, 0
        while n < lines:
            for ln in body:
                head, tail = ln.split("] ", 1)
                ts, rest = tail.split(":", 1)
                f.write(f"{head}] {float(ts) + rep * span:15.9f}:{rest}\n")
                n += 1
                if n >= lines:
                    break
            rep += 1


def run_stage(name: str, path: str) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MiB) of one stage in a fresh process."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", STAGES[name], path], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"stage {name} failed (status {status})")
    return dt, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=500_000)
    ap.add_argument("--make", help=argparse.SUPPRESS)  # child: write the trace here
    args = ap.parse_args()
    if args.make:
        import numpy
        import pyarrow

        make_trace(args.make, args.lines)
        print(f"python {platform.python_version()}, numpy {numpy.__version__}, pyarrow {pyarrow.__version__}")
        return
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "report.txt")
        # made in a child, so that this process stays small: a stage's peak RSS (from wait4)
        # starts from the size of the process that forked it
        subprocess.run([sys.executable, __file__, "--make", path, "--lines", str(args.lines)], check=True)
        size = os.path.getsize(path) / 2**20
        print(f"input: {args.lines:,} lines of trace-cmd report ({size:.0f} MiB)")
        base = None
        print(f"  {'stage':<9} {'lines/s (CPU)':>14} {'CPU s':>7} {'wall s':>7} {'vs baseline':>12} "
              f"{'peak RSS':>9}")
        for name in STAGES:
            dt, cpu, rss = run_stage(name, path)
            base = base or cpu
            print(f"  {name:<9} {args.lines / cpu:>14,.0f} {cpu:7.2f} {dt:7.2f} {cpu / base:11.1f}x "
                  f"{rss:6.0f} MiB")


if __name__ == "__main__":
    main()
