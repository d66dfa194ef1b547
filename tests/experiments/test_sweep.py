"""The sweep driver, one suite for every launcher: what a sweep stores, failures as
data, fail-fast, interruption and resume, provenance."""

from __future__ import annotations

import functools
import json
import sqlite3

import pytest

from irqlab import ir
from irqlab.experiments.driver import SweepRequest, run_sweep
from ir_scenarios import axis, q, small, with_sweep
from sweep_fakes import run_dying_once, run_failing_where

TH = "mitigation.qemu_eoi_throttle.threshold"
DL = "mitigation.qemu_eoi_throttle.delay"


def _scenario(reps=2, thresholds=(10, 13, 20), delays=(1e-3, 2e-3)):
    s = small(replications=reps, seed=5)
    return with_sweep(s, ir.Grid(items=(axis(TH, *thresholds),
                                        axis(DL, *(q(d, "s") for d in delays)))))


def _sweep(tmp_path, launcher, scenario=None, *, run_fn=None, text="small", **kw):
    req = SweepRequest(text=text, file=None, out_dir=str(tmp_path / "out"), launcher=launcher,
                       progress=False, command="irqlab sweep test", **kw)
    return run_sweep(req, scenario=scenario or _scenario(), run_fn=run_fn)


def _rows(tmp_path, sql):
    con = sqlite3.connect(tmp_path / "out" / "results.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_sweep_stores_exactly_its_planned_runs(tmp_path, launcher_kind):
    """3 x 2 points x 2 replications: 12 ok rows, one per (point, replication)."""
    rep = _sweep(tmp_path, launcher_kind)
    assert (rep.planned, rep.ok, rep.failed, rep.status) == (12, 12, 0, "done")
    rows = _rows(tmp_path, "SELECT point, replication, status FROM runs ORDER BY point, replication")
    assert rows == [(p, r, "ok") for p in range(6) for r in range(2)]


def test_replication_r_uses_the_same_streams_at_every_point(tmp_path, launcher_kind):
    """Every run of replication r has seed = base seed and spawn key [r] (common random numbers)."""
    _sweep(tmp_path, launcher_kind)
    rows = _rows(tmp_path, "SELECT replication, seed, spawn_key FROM runs")
    assert {(r, s, k) for r, s, k in rows} == {(0, "5", "[0]"), (1, "5", "[1]")}


def test_results_do_not_depend_on_the_launcher_or_the_batching(tmp_path, launcher_kind):
    """Per run_id, the metrics equal those of an inline sweep run one lane per batch."""
    _sweep(tmp_path / "a", launcher_kind)
    _sweep(tmp_path / "b", "inline", max_lanes=1)
    q_ = "SELECT run_id, events, wall_s IS NOT NULL FROM runs ORDER BY run_id"
    a = _rows(tmp_path / "a", q_)
    b = _rows(tmp_path / "b", q_)
    assert a == b and len(a) == 12


def test_params_are_stored_in_base_units(tmp_path, launcher_kind):
    """runs.params holds each point's values: times in seconds, counts as numbers."""
    _sweep(tmp_path, launcher_kind)
    (params,) = _rows(tmp_path, "SELECT params FROM runs WHERE point = 1 AND replication = 0")[0]
    assert json.loads(params) == {TH: 10, DL: 0.002}


def test_a_failed_lane_is_a_row_and_the_sweep_goes_on(tmp_path, launcher_kind):
    """Runs whose lane failed are stored as failed with the error; the others are ok."""
    rep = _sweep(tmp_path, launcher_kind, run_fn=run_failing_where)
    assert (rep.ok, rep.failed, rep.status) == (8, 4, "done")
    rows = _rows(tmp_path, "SELECT DISTINCT point, error FROM runs WHERE status = 'failed'")
    assert sorted(rows) == [(2, f"plugin raised: {TH} = 13"), (3, f"plugin raised: {TH} = 13")]


def test_fail_fast_stops_at_the_first_failure(tmp_path, launcher_kind):
    """With fail_fast the sweep stops with status failed before running everything."""
    rep = _sweep(tmp_path, launcher_kind, run_fn=run_failing_where, fail_fast=True,
                 probe_lanes=1, max_lanes=1, workers=1)
    assert rep.status == "failed" and rep.failed >= 1 and rep.ok + rep.failed < 12
    assert _rows(tmp_path, "SELECT status FROM sweeps") == [("failed",)]


def test_a_point_that_does_not_validate_becomes_failed_rows(tmp_path, launcher_kind):
    """A point whose value is out of range fails its runs with the resolve error; others run."""
    rep = _sweep(tmp_path, launcher_kind, _scenario(thresholds=(10, -5)))
    assert (rep.ok, rep.failed) == (4, 4)
    errors = _rows(tmp_path, "SELECT DISTINCT point, error FROM runs WHERE status = 'failed'")
    assert [p for p, _ in errors] == [2, 3] or sorted(p for p, _ in errors) == [2, 3]
    assert all("threshold" in e for _, e in errors)


def test_rerunning_a_finished_sweep_runs_nothing(tmp_path, launcher_kind):
    """The same sweep into the same output again skips every run."""
    _sweep(tmp_path, launcher_kind)
    rep = _sweep(tmp_path, launcher_kind)
    assert (rep.skipped, rep.ok, rep.failed) == (12, 0, 0)
    assert _rows(tmp_path, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(12, 12)]


def test_an_interrupted_sweep_resumes_with_only_what_is_missing(tmp_path, launcher_kind):
    """Interrupted after its first batch, a sweep rerun completes with no run twice."""
    def stop_after_first(report):
        raise KeyboardInterrupt

    req = SweepRequest(text="small", file=None, out_dir=str(tmp_path / "out"),
                       launcher=launcher_kind, progress=False, probe_lanes=3, max_lanes=3, workers=1)
    first = run_sweep(req, scenario=_scenario(), on_progress=stop_after_first)
    assert first.status == "interrupted" and 0 < first.ok < 12
    assert _rows(tmp_path, "SELECT status FROM sweeps") == [("interrupted",)]
    second = _sweep(tmp_path, launcher_kind)
    assert second.skipped == first.ok and second.ok == 12 - first.ok
    assert _rows(tmp_path, "SELECT count(*), count(DISTINCT run_id) FROM runs") == [(12, 12)]
    assert _rows(tmp_path, "SELECT status FROM sweeps") == [("done",)]


def test_retry_failed_reruns_only_the_failures(tmp_path, launcher_kind):
    """Resume skips failed runs; with retry_failed they run again and replace their rows."""
    _sweep(tmp_path, launcher_kind, run_fn=run_failing_where)
    again = _sweep(tmp_path, launcher_kind)
    assert (again.ok, again.failed, again.skipped) == (0, 0, 12)
    retried = _sweep(tmp_path, launcher_kind, retry_failed=True)
    assert (retried.ok, retried.skipped) == (4, 8)
    assert _rows(tmp_path, "SELECT status, count(*) FROM runs GROUP BY status") == [("ok", 12)]


def test_the_sweep_records_its_provenance(tmp_path, launcher_kind):
    """The sweeps row holds scenario text and hash, command, versions, host and times."""
    _sweep(tmp_path, launcher_kind, text="scenario text")
    con = sqlite3.connect(tmp_path / "out" / "results.db")
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM sweeps").fetchone())
    con.close()
    import hashlib

    from irqlab import __version__

    assert row["scenario_text"] == "scenario text"
    assert row["scenario_hash"] == hashlib.sha256(b"scenario text").hexdigest()
    assert row["command"] == "irqlab sweep test" and row["irqlab_version"] == __version__
    assert "mitigation.qemu_eoi_throttle" in json.loads(row["plugin_versions"])
    assert row["host"] and row["started_at"] and row["ended_at"] and row["status"] == "done"
    assert row["planned_runs"] == 12 and json.loads(row["param_paths"]) == [TH, DL]


@pytest.mark.slow
def test_a_dead_worker_is_retried_and_the_sweep_completes(tmp_path, ray_session):
    """A Ray worker killed mid-batch has its task retried: every run ends ok."""
    run = functools.partial(run_dying_once, marker=str(tmp_path / "died"))
    rep = _sweep(tmp_path, "ray", run_fn=run)
    assert (tmp_path / "died").exists()
    assert (rep.ok, rep.failed) == (12, 0)


def test_auto_keeps_a_small_sweep_inline(tmp_path, monkeypatch):
    """launcher=auto without a cluster address runs a small sweep in this process."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    rep = _sweep(tmp_path, "auto")
    assert rep.launcher == "inline (this process)" and rep.ok == 12


@pytest.mark.slow
def test_auto_moves_to_ray_when_much_work_is_left(tmp_path, ray_session, monkeypatch):
    """After the probe, auto moves to Ray when the remaining work is estimated above the limit."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    rep = _sweep(tmp_path, "auto", auto_ray_seconds=0.0, probe_lanes=2)
    assert rep.launcher.startswith("inline probe, then ray") and (rep.ok, rep.failed) == (12, 0)
    assert _rows(tmp_path, "SELECT count(DISTINCT run_id) FROM runs") == [(12,)]
