"""Fault injection: a sweep killed with SIGKILL at random moments, under the inline and the
Ray launcher, and resumed after each kill, ends with exactly its planned runs.

After the kills, the last resume runs to the end; then the checks: every planned run once
(SQL and Parquet), ``PRAGMA integrity_check`` ok, Parquet rows == SQL rows, ``irqlab
verify`` clean, the sweep ``done``. ``pytest --long`` kills 100 times instead of 20, on a
bigger sweep (see docs/results.md).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from scn_texts import tiny
from test_ray_cluster import cluster  # noqa: F401 - the module-scoped Ray head fixture

IRQLAB = str(Path(sys.executable).with_name("irqlab"))


def _plan(long: bool) -> tuple[int, int]:
    """(kills, replications at each of the 2 points) for the normal or the --long variant."""
    return (100, 500) if long else (20, 100)


def _stored(db: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def _kill_and_resume(scn: Path, out: Path, extra: list[str], env: dict | None, kills: int,
                     seed: int) -> tuple[int, int]:
    """Run the sweep ``kills`` times and SIGKILL it at a random moment: one time in four at
    any moment of its first 3 s (start-up, recovery, planning), otherwise a random 0-0.8 s
    after it stored its first batch. Then run it to the end. Returns (kills that hit a
    running sweep, kills while it was storing)."""
    rng = random.Random(seed)
    db = out / "results.db"
    cmd = [IRQLAB, "sweep", str(scn), "--out", str(out), "--max-lanes", "2", "--no-progress",
           "--no-table", *extra]
    hits = storing = 0
    for _ in range(kills):
        before = _stored(db)
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                             start_new_session=True)
        early = rng.random() < 0.25
        delay = rng.uniform(0.0, 3.0) if early else rng.uniform(0.0, 0.8)
        if not early:
            deadline = time.monotonic() + 120
            while p.poll() is None and _stored(db) == before and time.monotonic() < deadline:
                time.sleep(0.05)
        try:
            p.wait(delay)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            hits += 1
            storing += not early
        else:
            assert p.returncode == 0, p.stderr.read().decode()
        p.stderr.close()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return hits, storing


def _check(out: Path, planned: int, points: int, reps: int) -> None:
    import pyarrow.dataset as ds

    db = out / "results.db"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        n, distinct, pairs = con.execute(
            "SELECT count(*), count(DISTINCT run_id), count(DISTINCT point || '/' || replication) "
            "FROM runs").fetchone()
        assert (n, distinct, pairs) == (planned, planned, planned)
        assert con.execute("SELECT status FROM sweeps").fetchall() == [("done",)]
        sql_ids = sorted(r for (r,) in con.execute("SELECT run_id FROM runs"))
    rows = ds.dataset(out / "parquet" / "runs", partitioning="hive").to_table(
        columns=["run_id", "point", "replication"]).to_pylist()
    assert sorted(r["run_id"] for r in rows) == sql_ids  # Parquet rows == SQL rows, none twice
    assert sorted((r["point"], r["replication"]) for r in rows) == \
        [(p, r) for p in range(points) for r in range(reps)]
    v = subprocess.run([IRQLAB, "verify", str(out)], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def _run(tmp_path: Path, request: Any, extra: list[str], env: dict | None, seed: int) -> None:
    kills, reps = _plan(request.config.getoption("--long"))
    scn = tmp_path / "storm.scn"
    scn.write_text(tiny(duration="6ms", thresholds="10", replications=reps,  # 2 points; a batch
                        backend="numpy"))  # of 2 lanes takes ~0.3 s, so 20 kills cannot finish it
    hits, storing = _kill_and_resume(scn, tmp_path / "out", extra, env, kills, seed)
    assert storing >= kills // 2, f"only {storing} of {kills} kills hit a storing sweep"
    _check(tmp_path / "out", 2 * reps, 2, reps)


@pytest.mark.slow
def test_kills_at_random_moments_inline(tmp_path, request):
    """20 SIGKILLs of an inline sweep at random moments, each followed by a resume: exactly
    the planned runs, consistent and verified."""
    _run(tmp_path, request, ["--launcher", "inline"], None, seed=1)


@pytest.mark.slow
def test_kills_at_random_moments_on_ray(cluster, tmp_path, request):  # noqa: F811
    """20 SIGKILLs of a sweep running on a Ray cluster (--address) at random moments, each
    followed by a resume: exactly the planned runs, consistent and verified."""
    _run(tmp_path, request, ["--address", cluster["address"]], cluster["env"], seed=2)
