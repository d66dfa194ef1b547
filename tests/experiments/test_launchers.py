"""The launcher contract, one suite for every launcher."""

from __future__ import annotations

import time

import pytest

from irqlab.engine.program import Lane
from irqlab.experiments.launchers import make_launcher
from irqlab.experiments.worker import TaskOutput
from sweep_fakes import FakeProgram, fake_run


def _drain(launcher, n, timeout=60.0):
    got, t0 = [], time.monotonic()
    while len(got) < n and time.monotonic() - t0 < timeout:
        got += launcher.wait(0.5)
    return dict(got)


def test_every_task_comes_back_with_its_lanes_in_order(launcher_kind):
    """Each submitted task is reported once, its lanes' results in input order."""
    with make_launcher(launcher_kind, run_fn=fake_run) as launcher:
        h = launcher.put_program(FakeProgram())
        for t in range(4):
            launcher.submit(t, h, [Lane(7, (r,), {"x": float(t)}) for r in range(3)])
        out = _drain(launcher, 4)
    assert sorted(out) == [0, 1, 2, 3]
    for t, o in out.items():
        assert isinstance(o, TaskOutput) and o.error is None
        assert list(o.result.metrics["events"]) == [1000, 1010, 1020]
        assert list(o.result.metrics["l2_fraction"]) == [t / 10] * 3


def test_an_engine_exception_is_returned_as_an_error(launcher_kind):
    """A run function that raises gives a TaskOutput with the error text, not an exception."""
    with make_launcher(launcher_kind, run_fn=fake_run) as launcher:
        launcher.submit(0, launcher.put_program(FakeProgram(raise_in_run=True)), [Lane(1)])
        out = _drain(launcher, 1)
    assert out[0].result is None
    assert "RuntimeError: bug in the engine" in out[0].error


def test_results_do_not_depend_on_the_launcher(launcher_kind):
    """The same lanes give the same metrics on every launcher (inline is the reference)."""
    lanes = [Lane(3, (r,), {"x": 2.0}) for r in range(5)]
    ref = fake_run(FakeProgram(), lanes)
    with make_launcher(launcher_kind, run_fn=fake_run) as launcher:
        launcher.submit(0, launcher.put_program(FakeProgram()), lanes)
        out = _drain(launcher, 1)
    assert list(out[0].result.metrics["time_to_l2_progress_ns"]) == \
        list(ref.metrics["time_to_l2_progress_ns"])


def test_cancel_forgets_unreported_tasks(launcher_kind):
    """After cancel() nothing is in flight and wait() reports nothing."""
    with make_launcher(launcher_kind, run_fn=fake_run) as launcher:
        h = launcher.put_program(FakeProgram(sleep_per_lane=0.5))
        for t in range(3):
            launcher.submit(t, h, [Lane(1)])
        launcher.cancel()
        assert launcher.inflight == 0
        assert launcher.wait(0.1) == []


@pytest.mark.slow
def test_a_dead_ray_worker_has_its_task_retried(ray_session, tmp_path):
    """A task whose worker process dies is retried and its result still arrives."""
    marker = tmp_path / "died-once"
    with make_launcher("ray", run_fn=fake_run, max_retries=2) as launcher:
        launcher.submit(0, launcher.put_program(FakeProgram(die_marker=str(marker))), [Lane(1)])
        out = _drain(launcher, 1)
    assert marker.exists()
    assert isinstance(out[0], TaskOutput) and out[0].error is None


@pytest.mark.slow
def test_a_task_lost_beyond_its_retries_comes_back_as_an_exception(ray_session, tmp_path):
    """With max_retries=0 a dead worker's task is reported as an exception, not raised."""
    marker = tmp_path / "died-once"
    with make_launcher("ray", run_fn=fake_run, max_retries=0) as launcher:
        launcher.submit(0, launcher.put_program(FakeProgram(die_marker=str(marker))), [Lane(1)])
        out = _drain(launcher, 1)
    assert isinstance(out[0], BaseException)
