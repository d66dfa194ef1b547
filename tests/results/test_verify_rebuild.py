"""irqlab verify names missing and corrupt shards with their runs; irqlab rebuild recreates a
lost database from the Parquet files."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from irqlab.cli.main import main
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info


@pytest.fixture
def two_sweeps(tmp_path):
    """Two sweeps of the same name, series and arrays, a retried failed run, integer params."""
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info("s1"))
        store.write_batch("s1", run_infos(6), make_result(6, fail=(4,), series=True))
        store.write_batch("s1", run_infos(6, start=6), make_result(6, seed=1, series=True))
        store.write_batch("s1", run_infos(6)[4:5], make_result(1, seed=2, series=True))  # retry
        store.finish_sweep("s1", "2024-01-01T01:00:00+00:00", "done")
        store.begin_sweep(sweep_info("s2"))
        store.write_batch("s2", run_infos(4, prefix="q"), make_result(4, histogram=True))
        store.finish_sweep("s2", "2024-01-01T02:00:00+00:00", "interrupted")
    return tmp_path


def _runs_file(out: Path, sid: str = "s1") -> Path:
    return sorted((out / "parquet" / "runs" / f"sweep_id={sid}").glob("part-*.parquet"))[0]


def test_verify_is_clean_on_a_healthy_directory(two_sweeps, capsys):
    """A directory written by the store verifies clean (exit 0)."""
    assert main(["verify", str(two_sweeps)]) == 0
    assert ": ok" in capsys.readouterr().out


def test_verify_names_missing_and_corrupt_shards_and_their_runs(two_sweeps, capsys):
    """A deleted shard and one with a flipped byte (same size) are named with their runs;
    exit 1."""
    with closing(sqlite3.connect(two_sweeps / "results.db")) as db:
        groups = dict(db.execute("SELECT shard, group_concat(run_id) FROM runs GROUP BY shard"))
    missing = _runs_file(two_sweeps, "s2")
    missing.unlink()
    flipped = _runs_file(two_sweeps, "s1")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    assert main(["verify", str(two_sweeps)]) == 1
    out = capsys.readouterr().out
    assert f"missing {missing.relative_to(two_sweeps / 'parquet')}" in out
    assert f"corrupt {flipped.relative_to(two_sweeps / 'parquet')}: SHA-256 differs" in out
    for rid in groups[missing.stem].split(",") + groups[flipped.stem].split(",")[:5]:
        assert rid in out


def test_verify_repair_takes_the_lost_runs_out(two_sweeps, capsys):
    """--repair quarantines a corrupt shard's group and deletes its runs' rows; then verify is
    clean and the runs are missing from SQL, ready to be run again."""
    flipped = _runs_file(two_sweeps, "s1")
    with closing(sqlite3.connect(two_sweeps / "results.db")) as db:
        lost = {r for (r,) in db.execute("SELECT run_id FROM runs WHERE shard = ?",
                                         (flipped.stem,))}
    flipped.write_bytes(flipped.read_bytes()[:-10] + b"0123456789")
    assert main(["verify", str(two_sweeps), "--repair"]) == 0
    assert main(["verify", str(two_sweeps)]) == 0
    with ResultStore(two_sweeps) as store:
        assert not lost & set(store.completed("s1"))
    assert list((two_sweeps / "quarantine").rglob(flipped.name))


def test_verify_reports_a_file_the_database_does_not_list(two_sweeps, capsys):
    """A part file no shards row names is a problem (readers of the dataset see its rows)."""
    f = _runs_file(two_sweeps)
    os.link(f, f.with_name("part-99999999-zzzzzz.parquet"))
    assert main(["verify", str(two_sweeps)]) == 1
    assert "unknown runs/sweep_id=s1/part-99999999-zzzzzz.parquet" in capsys.readouterr().out


QUERIES = [
    "SELECT * FROM sweeps ORDER BY sweep_no",
    "SELECT * FROM runs ORDER BY run_id",
    "SELECT * FROM sweep_1 ORDER BY run_id",
    "SELECT * FROM sweep_2 ORDER BY run_id",
    "SELECT * FROM sweep_storm ORDER BY run_id",
    "SELECT * FROM sweep_columns ORDER BY sweep_id, ordinal",
    "SELECT * FROM series ORDER BY run_id, field, sample",
    "SELECT * FROM metric_arrays ORDER BY run_id, name, idx",
    "SELECT * FROM results_long ORDER BY sweep_id, run_id, column_name",
    "SELECT * FROM device_metrics ORDER BY sweep_id, run_id, metric",
    "SELECT * FROM runs_ok ORDER BY run_id",
    "SELECT * FROM latency_bins ORDER BY idx",
    "SELECT file, grp, sweep_id, dataset, rows, bytes, sha256 FROM shards ORDER BY file",
]


def _answers(out: Path, capsys) -> list[str]:
    found = []
    for sql in QUERIES:
        assert main(["query", str(out), sql, "-f", "json"]) == 0, sql
        found.append(capsys.readouterr().out)
    return found


def test_rebuild_recreates_the_database_from_parquet(two_sweeps, capsys):
    """After results.db is lost, irqlab rebuild makes one on which every query answers the
    same as before (tables, catalog, views, exact params, shards)."""
    before = _answers(two_sweeps, capsys)
    os.replace(two_sweeps / "results.db", two_sweeps / "lost.db")
    assert main(["rebuild", str(two_sweeps)]) == 0
    assert "2 sweeps, 16 runs" in capsys.readouterr().out
    after = _answers(two_sweeps, capsys)
    for sql, a, b in zip(QUERIES, before, after):
        assert a == b, sql
    assert main(["verify", str(two_sweeps)]) == 0


def test_rebuild_refuses_to_overwrite_a_database(two_sweeps, capsys):
    """rebuild with results.db present is a user error; the database is untouched."""
    data = (two_sweeps / "results.db").read_bytes()
    assert main(["rebuild", str(two_sweeps)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (two_sweeps / "results.db").read_bytes() == data


STORED_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_shard_times_have_the_form_of_sweep_times_before_and_after_rebuild(two_sweeps, capsys):
    """A shard's created_at is written as the driver writes sweep times (ms, Z), by the writer
    and by rebuild alike, so that times in one database compare as text."""
    import re
    import sqlite3

    def created(out: Path) -> list[str]:
        with sqlite3.connect(out / "results.db") as con:
            return [r[0] for r in con.execute("SELECT created_at FROM shards")]

    written = created(two_sweeps)
    os.replace(two_sweeps / "results.db", two_sweeps / "lost.db")
    assert main(["rebuild", str(two_sweeps)]) == 0
    rebuilt = created(two_sweeps)
    assert written and rebuilt
    assert all(re.fullmatch(STORED_TIME, t) for t in written + rebuilt), written + rebuilt
