"""The driver plans a sweep while its batches run (a launcher whose tasks run in the
background): the first batch does not wait for the whole plan, and every run is still
stored once, in planned order, with the results of a sweep planned all at once."""

from __future__ import annotations

import pytest

from irqlab.experiments import driver
from irqlab.experiments import plan as planning
from irqlab.experiments.launchers import InlineLauncher
from test_sweep import _rows, _scenario, _sweep


class _Background(InlineLauncher):
    """The inline launcher, flagged as running its tasks in the background; logs its calls."""

    background = True

    def __init__(self, log, run_fn=None):
        super().__init__(run_fn)
        self.log = log

    def submit(self, task_id, program, lanes):
        self.log.append(("submit", len(lanes)))
        super().submit(task_id, program, lanes)

    def wait(self, timeout):
        done = super().wait(timeout)
        self.log.extend(("done", task_id) for task_id, _ in done)
        return done


@pytest.fixture
def logged(monkeypatch):
    """The calls of a sweep's planner and launcher, in order."""
    log = []
    real = planning.Planner.next_chunk

    def next_chunk(self, max_runs=None):
        chunk = real(self, max_runs)
        if chunk is not None:
            log.append(("plan", len(chunk.todo)))
        return chunk
    monkeypatch.setattr(planning.Planner, "next_chunk", next_chunk)
    monkeypatch.setattr(driver, "PLAN_STEP", 2)
    monkeypatch.setattr(driver, "make_launcher", lambda kind, **kw: _Background(log, kw.get("run_fn")))
    return log


def test_the_first_batch_is_submitted_before_the_sweep_is_planned(tmp_path, logged):
    """The first batch goes out when its runs are planned; later runs are planned while
    batches are in flight."""
    rep = _sweep(tmp_path, "inline", _scenario(reps=2), probe_lanes=2, max_lanes=2)
    assert (rep.ok, rep.failed) == (12, 0)
    first = logged.index(("submit", 2))
    planned_before = sum(n for kind, n in logged[:first] if kind == "plan")
    assert planned_before < 12
    inflight, planned_meanwhile = False, 0
    for kind, n in logged:
        if kind == "submit":
            inflight = True
        elif kind == "done":
            inflight = False
        elif inflight:
            planned_meanwhile += n
    assert planned_meanwhile > 0


def test_a_sweep_planned_while_it_runs_stores_every_run_once_in_order(tmp_path, logged):
    """Planned in steps of 2 runs between batches, a sweep stores each (point, replication)
    once, in planned order, with the metrics of a sweep planned all at once."""
    _sweep(tmp_path / "a", "inline", _scenario(reps=2), probe_lanes=2, max_lanes=3)
    order = _rows(tmp_path / "a", "SELECT point, replication FROM runs ORDER BY rowid")
    assert order == [(p, r) for p in range(6) for r in range(2)]
    q = "SELECT run_id, status, events FROM runs ORDER BY run_id"
    planned = _rows(tmp_path / "a", q)
    driver.PLAN_STEP = 1 << 20  # restored by monkeypatch: the whole sweep in one chunk
    _sweep(tmp_path / "b", "inline", _scenario(reps=2), probe_lanes=12, max_lanes=12)
    assert planned == _rows(tmp_path / "b", q)
