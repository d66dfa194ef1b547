"""The kernel's TPR/PPR, L2 exits and L2 EOIs (kernel_tpr) where the random differential
tests (test_differential_tpr.py) do not reach."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from irqlab import engine
from tests.engine.helpers import run
from tests.engine.scenarios import device, guest, ms, us, use
from tests.engine.test_differential import compare
from tests.engine.test_tpr import case_g

ROOT = Path(__file__).resolve().parents[2]


def svi_then_ack():
    """vmcs01's SVI goes stale with 0x91 (L2 EOIs it, ``defer_svi false``); at 30 us L1
    acknowledges 0x30, which it forwards to L2 (20 us); L1's timer 0x51 arrives at 33 us,
    while L1 runs, before its VMRESUME."""
    nic = device("nic", 0x91, gsi=None, trigger="edge", serviced_by="L2", arrival=use("arrival", "once", at=5e-6),
                 policy=use("policy", "l2_eoi"))
    disk = device("disk", 0x30, gsi=None, trigger="edge", serviced_by="L2", service=us(20),
                  arrival=use("arrival", "once", at=30e-6))
    timer = device("timer", 0x51, gsi=None, trigger="edge", serviced_by="L1", service=us(1),
                   arrival=use("arrival", "once", at=33e-6))
    return guest(levels=("L0", "L1", "L2"), l1_kind="pkvm", devices=[nic, disk, timer], duration=ms(1),
                 irqchip="kernel", defer_svi=False, vppr_refresh=False)


@pytest.mark.parametrize("backend", ["reference", "numpy", "kernel"])
def test_an_acknowledge_brings_a_stale_svi_back_to_isr(backend):
    """Acknowledging 0x30 resets vmcs01's SVI to it (vmx_hwapic_isr_update): at the VMRESUME
    that follows, vPPR's class is 3, so L1's 0x51 gets an immediate exit (7.6 us), not
    blocked by the stale 0x91 until L1's EOI of 0x30 (33 us)."""
    lane = run(svi_then_ack(), backend=backend, trace=False).lane(0)
    assert lane["devices"]["timer"]["latency_max_ns"] == 7600.0
    assert lane["immediate_exits"] == 1


def test_the_kernel_matches_the_reference_on_an_acknowledge_past_a_stale_svi():
    """The same scenario: every metric and record of the kernel equals the reference's."""
    compare(svi_then_ack(), n=1, others=("numpy", "untraced", "reference"))


def test_auto_runs_l2_exits_and_l2_eois_on_the_kernel():
    """`auto` picks the kernel for a program with L2 exits to L1 and L2's EOIs (case G)."""
    prog = engine.compile(case_g())
    assert {"l2_exit", "l2_eoi"} <= prog.mechanisms
    assert engine.run(prog, [engine.Lane(0)]).backend.startswith("kernel")


@pytest.mark.slow
def test_the_kernel_as_plain_python_gives_the_compiled_kernels_results():
    """With the JIT off (NUMBA_DISABLE_JIT=1) the kernel runs case G as Python, with the results
    of the compiled kernel."""
    code = ("import json; from irqlab import engine; from tests.engine.test_tpr import case_g; "
            "r = engine.run(engine.compile(case_g()), [engine.Lane(0)], backend='kernel'); "
            "print(json.dumps(r.lane(0), sort_keys=True))")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    compiled = engine.run(engine.compile(case_g()), [engine.Lane(0)], backend="kernel").lane(0)
    assert out.strip() == json.dumps(compiled, sort_keys=True)
