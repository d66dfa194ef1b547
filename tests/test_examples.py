"""The founding case and its variants, reproduced from the example files themselves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from irqlab import engine
from irqlab.dsl import load
from irqlab.ir import Quantity
from tests.engine.helpers import KVM, events
from tests.engine.test_founding_case import SEED_LOOP, iteration_ps

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, duration_s: float | None = None, n: int = 1, trace: bool = False):
    s = load(EXAMPLES / name)
    if duration_s is not None:
        s = replace(s, run=replace(s.run, duration=Quantity(duration_s, "s")))
    prog = engine.compile(s)
    res = engine.run(prog, [engine.Lane(s.run.seed, (r,)) for r in range(n)], trace_lanes=[0] if trace else ())
    return s, res


def test_founding_case_livelocks_in_the_seed_loop():
    """founding_case.scn: livelock, L2 never runs, and the trace repeats the seed's loop."""
    s, r = run_example("founding_case.scn", 0.005, trace=True)
    m = r.lane(0)
    assert m["livelock"] and m["l2_time_ns"] == 0 and m["time_to_l2_progress_ns"] is None
    kvm = [(e, x) for _, e, x in events(r, 0, KVM)]
    start = next(i for i, (e, x) in enumerate(kvm) if e == "kvm_exit" and "VMRESUME" in x)
    for (e, x), (want_e, want_x) in zip(kvm[start:start + 26], SEED_LOOP * 2):
        assert e == want_e and want_x in x


@pytest.mark.slow
def test_qemu_throttle_example():
    """founding_case_qemu_throttle.scn: L2 progresses after threshold x iteration cost (1%); the
    device is serviced and the storm ends."""
    s, r = run_example("founding_case_qemu_throttle.scn")
    m = r.lane(0)
    threshold = s.mitigations[0].get("threshold").value
    assert m["time_to_l2_progress_ns"] == pytest.approx(threshold * iteration_ps(s) / 1000, rel=0.01)
    assert m["devices"]["uhci"]["serviced"] == 1 and m["interrupts_delivered"] == threshold


@pytest.mark.slow
def test_kernel_irqchip_example_has_no_userspace_exits():
    """founding_case_kernel.scn: KVM's rule frees L2, with no exit to userspace."""
    s, r = run_example("founding_case_kernel.scn")
    m = r.lane(0)
    assert m["userspace_exits"] == {} and m["time_to_l2_progress_ns"] is not None
    assert m["mitigation_activations"]["kvm_eoi_delay"] == 1


def test_preemption_timer_throttle_example():
    """founding_case_pt_throttle.scn: L2 progresses after about 100 loop iterations."""
    s, r = run_example("founding_case_pt_throttle.scn", 0.01)
    m = r.lane(0)
    assert 100 <= m["time_to_l2_progress_ns"] * 1000 / iteration_ps(s) <= 103


def test_directed_eoi_example_has_no_storm():
    """founding_case_directed_eoi.scn: suppress-EOI-broadcast honoured: one delivery, no storm."""
    _, r = run_example("founding_case_directed_eoi.scn", 0.01)
    m = r.lane(0)
    assert m["interrupts_delivered"] == 1 and not m["livelock"] and m["immediate_exits"] == 0


@pytest.mark.slow
def test_high_rate_level_device_never_activates_a_mitigation():
    """level_highrate.scn: a correct driver at 50 kHz never activates a mitigation."""
    _, r = run_example("level_highrate.scn", 0.05, n=4)
    for i in range(4):
        m = r.lane(i)
        assert m["interrupts_raised"] > 2000 and not m["livelock"]
        assert all(v == 0 for v in m["mitigation_activations"].values())


def test_bare_metal_example_runs_without_exits():
    """baremetal_edge_poisson.scn: bare metal has no VM exits and services every interrupt."""
    _, r = run_example("baremetal_edge_poisson.scn", 0.05)
    m = r.lane(0)
    assert m["exits_total"] == 0 and m["l0_time_ns"] == m["sim_time_ns"]
    assert m["devices"]["nic"]["serviced"] > 500


def test_founding_case_is_in_the_quirk_state_and_both_readings_storm_alike():
    """founding_case.scn says the 2019 machine advertised Directed EOI and ignored it (quirk); the
    2019 reading (early EOI) and the 2025 reading (ignored suppress bit) give the same storm."""
    s, early = run_example("founding_case.scn", 0.005)
    assert s.machine.suppress_eoi_broadcast == "quirk"
    s2, ignored = run_example("founding_case_ignored_suppress.scn", 0.005)
    assert s2.vcpus[0].level("L1").policy.name == "directed_eoi"
    a, b = early.lane(0), ignored.lane(0)
    assert a["livelock"] and b["livelock"] and a["l2_time_ns"] == b["l2_time_ns"] == 0
    assert (a["eoi_count"], a["exits"]) == (b["eoi_count"], b["exits"])
