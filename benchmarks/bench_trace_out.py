"""Writing a long trace (`irqlab run --trace --perfetto`): peak memory, streamed vs in memory.

    .venv/bin/python benchmarks/bench_trace_out.py [--durations 20ms,80ms] [--backend kernel]

For each duration of the founding case (examples/founding_case.scn), runs one
traced lane and writes its trace-cmd text and Perfetto JSON, each variant in a
fresh Python process (so its peak RSS is its own, from wait4):

* streamed: what irqlab does (the trace spills to a temporary file past
  ``irqlab.engine.spill.CHUNK`` items; both files are written as streams);
* in memory (baseline): the same code with the spill threshold set past the
  trace's length and the Perfetto object built whole before ``json.dump``, as
  irqlab did before traces streamed.

Prints records, peak RSS, CPU time (user + system), and each streamed figure as
a ratio to the in-memory baseline measured in the same run. No assertion:
benchmarks print, tests assert (tests/engine/test_trace_stream.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

CHILD = r"""
import json, sys
from irqlab import engine
from irqlab.dsl import load
from irqlab.engine import spill
from irqlab.engine.trace import format_report, to_perfetto, write_perfetto
from irqlab.resolve import resolve

mode, duration, backend, out = sys.argv[1:5]
if mode == "memory":
    spill.CHUNK = 1 << 40
program = engine.compile(resolve(load("examples/founding_case.scn"), {"run.duration": duration}))
trace = engine.run(program, [engine.Lane(0)], trace_lanes=[0], backend=backend).traces[0]
with open(out + ".txt", "w") as fh:
    fh.writelines(line + "\n" for line in format_report(trace))
with open(out + ".json", "w") as fh:
    if mode == "memory":
        json.dump(to_perfetto(trace, program.n_vcpus, "b"), fh)
    else:
        write_perfetto(trace, program.n_vcpus, fh, "b")
print(len(trace.records))
"""


def measure(mode: str, duration: str, backend: str, out: str) -> tuple[int, float, int]:
    """(records, CPU seconds, peak RSS in KiB) of one child process."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, duration, backend, out],
                            stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{mode} {duration}: exit {proc.returncode}")
    return int(stdout.strip()), ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--durations", default="20ms,80ms")
    ap.add_argument("--backend", default="kernel")
    args = ap.parse_args()
    from irqlab import __version__

    print(f"machine: {describe()}; Python {platform.python_version()}; irqlab {__version__}; "
          f"backend {args.backend}; one traced lane of examples/founding_case.scn")
    print(f"{'duration':>9} {'records':>9} {'variant':>10} {'peak RSS':>10} {'CPU s':>7} "
          f"{'RSS ratio':>9} {'CPU ratio':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        measure("stream", "10us", args.backend, os.path.join(tmp, "warm"))  # kernel compiled or loaded
        for d in args.durations.split(","):
            base = measure("memory", d, args.backend, os.path.join(tmp, "m"))
            got = measure("stream", d, args.backend, os.path.join(tmp, "s"))
            for name, (n, cpu, rss) in (("in memory", base), ("streamed", got)):
                print(f"{d:>9} {n:>9,} {name:>10} {rss / 1024:>8.1f}MB {cpu:>7.2f} "
                      f"{rss / base[2]:>9.2f} {cpu / base[1]:>9.2f}")


if __name__ == "__main__":
    main()
