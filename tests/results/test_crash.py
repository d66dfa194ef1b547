"""Crash atomicity: a writer killed with SIGKILL never leaves a half-written run visible."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from irqlab.results import shards
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info

BATCH = 400
WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from irqlab.results.store import ResultStore
    from tests.results.results_helpers import make_result, run_infos, sweep_info
    store = ResultStore(sys.argv[1])
    store.begin_sweep(sweep_info())
    done = len(store.completed("s1"))
    res = make_result({batch}, series=True, fail=(3,))
    k = done
    while True:
        store.write_batch("s1", run_infos({batch}, start=k), res)
        k += {batch}
        # retry the failed runs of an earlier batch now and then: shards get rewritten
        if k % ({batch} * 3) == 0:
            store.write_batch("s1", run_infos({batch}, start=k - 2 * {batch}), res)
""")


def _sql_view(out: Path) -> tuple[list[str], int, int]:
    # Closed even when a query fails: Python's sqlite3 connections sit in a reference cycle,
    # so one left open lives until the garbage collector runs. While it lives this process
    # keeps the WAL index mapped, and a reader then misses a commit whose WAL frames a killed
    # writer wrote but whose index update it never made; the next first opener recovers it.
    with closing(sqlite3.connect(f"file:{out / 'results.db'}?mode=ro", uri=True)) as db:
        ids = [r[0] for r in db.execute("SELECT run_id FROM runs")]
        wide = db.execute("SELECT count(*) FROM sweep_1").fetchone()[0]
        series = db.execute("SELECT count(DISTINCT run_id) FROM series").fetchone()[0]
    return ids, wide, series


def _parquet_ids(out: Path) -> list[str]:
    import pyarrow.dataset as ds

    d = ds.dataset(out / "parquet" / "runs", partitioning="hive")
    if not d.files:
        return []
    return d.to_table(
        columns=["run_id"])["run_id"].to_pylist()


def _check_consistent(out: Path, recovered: bool) -> int:
    ids, wide, series = _sql_view(out)
    assert len(ids) == len(set(ids)), "a run is duplicated in SQL"
    assert len(ids) % BATCH == 0, "a batch is visible in part"
    assert wide == len(ids) and series == len(ids), "a run is missing its metrics or series"
    pq_ids = _parquet_ids(out)
    assert len(pq_ids) == len(set(pq_ids)), "a run is duplicated in Parquet"
    if recovered:
        assert set(pq_ids) == set(ids)
    else:
        assert set(pq_ids) <= set(ids), "Parquet shows a run that SQL never committed"
    return len(ids)


@pytest.mark.slow  # ~3 s alone, more on a loaded machine
def test_sigkill_during_writes_leaves_readers_consistent(tmp_path):
    """Kill a writing process at random moments; sqlite3 and pyarrow see whole batches only,
    and reopening the store publishes every committed shard and removes the temp files."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(Path(__file__).parents[2]), batch=BATCH))
    out = tmp_path / "out"
    rng = random.Random(7)
    seen = 0
    for _ in range(4):
        p = subprocess.Popen([sys.executable, str(script), str(out)])
        deadline = time.time() + 60
        while time.time() < deadline:  # wait for the writer to commit something new
            time.sleep(0.05)
            if (out / "results.db").exists():
                try:
                    if len(_sql_view(out)[0]) > seen:
                        break
                except sqlite3.OperationalError:
                    pass
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        n = _check_consistent(out, recovered=False)
        assert n > seen
        seen = n
    with ResultStore(out) as store:
        assert store.recovered["missing"] == []
    n = _check_consistent(out, recovered=True)
    assert n == seen
    assert not [p for p in (out / "parquet").rglob(".*") if p.is_file()]


def test_uncommitted_temp_shard_is_deleted_on_open(tmp_path):
    """A temp file of a group the writer announced but never committed (a crash before the
    commit) is removed at open."""
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(2), make_result(2))
        with store.engine.begin() as conn:  # what write_batch commits before its temps
            conn.execute(store.t["shard_intents"].insert().values(
                name="part-99999999-abcdef", kind="grp"))
    import pyarrow as pa

    rel = shards.final_rel("runs", "s1", "part-99999999-abcdef")
    shards.write_temp(tmp_path / "parquet", rel, pa.table({"run_id": ["zz"]}))
    tmp = shards.temp_path(tmp_path / "parquet", rel)
    with ResultStore(tmp_path) as store:
        assert store.recovered["deleted_temp"] == [rel]
    assert not tmp.exists() and _parquet_ids(tmp_path) == ["r000000", "r000001"]


def test_committed_temp_shard_is_published_on_open(tmp_path):
    """A committed shard still under its temp name (a crash before the rename) is renamed."""
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(2), make_result(2))
    live = next((tmp_path / "parquet" / "runs" / "sweep_id=s1").glob("part-*.parquet"))
    tmp = shards.temp_path(tmp_path / "parquet", str(live.relative_to(tmp_path / "parquet")))
    os.replace(live, tmp)
    assert _parquet_ids(tmp_path) == []
    with ResultStore(tmp_path) as store:
        assert len(store.recovered["published"]) == 1
    assert sorted(_parquet_ids(tmp_path)) == ["r000000", "r000001"]


def test_failed_transaction_leaves_nothing(tmp_path, monkeypatch):
    """An error inside the SQL transaction rolls back every row and deletes the temp files."""
    import irqlab.results.store as store_mod

    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(2), make_result(2))

        def boom(*a, **k):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(store_mod, "bulk_insert", boom)
        with pytest.raises(RuntimeError):
            store.write_batch("s1", run_infos(2, start=2), make_result(2, devices=("uhci", "x")))
        monkeypatch.undo()
        store.write_batch("s1", run_infos(2, start=2), make_result(2))
    db = sqlite3.connect(tmp_path / "results.db")
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
    assert db.execute("SELECT count(*) FROM sweep_1").fetchone()[0] == 4
    assert sorted(_parquet_ids(tmp_path)) == [f"r{i:06d}" for i in range(4)]
    assert not [p for p in (tmp_path / "parquet").rglob(".*") if p.is_file()]


def test_readers_query_while_a_batch_is_being_written(written):
    """A reader sees the last committed state while the writer holds an open transaction."""
    from irqlab.results.query import run_query

    writer = sqlite3.connect(written / "results.db", isolation_level=None, timeout=5)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM runs")
    try:
        t0 = time.time()
        res = run_query(str(written), "SELECT count(*) FROM runs")
        assert res.rows == [(12,)] and time.time() - t0 < 5
    finally:
        writer.execute("ROLLBACK")
