"""The kernel runs as plain Python with the JIT off (docs/implementations.md: the readable
reference the porters develop against)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
from irqlab import engine
from tests.engine.scenarios import founding, with_run, us

prog = engine.compile(with_run(founding(), duration=us(200)))
lanes = [engine.Lane(3)]
a = engine.run(prog, lanes, trace_lanes=[0], backend="reference")
b = engine.run(prog, lanes, trace_lanes=[0], backend="kernel")
assert json.dumps(a.lane(0), sort_keys=True) == json.dumps(b.lane(0), sort_keys=True)
assert [r[2:] for r in a.traces[0].sorted()] == [r[2:] for r in b.traces[0].sorted()]
print(len(a.traces[0].sorted()))
"""


def test_the_kernel_runs_with_the_jit_off():
    """Under NUMBA_DISABLE_JIT=1 the kernel runs the founding storm as Python, equal to the reference."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 50  # the run did something
