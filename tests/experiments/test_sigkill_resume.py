"""A sweep killed with SIGKILL mid-way and run again ends with exactly its planned runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from scn_texts import tiny

IRQLAB = [str(Path(sys.executable).with_name("irqlab"))]  # the installed console script
PLANNED = 60  # 20 points x 3 replications


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _parquet_runs(out: Path):
    import pyarrow.dataset as ds

    d = ds.dataset(out / "parquet" / "runs", format="parquet", partitioning="hive")
    return d.to_table(columns=["run_id", "point", "replication", "status"]).to_pylist()


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_gives_exactly_the_planned_runs(tmp_path):
    """kill -9 during a sweep leaves only whole batches; the rerun completes it, no run twice."""
    scn = tmp_path / "storm.scn"
    scn.write_text(tiny(duration="2ms", thresholds="10, 100, 1000, 10000",
                        rates="10kHz, 20kHz, 50kHz, 100kHz, 200kHz", replications=3))
    out = tmp_path / "out"
    db = out / "results.db"
    cmd = [*IRQLAB, "sweep", str(scn), "--out", str(out), "--launcher", "inline",
           "--max-lanes", "2", "--no-progress", "--no-table"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(db) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    killed_at = _count(db)
    assert 10 <= killed_at < PLANNED
    # what a reader sees after the crash: whole batches; Parquet never ahead of SQL (a kill
    # between the SQL commit and the rename leaves the last batch for the rerun to publish)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        sql_ids = {r[0] for r in con.execute("SELECT run_id FROM runs")}
    pq_ids = [r["run_id"] for r in _parquet_runs(out)]
    assert len(pq_ids) == len(set(pq_ids)) and set(pq_ids) <= sql_ids

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{killed_at} already done, {PLANNED - killed_at} run now" in done.stdout

    con = sqlite3.connect(db)
    n, distinct, pairs = con.execute(
        "SELECT count(*), count(DISTINCT run_id), count(DISTINCT point || '/' || replication) "
        "FROM runs").fetchone()
    statuses = con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    sweep = con.execute("SELECT status, planned_runs FROM sweeps").fetchall()
    con.close()
    assert (n, distinct, pairs) == (PLANNED, PLANNED, PLANNED)
    assert statuses == [("ok", PLANNED)] and sweep == [("done", PLANNED)]

    rows = _parquet_runs(out)
    assert len(rows) == PLANNED
    assert len({r["run_id"] for r in rows}) == PLANNED
    assert sorted((r["point"], r["replication"]) for r in rows) == \
        [(p, r) for p in range(20) for r in range(3)]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["inline", "ray"])
def test_ctrl_c_stops_cleanly_and_keeps_what_finished(tmp_path, launcher):
    """SIGINT to the sweep's process group (a terminal's Ctrl-C): exit 130, the sweep marked
    interrupted with only whole runs stored, and the rerun completes it."""
    scn = tmp_path / "storm.scn"
    scn.write_text(tiny(duration="2ms", thresholds="10, 100, 1000, 10000",
                        rates="10kHz, 20kHz, 50kHz, 100kHz, 200kHz", replications=3))
    out = tmp_path / "out"
    db = out / "results.db"
    cmd = [*IRQLAB, "sweep", str(scn), "--out", str(out), "--launcher", launcher,
           "--max-lanes", "2", "--no-progress", "--no-table"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while _count(db) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err

    con = sqlite3.connect(db)
    stopped = con.execute("SELECT count(*), count(DISTINCT run_id) FROM runs").fetchone()
    status = con.execute("SELECT status FROM sweeps").fetchall()
    con.close()
    assert status == [("interrupted",)] and stopped[0] == stopped[1] and 6 <= stopped[0] < PLANNED
    assert len(_parquet_runs(out)) == stopped[0]

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _count(db) == PLANNED
