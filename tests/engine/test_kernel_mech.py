"""The per-lane kernel runs issue 12's mechanisms and stops zero-time loops as the lockstep
executor does (the random cases: tests/engine/test_differential.py's issue-12 kernel test)."""

from __future__ import annotations

import json

import pytest

from irqlab import engine
from irqlab.engine.kernelprog import kernel_support
from tests.engine.scenarios import founding
from tests.engine.test_mechanisms import oneshot_vfio, screaming, shared_vfio_pin, zero_cost_storm


def both(scn, n=1):
    """The lockstep executor's and the kernel's results of ``scn``, every lane traced."""
    prog = engine.compile(scn)
    lanes = [engine.Lane(5, (i,)) for i in range(n)]
    a = engine.run(prog, lanes, trace_lanes=range(n), backend="numpy")
    b = engine.run(prog, lanes, trace_lanes=range(n), backend="kernel")
    return a, b


def assert_same(a, b, n=1):
    for i in range(n):
        assert json.dumps(a.lane(i), sort_keys=True) == json.dumps(b.lane(i), sort_keys=True)
        assert [r[2:] for r in a.traces[i].sorted()] == [r[2:] for r in b.traces[i].sorted()]
        assert a.traces[i].counters == b.traces[i].counters


def test_auto_runs_issue12_mechanisms_on_the_kernel():
    """VFIO, AMD and lazy EOI of level pins no longer send a program to the NumPy executors."""
    for scn in (shared_vfio_pin("all"), founding(vendor="amd"), screaming(True)):
        prog = engine.compile(scn)
        assert prog.mechanisms and kernel_support(prog) is None
        assert engine.run(prog, [engine.Lane(0)]).backend.startswith("kernel (")


def test_a_mechanism_the_kernel_lacks_still_falls_back(monkeypatch):
    """A Program.mechanisms flag the kernel does not implement sends auto elsewhere, naming it."""
    from irqlab.engine.program import Program

    monkeypatch.setattr(Program, "mechanisms", property(lambda self: frozenset({"vfio", "a_new_mechanism"})))
    prog = engine.compile(founding())
    assert kernel_support(prog) == "the kernel does not run a_new_mechanism yet"


def test_kernel_stops_the_nested_lazy_eoi_cycle_as_the_lockstep_executor_does():
    """f458d039db7e's recursion through the resampler: the same zero-time loop, cycle text and metrics."""
    a, b = both(shared_vfio_pin("all"))
    assert b.lane(0)["zero_time_loop"] and b.lane(0)["zero_time_cycle"] == 3
    assert_same(a, b)


def test_kernel_runs_vfio_with_and_without_the_unmask_resample():
    """VFIO INTx with a oneshot handler, KVM before and after fef8f2b90edb: the kernel equals the lockstep executor."""
    for fixed in (True, False):
        a, b = both(oneshot_vfio(resample_on_unmask=fixed), n=2)
        assert_same(a, b, 2)


def test_kernel_amd_trace_prints_svm_exit_names():
    """machine { vendor amd }: the kernel's exits and immediate exits are the lockstep executor's, SVM names in the trace."""
    a, b = both(founding(vendor="amd"))
    assert any(e == "kvm_exit" and x.startswith("reason vmrun") for _, _, _, e, x in b.traces[0].sorted())
    assert_same(a, b)


@pytest.mark.slow
def test_kernel_stops_events_recurring_at_one_instant_as_the_lockstep_executor_does():
    """100000 events at one instant: the kernel reports the same zero_time_loop, cycle and records."""
    a, b = both(zero_cost_storm())
    assert b.lane(0)["zero_time_loop"] and b.lane(0)["zero_time_cycle"] == 5
    assert_same(a, b)
