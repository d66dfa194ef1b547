"""``irqlab query --engine duckdb``: the same views and answers as SQLite, just as read-only."""

from __future__ import annotations

import hashlib

import pytest

from irqlab.errors import ScenarioError
from irqlab.results import duckdb_engine
from irqlab.results.duckdb_engine import choose_engine, run_duckdb, run_query_with
from irqlab.results.query import run_query
from irqlab.results.store import ResultStore
from tests.results.results_helpers import write_two_sweeps

pytest.importorskip("duckdb")

QUERIES = [
    "SELECT * FROM sweep_1 ORDER BY run_id",
    "SELECT * FROM sweep_storm ORDER BY run_id",
    "SELECT * FROM sweep_2 ORDER BY run_id",
    "SELECT threshold, delay, avg(time_to_l2_progress_ns) AS t, count(*) AS n, "
    "sum(CASE WHEN livelock THEN 1 ELSE 0 END) AS livelocks, avg(livelock) AS p_livelock "
    "FROM sweep_1 WHERE status = 'ok' GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT * FROM results_long ORDER BY run_id, column_name",
    "SELECT * FROM device_metrics ORDER BY run_id, device, metric",
    "SELECT * FROM metric_arrays ORDER BY run_id, name, idx",
    "SELECT * FROM series ORDER BY run_id, field, sample",
    "SELECT * FROM runs ORDER BY run_id",
    "SELECT * FROM runs_ok ORDER BY run_id",
    "SELECT * FROM sweeps ORDER BY sweep_no",
    "SELECT * FROM sweep_columns ORDER BY sweep_id, ordinal",
    "SELECT * FROM latency_bins ORDER BY idx",
    "SELECT b.lower_ns, sum(a.value) AS services FROM metric_arrays a "
    "JOIN latency_bins b USING (idx) JOIN sweep_1 w USING (run_id) "
    "WHERE a.name = 'device.uhci.latency_hist' AND w.threshold = 10 GROUP BY b.idx, b.lower_ns "
    "ORDER BY b.idx",
]


@pytest.fixture
def two_sweeps(tmp_path):
    """Two sweeps: retried runs (a rewritten shard), a column added by a later batch,
    series and histograms."""
    with ResultStore(tmp_path) as store:
        write_two_sweeps(store)
    return tmp_path


def _norm(rows):
    return [tuple(int(v) if isinstance(v, bool) else v for v in r) for r in rows]


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "-wal" not in p.name
            and "-shm" not in p.name}


@pytest.mark.parametrize("sql", QUERIES)
def test_duckdb_answers_as_sqlite(two_sweeps, sql):
    """Every table and view has the same column names and rows under DuckDB as in SQLite."""
    lite = run_query(str(two_sweeps), sql)
    duck = run_duckdb(str(two_sweeps), sql)
    assert duck.columns == lite.columns
    assert _norm(duck.rows) == _norm(lite.rows)
    if sql.startswith("SELECT * FROM sweep_"):  # flags read as SQL stores them: 0/1
        assert duck.rows == lite.rows
    assert lite.rows


@pytest.mark.parametrize("sql", [
    "INSERT INTO sweeps (sweep_id) VALUES ('x')",
    "CREATE TABLE t AS SELECT * FROM sweep_1",
    "COPY (SELECT * FROM sweep_1) TO 'stolen.csv'",
    "ATTACH 'other.db'",
    "INSTALL sqlite",
    "LOAD sqlite",
    "PRAGMA database_list",
    "EXPORT DATABASE 'dump'",
    "SET enable_external_access = true",
    "SELECT 1; SELECT 2",
])
def test_duckdb_refuses_what_is_not_one_read(two_sweeps, sql):
    """Writes, ATTACH/COPY/INSTALL/LOAD, settings and several statements are refused,
    and the results' files stay as they were."""
    before = _digest(two_sweeps)
    with pytest.raises(ScenarioError):
        run_duckdb(str(two_sweeps), sql)
    assert _digest(two_sweeps) == before


def test_duckdb_reads_no_file_but_the_results_parquet(two_sweeps, tmp_path_factory):
    """A table function naming any file outside the results' Parquet directories, even one
    in the results directory, is refused."""
    other = tmp_path_factory.mktemp("other") / "x.csv"
    other.write_text("a\n1\n")
    stray = two_sweeps / "parquet" / "runs" / "stray.csv"
    stray.write_text("a\n1\n")
    for sql in (f"SELECT * FROM read_csv('{other}')", f"SELECT * FROM read_csv('{stray}')",
                "SELECT * FROM read_text('/etc/hostname')",
                f"SELECT * FROM read_parquet('{two_sweeps}/parquet/sweeps/*/*.parquet')"):
        with pytest.raises(ScenarioError, match="may read only the results' Parquet files"):
            run_duckdb(str(two_sweeps), sql)


def test_auto_uses_duckdb_for_reads_over_parquet(two_sweeps, monkeypatch):
    """auto: DuckDB for the Parquet-backed views, SQLite for runs/runs_ok or without duckdb."""
    t = str(two_sweeps)
    assert choose_engine(t, "SELECT * FROM sweep_1") == "duckdb"
    assert choose_engine(t, "SELECT count(*) FROM results_long") == "duckdb"
    assert choose_engine(t, "SELECT * FROM runs") == "sqlite"
    assert choose_engine(t, 'SELECT * FROM "runs_ok"') == "sqlite"
    assert choose_engine(t, "SELECT * FROM sweep_1", "sqlite") == "sqlite"
    monkeypatch.setattr(duckdb_engine, "duckdb_available", lambda: False)
    assert choose_engine(t, "SELECT * FROM sweep_1") == "sqlite"
    with pytest.raises(ScenarioError, match="needs the duckdb package"):
        choose_engine(t, "SELECT 1", "duckdb")


def test_auto_answers_what_sqlite_answers(two_sweeps):
    """Under auto, SQLite's dialect still works and errors are SQLite's; --engine duckdb
    gives DuckDB's own."""
    t = str(two_sweeps)
    assert run_query_with(t, "SELECT sqlite_version() AS v FROM sweep_1 LIMIT 1").rows
    with pytest.raises(ScenarioError, match="no such column: nope"):
        run_query_with(t, "SELECT nope FROM sweep_1")
    with pytest.raises(ScenarioError, match='"nope" not found'):
        run_query_with(t, "SELECT nope FROM sweep_1", "duckdb")


def test_a_lost_parquet_file_never_drops_rows(two_sweeps):
    """With a live Parquet file gone, auto answers from SQLite (every row) and --engine
    duckdb says which file is missing instead of answering without its rows."""
    sql = "SELECT count(*) AS n FROM sweep_1"
    want = run_query(str(two_sweeps), sql).rows
    first = sorted((two_sweeps / "parquet" / "runs").rglob("*.parquet"))[0]
    first.unlink()
    assert run_query_with(str(two_sweeps), sql).rows == want
    with pytest.raises(ScenarioError, match="live Parquet file.*missing"):
        run_query_with(str(two_sweeps), sql, "duckdb")
    assert run_duckdb(str(two_sweeps), "SELECT count(*) FROM latency_bins").rows == [(92,)]


def test_duckdb_needs_the_parquet_files(tmp_path):
    """--engine duckdb on a database with no Parquet beside it says so; auto falls back."""
    import shutil
    import sqlite3

    sqlite3.connect(tmp_path / "results.db").execute("CREATE TABLE sweeps (sweep_id TEXT)")
    assert run_query_with(str(tmp_path), "SELECT count(*) FROM sweeps").rows == [(0,)]
    with pytest.raises(ScenarioError, match="reads the Parquet files"):
        run_query_with(str(tmp_path), "SELECT 1", "duckdb")
    shutil.rmtree(tmp_path)


def test_query_command_engines_agree(two_sweeps, capsys):
    """`irqlab query --engine duckdb` prints what `--engine sqlite` prints."""
    from irqlab.cli.main import main

    sql = ("SELECT threshold, delay, avg(time_to_l2_progress_ns) AS t, count(*) AS n "
           "FROM sweep_1 GROUP BY 1, 2 ORDER BY 1, 2")
    out = {}
    for engine in ("sqlite", "duckdb"):
        assert main(["query", str(two_sweeps), sql, "-f", "csv", "--engine", engine]) == 0
        out[engine] = capsys.readouterr().out
    assert out["duckdb"] == out["sqlite"]
    assert out["sqlite"].count("\n") == 7
