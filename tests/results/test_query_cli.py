"""irqlab query / runs / show / plot: read-only, formats, clear errors."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from irqlab.cli.main import main
from irqlab.errors import ScenarioError
from irqlab.results.query import run_query

GROUPED = ("SELECT threshold, delay, avg(time_to_l2_progress_ns) AS t, count(*) AS n "
           "FROM sweep_1 GROUP BY 1, 2 ORDER BY 1, 2")


def _count(path) -> int:
    return sqlite3.connect(path / "results.db").execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.parametrize("sql", [
    "DELETE FROM runs", "  update runs set status = 'ok'", "DROP VIEW sweep_1",
    "insert into runs(run_id) values ('x')", "PRAGMA journal_mode = DELETE",
    "WITH x AS (SELECT 1) INSERT INTO runs(run_id) SELECT 'y' FROM x",
    "/* sneaky */ CREATE TABLE t(a)", "ATTACH DATABASE 'x.db' AS x",
])
def test_write_statements_are_refused(written, sql, capsys):
    """A write statement is refused with a clear error (status 2) and changes nothing."""
    assert main(["query", str(written), sql]) == 2
    err = capsys.readouterr().err
    assert "read-only" in err and "Traceback" not in err
    assert _count(written) == 12


def test_database_itself_is_opened_read_only(written):
    """The connection itself refuses a write (no statement check before it)."""
    from sqlalchemy import text

    from irqlab.results.db import reader_engine

    engine = reader_engine(str(written))
    with engine.connect() as conn, pytest.raises(Exception, match="not authorized|readonly|read-only"):
        conn.execute(text("DELETE FROM runs"))
    assert _count(written) == 12


@pytest.mark.parametrize("sql", [
    "SELECT 1", "with a as (select 1) select * from a", "EXPLAIN SELECT 1",
    "-- comment\nSELECT 'delete from runs'",
    "WITH a AS (SELECT 'insert into x' AS s) SELECT * FROM a",
    "SELECT * FROM pragma_table_info('runs')", "PRAGMA table_info(runs)",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT * FROM c",
])
def test_reads_are_allowed(written, sql):
    """SELECT, WITH ... SELECT (whatever its strings say), EXPLAIN and table introspection run."""
    assert run_query(str(written), sql).rows


def test_empty_statement_is_refused(written):
    """A blank statement is a user error."""
    with pytest.raises(ScenarioError, match="empty"):
        run_query(str(written), "   ")


def test_more_than_one_statement_is_refused(written):
    """A second statement after a semicolon is refused; a semicolon in a string is not one."""
    with pytest.raises(ScenarioError, match="one statement"):
        run_query(str(written), "SELECT 1; DELETE FROM runs")
    assert _count(written) == 12
    assert run_query(str(written), "SELECT 'a;b' FROM runs;").rows[0] == ("a;b",)


def test_sql_error_is_shown_without_traceback(written, capsys):
    """A bad query prints the database's message, status 2, no traceback."""
    assert main(["query", str(written), "SELECT nope FROM sweep_1"]) == 2
    err = capsys.readouterr().err
    assert "no such column: nope" in err and "Traceback" not in err


def test_missing_database_is_a_user_error(tmp_path, capsys):
    """A path with no results.db is reported, not a traceback."""
    assert main(["query", str(tmp_path), "SELECT 1"]) == 2
    assert "no results database" in capsys.readouterr().err


def test_table_output(written, capsys):
    """The default output is a table with the column names."""
    assert main(["query", str(written), GROUPED]) == 0
    out = capsys.readouterr().out
    assert "threshold" in out and "1000" in out and "1000.0" not in out  # an integer parameter


def test_csv_output(written, capsys):
    """--format csv prints a header and one line per row."""
    assert main(["query", str(written), GROUPED, "-f", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["threshold", "delay", "t", "n"] and len(rows) == 7


def test_json_output_to_file(written, tmp_path):
    """--format json -o FILE writes a list of objects."""
    out = tmp_path / "q.json"
    assert main(["query", str(written), GROUPED, "-f", "json", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data[0]["threshold"] == 10.0 and data[0]["n"] == 2


def test_parquet_output(written, tmp_path):
    """--format parquet -o FILE writes a table pyarrow reads back."""
    import pyarrow.parquet as pq

    out = tmp_path / "q.parquet"
    assert main(["query", str(written), GROUPED, "-f", "parquet", "-o", str(out)]) == 0
    t = pq.read_table(out)
    assert t.column_names == ["threshold", "delay", "t", "n"] and t.num_rows == 6


def test_parquet_output_needs_a_file(written, capsys):
    """--format parquet without -o is a user error."""
    assert main(["query", str(written), "SELECT 1", "-f", "parquet"]) == 2
    assert "-o FILE" in capsys.readouterr().err


def test_query_accepts_a_url(written):
    """DB may be an SQLAlchemy URL."""
    res = run_query(f"sqlite:///{written / 'results.db'}", "SELECT count(*) FROM runs")
    assert res.rows == [(12,)]


def test_runs_lists_sweeps_and_runs(written, capsys):
    """irqlab runs shows the sweep and its runs, and filters by status."""
    assert main(["runs", str(written), "--status", "failed"]) == 0
    out = capsys.readouterr().out
    assert "storm" in out and "r000004" in out and "r000003" not in out


def test_show_prints_params_metrics_and_provenance(written, capsys):
    """irqlab show gives a run's parameters with units, metrics and provenance."""
    assert main(["show", str(written), "r000002", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"]["mitigation.qemu_eoi_throttle.threshold"] == 100
    assert data["units"]["time_to_l2_progress_ns"] == "ns"
    assert data["sweep"]["git_commit"] == "deadbeef"
    assert main(["show", str(written), "r000002"]) == 0
    assert "Provenance" in capsys.readouterr().out


def test_show_unknown_run_is_a_user_error(written, capsys):
    """An unknown run id is reported with a hint."""
    assert main(["show", str(written), "zzz"]) == 2
    assert "no run 'zzz'" in capsys.readouterr().err


def test_show_prefix_must_be_unique(written, capsys):
    """A run id prefix names a run only if it is unique; otherwise the matches are listed."""
    from irqlab.results.catalog import find_run_id

    assert find_run_id(str(written), "r000011") == "r000011"
    assert main(["show", str(written), "r00001"]) == 2
    assert "ambiguous" in capsys.readouterr().err
