"""The kernel runs as plain Python with NUMBA_DISABLE_JIT=1 in the environment (docs/implementations.md:
how kernel code is developed without compiling)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
from irqlab import engine
from tests.engine.scenarios import device, guest, us, use

nic = device("nic", 0x41, gsi=11, arrival=use("arrival", "poisson", rate=2e5))  # random draws
prog = engine.compile(guest(devices=[nic], duration=us(200), policy="eoi_before_lower"))
lanes = [engine.Lane(3)]
a = engine.run(prog, lanes, trace_lanes=[0], backend="reference")
b = engine.run(prog, lanes, trace_lanes=[0], backend="kernel")
assert json.dumps(a.lane(0), sort_keys=True) == json.dumps(b.lane(0), sort_keys=True)
assert [r[2:] for r in a.traces[0].sorted()] == [r[2:] for r in b.traces[0].sorted()]
print(len(a.traces[0].sorted()))
"""


def test_the_kernel_runs_with_the_jit_off():
    """Under NUMBA_DISABLE_JIT=1 backend kernel runs a scenario with Poisson arrivals as Python, equal to backend
    reference, without NumPy's overflow warnings from the random numbers' uint64 hash."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 50  # the run did something
