"""ResultStore: what it writes, read back with sqlite3, pyarrow and DuckDB (not irqlab)."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from irqlab.errors import ScenarioError
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info


def _db(path) -> sqlite3.Connection:
    return sqlite3.connect(path / "results.db")


def _dataset(path):
    import pyarrow.dataset as ds

    return ds.dataset(path / "parquet" / "runs", partitioning="hive").to_table()


def test_sqlite_holds_every_run_with_its_status(written):
    """runs has one row per run, with status and error, read by Python's sqlite3."""
    rows = _db(written).execute("SELECT run_id, status, error FROM runs ORDER BY run_id").fetchall()
    assert len(rows) == 12
    assert rows[4] == ("r000004", "failed", "boom")
    assert {r[1] for r in rows[:4]} == {"ok"}


def test_wide_view_answers_the_grouped_question(written):
    """SELECT threshold, delay, avg(metric) FROM sweep_1 GROUP BY 1, 2 works in sqlite3."""
    rows = _db(written).execute(
        "SELECT threshold, delay, avg(time_to_l2_progress_ns), count(*) FROM sweep_1 "
        "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (10.0, 0.001, 2), (10.0, 0.01, 2), (100.0, 0.001, 2), (100.0, 0.01, 2),
        (1000.0, 0.001, 2), (1000.0, 0.01, 2)]


def test_wide_values_equal_the_batch_result(written):
    """A metric read back through sqlite3 equals the lane it came from; NaN is stored as NULL."""
    res = make_result(6, seed=1, series=True)
    got = dict(_db(written).execute(
        "SELECT run_id, time_to_l2_progress_ns FROM sweep_storm WHERE run_id >= 'r000006'"))
    for i in range(6):
        want = res.metrics["time_to_l2_progress_ns"][i]
        have = got[f"r{6 + i:06d}"]
        assert (have is None and math.isnan(want)) or have == want


def test_parquet_rows_match_sql_and_carry_units(written):
    """pyarrow reads the hive-partitioned dataset: the same runs, values and unit metadata."""
    t = _dataset(written)
    assert sorted(t["run_id"].to_pylist()) == [f"r{i:06d}" for i in range(12)]
    assert set(t["sweep_id"].to_pylist()) == {"s1"}
    field = t.schema.field("time_to_l2_progress_ns")
    assert field.metadata[b"unit"] == b"ns"
    assert t.schema.field("delay").metadata[b"unit"] == b"s"
    sql = dict(_db(written).execute("SELECT run_id, device_uhci_latency_p99_ns FROM sweep_1"))
    for rid, v in zip(t["run_id"].to_pylist(), t["device_uhci_latency_p99_ns"].to_pylist()):
        assert sql[rid] == v


def test_duckdb_reads_the_parquet_without_irqlab(written):
    """DuckDB answers the grouped question straight from the Parquet files."""
    duckdb = pytest.importorskip("duckdb")
    glob = str(written / "parquet" / "runs" / "*" / "*.parquet")
    rows = duckdb.sql(f"SELECT threshold, count(*) FROM read_parquet('{glob}', "
                      f"hive_partitioning = true) GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [(10.0, 4), (100.0, 4), (1000.0, 4)]


def test_series_are_stored_long(written):
    """Time series land in the series table and dataset: one row per run, field and sample."""
    assert _db(written).execute("SELECT count(*) FROM series").fetchone()[0] == 12 * 4
    import pyarrow.dataset as ds

    t = ds.dataset(written / "parquet" / "series", partitioning="hive").to_table()
    assert t.num_rows == 48 and set(t["field"].to_pylist()) == {"l2_fraction"}


def test_sweep_provenance_is_stored(written):
    """sweeps keeps provenance and the finished status; so does the sweeps Parquet file."""
    import pyarrow.dataset as ds

    row = _db(written).execute("SELECT status, git_commit, host, ended_at, view_name FROM sweeps"
                               ).fetchone()
    assert row == ("done", "deadbeef", "testhost", "2024-01-01T01:00:00+00:00", "sweep_1")
    t = ds.dataset(written / "parquet" / "sweeps", partitioning="hive").to_table()
    assert t["status"].to_pylist() == ["done"] and t["sweep_id"].to_pylist() == ["s1"]


def test_begin_sweep_is_idempotent(written):
    """Beginning the same sweep again (resume) keeps its runs and adds no sweep row."""
    with ResultStore(written) as store:
        store.begin_sweep(sweep_info())
        assert len(store.completed("s1")) == 12
    db = _db(written)
    assert db.execute("SELECT count(*), max(status) FROM sweeps").fetchone() == (1, "running")


def test_same_sweep_id_with_another_scenario_is_refused(written):
    """A sweep id reused for a different scenario is a user error."""
    from dataclasses import replace

    with ResultStore(written) as store, pytest.raises(ScenarioError, match="another scenario"):
        store.begin_sweep(replace(sweep_info(), scenario_hash="other"))


def test_retry_replaces_a_failed_run_and_skips_an_ok_one(written):
    """Writing committed run ids again: failed is replaced, ok kept; never duplicated."""
    with ResultStore(written) as store:
        store.write_batch("s1", run_infos(6), make_result(6, seed=9))
        assert store.completed("s1")["r000004"] == "ok"
    db = _db(written)
    assert db.execute("SELECT count(*), count(DISTINCT run_id) FROM runs").fetchone() == (12, 12)
    assert db.execute("SELECT count(*) FROM sweep_1").fetchone()[0] == 12
    old = make_result(6, fail=(4,), series=True).metrics["l2_time_ns"]
    new = make_result(6, seed=9).metrics["l2_time_ns"]
    got = dict(db.execute("SELECT run_id, l2_time_ns FROM sweep_1"))
    assert got["r000000"] == old[0] and got["r000004"] == new[4]
    t = _dataset(written)
    assert sorted(t["run_id"].to_pylist()) == [f"r{i:06d}" for i in range(12)]
    assert db.execute("SELECT count(*) FROM series WHERE run_id = 'r000004'").fetchone()[0] == 0


def test_lane_index_maps_runs_to_lanes(tmp_path):
    """runs[i] is stored with lane lane_index[i] of the result."""
    res = make_result(4)
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(2), res, lane_index=[3, 1])
    got = dict(_db(tmp_path).execute("SELECT run_id, l1_time_ns FROM sweep_1"))
    assert got == {"r000000": res.metrics["l1_time_ns"][3], "r000001": res.metrics["l1_time_ns"][1]}


def test_new_metric_columns_are_added_later(tmp_path):
    """A batch with a device the earlier ones lacked adds its columns to the table and view."""
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(2), make_result(2))
        store.write_batch("s1", run_infos(2, start=2), make_result(2, devices=("uhci", "nic")))
    rows = _db(tmp_path).execute("SELECT run_id, device_nic_raised FROM sweep_1 ORDER BY 1"
                                 ).fetchall()
    assert [r[1] is None for r in rows] == [True, True, False, False]


def test_array_metrics_go_to_metric_arrays(tmp_path):
    """A 2-D device metric (a latency histogram) is stored long, one row per bin."""
    res = make_result(2, histogram=True)
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(2), res)
    rows = _db(tmp_path).execute("SELECT idx, value FROM metric_arrays WHERE run_id = 'r000001' "
                                 "AND name = 'device.uhci.latency_hist' ORDER BY idx").fetchall()
    assert [r[1] for r in rows] == res.devices["uhci"]["latency_hist"][1].tolist()


def test_long_view_spans_sweeps(written):
    """results_long holds parameters and metrics of every sweep, one row per value."""
    with ResultStore(written) as store:
        store.begin_sweep(sweep_info("s2", "other"))
        store.write_batch("s2", run_infos(2, prefix="q"), make_result(2))
    db = _db(written)
    rows = db.execute("SELECT sweep_id, count(DISTINCT run_id) FROM results_long "
                      "WHERE name = 'mitigation.qemu_eoi_throttle.delay' GROUP BY 1 ORDER BY 1"
                      ).fetchall()
    assert rows == [("s1", 12), ("s2", 2)]
    v = db.execute("SELECT value FROM results_long WHERE run_id = 'q000001' AND "
                   "column_name = 'exits_VMRESUME'").fetchone()[0]
    assert v == float(db.execute("SELECT exits_VMRESUME FROM sweep_2 WHERE run_id = 'q000001'"
                                 ).fetchone()[0])


def test_alias_view_follows_the_latest_sweep_of_a_name(written):
    """sweep_<name> shows the most recent sweep with that name."""
    with ResultStore(written) as store:
        store.begin_sweep(sweep_info("s2", "storm"))
        store.write_batch("s2", run_infos(3, prefix="q"), make_result(3))
    assert _db(written).execute("SELECT count(*) FROM sweep_storm").fetchone()[0] == 3


def test_second_writer_is_refused(tmp_path):
    """Only one ResultStore may write a directory at a time."""
    with ResultStore(tmp_path):
        with pytest.raises(ScenarioError, match="another irqlab process"):
            ResultStore(tmp_path)


def test_unsafe_sweep_id_is_refused(tmp_path):
    """A sweep id that is not a safe directory name is refused."""
    from dataclasses import replace

    with ResultStore(tmp_path) as store, pytest.raises(ValueError):
        store.begin_sweep(replace(sweep_info(), sweep_id="../x"))


def test_params_keep_exact_values_for_reproduce(written):
    """runs.params keeps ints as ints and floats exactly."""
    import json

    p = json.loads(_db(written).execute("SELECT params FROM runs WHERE run_id = 'r000002'"
                                        ).fetchone()[0])
    assert p == {"mitigation.qemu_eoi_throttle.threshold": 100,
                 "mitigation.qemu_eoi_throttle.delay": 0.001}
    assert isinstance(p["mitigation.qemu_eoi_throttle.threshold"], int)


def test_int_metrics_are_exact(written):
    """A 64-bit count survives the round trip through SQL and Parquet unchanged."""
    res = make_result(6, fail=(4,), series=True)
    want = int(res.metrics["exits_total"][0])
    assert _db(written).execute("SELECT exits_total FROM sweep_1 WHERE run_id = 'r000000'"
                                ).fetchone()[0] == want
    t = _dataset(written)
    i = t["run_id"].to_pylist().index("r000000")
    assert t["exits_total"][i].as_py() == want and t.schema.field("exits_total").type == "int64"
    assert np.isnan(res.metrics["time_to_l2_progress_ns"][0])
    assert t["time_to_l2_progress_ns"][i].as_py() is None


def test_pandas_reads_the_parquet_without_irqlab(written):
    """pandas reads one sweep's partition and answers the grouped question."""
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(written / "parquet" / "runs" / "sweep_id=s1")
    means = df.groupby(["threshold", "delay"])["time_to_l2_progress_ns"].mean()
    assert len(df) == 12 and len(means) == 6


def test_polars_reads_the_parquet_without_irqlab(written):
    """polars scans the hive-partitioned dataset, sweep_id included."""
    pl = pytest.importorskip("polars")
    df = pl.scan_parquet(str(written / "parquet" / "runs" / "**" / "*.parquet"),
                         hive_partitioning=True).collect()
    assert df.height == 12 and df["sweep_id"].unique().to_list() == ["s1"]


def test_stated_param_units_win_over_inference(tmp_path):
    """A unit the driver states in SweepInfo.param_units is the one stored, across reopen."""
    from dataclasses import replace

    info = replace(sweep_info(), param_units={"mitigation.qemu_eoi_throttle.threshold": "1/s"})
    with ResultStore(tmp_path) as store:
        store.begin_sweep(info)
    with ResultStore(tmp_path) as store:
        store.write_batch("s1", run_infos(2), make_result(2))
    units = dict(_db(tmp_path).execute(
        "SELECT column_name, unit FROM sweep_columns WHERE role = 'param'"))
    assert units == {"threshold": "1/s", "delay": "s"}


def test_device_metrics_view_groups_by_device(tmp_path):
    """device_metrics gives one row per (run, device, metric): per-device questions are one query."""
    res = make_result(3, devices=("uhci", "nic"))
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(3), res)
    rows = _db(tmp_path).execute(
        "SELECT device, avg(value), count(*) FROM device_metrics WHERE metric = 'latency_p99_ns' "
        "GROUP BY device ORDER BY device").fetchall()
    assert [(d, n) for d, _, n in rows] == [("nic", 3), ("uhci", 3)]
    assert rows[1][1] == pytest.approx(res.devices["uhci"]["latency_p99_ns"].mean())
