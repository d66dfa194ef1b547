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

import pytest

from scn_texts import tiny
from test_ray_cluster import cluster  # noqa: F401 - the module-scoped Ray head fixture

IRQLAB = str(Path(sys.executable).with_name("irqlab"))


def _plan(long: bool) -> tuple[int, int, str]:
    """(kills, replications, thresholds) for the normal or the --long variant."""
    if long:
        return 100, 40, "10, 100, 1000, 10000"
    return 20, 10, "10, 100, 1000, 10000"


def _kill_and_resume(scn: Path, out: Path, extra: list[str], env: dict | None, kills: int,
                     window: tuple[float, float], seed: int) -> int:
    """Run the sweep ``kills`` times, each killed after a random delay in ``window`` (or
    ended on its own); return how many kills hit a running sweep."""
    rng = random.Random(seed)
    cmd = [IRQLAB, "sweep", str(scn), "--out", str(out), "--max-lanes", "2", "--no-progress",
           "--no-table", *extra]
    hits = 0
    for _ in range(kills):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                             start_new_session=True)
        try:
            p.wait(rng.uniform(*window))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            hits += 1
        else:
            assert p.returncode == 0, p.stderr.read().decode()
        p.stderr.close()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return hits


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


@pytest.mark.slow
def test_kills_at_random_moments_inline(tmp_path, request):
    """20 SIGKILLs of an inline sweep at random moments, each followed by a resume: exactly
    the planned runs, consistent and verified."""
    kills, reps, thresholds = _plan(request.config.getoption("--long"))
    scn = tmp_path / "storm.scn"
    scn.write_text(tiny(duration="2ms", thresholds=thresholds, replications=reps))
    points = len(thresholds.split(",")) * 2
    hits = _kill_and_resume(scn, tmp_path / "out", ["--launcher", "inline"], None, kills,
                            (0.3, 2.5), seed=1)
    assert hits >= kills // 2
    _check(tmp_path / "out", points * reps, points, reps)


@pytest.mark.slow
def test_kills_at_random_moments_on_ray(cluster, tmp_path, request):  # noqa: F811
    """20 SIGKILLs of a sweep running on a Ray cluster (--address) at random moments, each
    followed by a resume: exactly the planned runs, consistent and verified."""
    kills, reps, thresholds = _plan(request.config.getoption("--long"))
    scn = tmp_path / "storm.scn"
    scn.write_text(tiny(duration="2ms", thresholds=thresholds, replications=reps))
    points = len(thresholds.split(",")) * 2
    hits = _kill_and_resume(scn, tmp_path / "out", ["--address", cluster["address"]],
                            cluster["env"], kills, (1.0, 4.0), seed=2)
    assert hits >= kills // 2
    _check(tmp_path / "out", points * reps, points, reps)
