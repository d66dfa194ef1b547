"""The same store and queries on PostgreSQL (set IRQLAB_TEST_PG_URL to run, e.g.
postgresql+psycopg://user:pw@localhost/db; the database's public schema is wiped)."""

from __future__ import annotations

import os

import pytest

from irqlab.errors import ScenarioError
from irqlab.results.query import run_query
from irqlab.results.store import ResultStore
from tests.results.results_helpers import fake_rerun, write_two_sweeps

URL = os.environ.get("IRQLAB_TEST_PG_URL")
pytestmark = pytest.mark.skipif(not URL, reason="IRQLAB_TEST_PG_URL not set")


@pytest.fixture
def pg(tmp_path):
    """A PostgreSQL results database holding the same sweep as the ``written`` fixture."""
    from sqlalchemy import create_engine

    eng = create_engine(URL)
    with eng.begin() as c:
        c.exec_driver_sql("DROP SCHEMA public CASCADE")
        c.exec_driver_sql("CREATE SCHEMA public")
    eng.dispose()
    with ResultStore(tmp_path, db_url=URL) as store:
        write_two_sweeps(store)
    return tmp_path


def test_grouped_query_on_postgres(pg):
    """The wide view answers the grouped question on PostgreSQL."""
    res = run_query(URL, "SELECT threshold, delay, avg(time_to_l2_progress_ns), count(*) "
                         "FROM sweep_1 GROUP BY 1, 2 ORDER BY 1, 2")
    assert [r[3] for r in res.rows] == [4, 2, 2, 2, 2, 2]
    assert run_query(URL, "SELECT count(*), count(DISTINCT run_id) FROM runs").rows == [(16, 16)]
    assert run_query(URL, "SELECT count(device_nic_raised) FROM sweep_1").rows == [(2,)]


def test_long_and_alias_views_on_postgres(pg):
    """results_long covers both sweeps; sweep_storm is the latest 'storm' sweep."""
    res = run_query(URL, "SELECT sweep_id, count(DISTINCT run_id) FROM results_long "
                         "WHERE role = 'param' GROUP BY 1 ORDER BY 1")
    assert res.rows == [("s1", 14), ("s2", 2)]
    assert run_query(URL, "SELECT count(*) FROM sweep_storm").rows == [(2,)]
    v = run_query(URL, "SELECT value FROM results_long WHERE column_name = 'livelock' "
                       "AND run_id = 'q000000'").rows[0][0]
    assert v in (0.0, 1.0)
    res = run_query(URL, "SELECT device, count(*) FROM device_metrics WHERE sweep_id = 's2' "
                         "AND metric = 'raised' GROUP BY 1 ORDER BY 1")
    assert res.rows == [("a", 2), ("b", 2)]


def test_postgres_session_is_read_only(pg):
    """A write that bypasses the statement check fails in PostgreSQL's read-only session."""
    from sqlalchemy import text

    from irqlab.results.db import reader_engine

    eng = reader_engine(URL)
    with eng.connect() as conn, pytest.raises(Exception, match="read-only"):
        conn.execute(text("DELETE FROM runs"))
    with pytest.raises(ScenarioError, match="read-only"):
        run_query(URL, "DELETE FROM runs")
    assert run_query(URL, "SELECT count(*) FROM runs").rows == [(16,)]


def test_show_plot_reproduce_on_postgres(pg, tmp_path, monkeypatch):
    """show, plot and reproduce work against a PostgreSQL URL."""
    import irqlab.results.reproduce as rp
    from irqlab.results.catalog import run_record
    from irqlab.results.plot import plot

    rec = run_record(URL, "r000007")
    assert rec.params["mitigation.qemu_eoi_throttle.threshold"] == 10
    plot(URL, "l2_time_ns", "threshold", hue="delay", sweep="s1", out=str(tmp_path / "p.svg"))
    monkeypatch.setattr(rp, "load_rerun", lambda: fake_rerun())
    _, diffs = rp.reproduce(URL, "r000007")
    assert diffs == []


def test_report_and_python_api_on_postgres(pg, tmp_path):
    """irqlab report and irqlab.open read a PostgreSQL database."""
    import irqlab
    from irqlab.results.report import write_report

    page = write_report(URL, tmp_path / "r.html", "s1").read_text(encoding="utf-8")
    assert "irqlab reproduce" in page and "<svg" in page
    res = irqlab.open(URL)
    assert res.runs("s1").num_rows == 14
    assert res.query("SELECT count(*) AS n FROM sweep_1").column("n").to_pylist() == [14]


@pytest.mark.parametrize("sql", [
    "COMMIT; BEGIN READ WRITE; DELETE FROM runs; COMMIT; SELECT 1",
    "COMMIT; SET default_transaction_read_only = off; DELETE FROM runs",
    "DELETE FROM runs", "CREATE TABLE t(a int)",
])
def test_a_query_cannot_leave_the_read_only_transaction(pg, sql):
    """Neither a write nor a second statement that would leave the READ ONLY transaction
    runs; the rows are all still there."""
    n = run_query(URL, "SELECT count(*) FROM runs").rows
    with pytest.raises(ScenarioError):
        run_query(URL, sql)
    assert run_query(URL, "SELECT count(*) FROM runs").rows == n


def test_timeout_bounds_a_query(pg):
    """timeout= stops a long query on the server (statement_timeout): a user error."""
    with pytest.raises(ScenarioError, match="statement timeout"):
        run_query(URL, "SELECT pg_sleep(10)", timeout=0.5)
