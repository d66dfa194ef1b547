"""Read-only commands cannot write: the database refuses anything but reading, output files
stay out of results directories, reads leave no -wal/-shm, long queries can be stopped, and
results on read-only media can be read."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irqlab.cli.main import main
from irqlab.errors import ScenarioError
from irqlab.results.query import run_query

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---------------------------------------------------------------------- -o


def test_output_cannot_be_the_database(written, capsys):
    """query -o D/results.db is refused (exit 2) and the database is unchanged."""
    db = written / "results.db"
    before = _digest(db)
    assert main(["query", str(written), "select 1", "-f", "csv", "-o", str(db)]) == 2
    assert "results directory" in capsys.readouterr().err
    assert _digest(db) == before


@pytest.mark.parametrize("rel", ["new.csv", "parquet/x.csv", "parquet/runs/x.parquet"])
def test_output_cannot_go_into_a_results_directory(written, rel, capsys):
    """-o anywhere inside a results directory is refused, even with --force; nothing is made."""
    before = _tree(written)
    assert main(["query", str(written), "select 1", "-f", "csv", "-o", str(written / rel),
                 "--force"]) == 2
    assert _tree(written) == before


def test_output_does_not_overwrite_a_file_without_force(written, tmp_path, capsys):
    """An existing -o file is kept unless --force is given."""
    out = tmp_path / "kept.csv"
    out.write_text("precious")
    assert main(["query", str(written), "select 1 AS a", "-f", "csv", "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "precious"
    assert main(["query", str(written), "select 1 AS a", "-f", "csv", "-o", str(out),
                 "--force"]) == 0
    assert out.read_text() == "a\n1\n"


# ---------------------------------------------------------------------- the authorizer


@pytest.mark.parametrize("sql", [
    "--x /*\nATTACH --*/\n'{tmp}/x.db' AS x",
    "VACUUM INTO '{tmp}/v.db'", "VACUUM", "ATTACH '{tmp}/a.db' AS a",
    "CREATE TEMP TABLE t(a)", "CREATE TEMP VIEW v AS SELECT 1", "PRAGMA user_version = 3",
    "PRAGMA journal_mode = DELETE", "PRAGMA wal_checkpoint", "PRAGMA optimize",
    "BEGIN IMMEDIATE", "SAVEPOINT s", "ANALYZE", "REINDEX",
    "INSERT INTO runs(run_id) VALUES ('x')", "DELETE FROM runs", "DROP VIEW sweep_1",
    "UPDATE sqlite_master SET name = 'x'",
])
def test_the_database_refuses_every_write(written, tmp_path, sql, capsys):
    """Statements that write or act (ATTACH hidden by comments, VACUUM INTO, temp objects,
    PRAGMAs that set or act) are refused with exit 2; no byte or file changes."""
    watched = tmp_path
    before, digest = _tree(watched), _digest(written / "results.db")
    assert main(["query", str(written), "--", sql.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" in err
    assert _tree(watched) == before and _digest(written / "results.db") == digest


_WORDS = ["SELECT", "select", "ATTACH", "attach", "DATABASE", "VACUUM", "INTO", "PRAGMA",
          "CREATE", "TEMP", "TEMPORARY", "TABLE", "VIEW", "TRIGGER", "INDEX", "INSERT", "UPDATE",
          "DELETE", "REPLACE", "DROP", "ALTER", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT",
          "RELEASE", "ANALYZE", "REINDEX", "DETACH", "WITH", "RECURSIVE", "AS", "FROM", "runs",
          "sweep_1", "sqlite_master", "temp.t", "main", "x", "AS x", "=", "(", ")", ",", ";",
          "1", "'f.db'", "'sub/g.db'", "\"f.db\"", "user_version", "journal_mode", "wal",
          "writable_schema", "query_only", "ON", "OFF", "0", "VALUES", "SET", "*", "load_extension",
          "'é.db'", "'\u202e.db'", "X'00'", "'f.db' AS y", "IF NOT EXISTS"]
_GLUE = ["", " ", "\n", "\t", "--c\n", "-- /*\n", "/*", "*/", "/* ; */", "/* --\n */", "\r\n",
         "\u00a0", "\x00", ";", "'", "\"", "`"]
_STATEMENT = st.lists(st.tuples(st.sampled_from(_GLUE), st.sampled_from(_WORDS)),
                      min_size=1, max_size=12).map(lambda parts: "".join(g + w for g, w in parts))


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory):
    """A results directory (one sweep) and a watched, empty working directory."""
    from irqlab.results.store import ResultStore
    from tests.results.results_helpers import make_result, run_infos, sweep_info

    root = tmp_path_factory.mktemp("fuzz")
    with ResultStore(root / "res") as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(4), make_result(4))
    (root / "cwd").mkdir()
    return root


@pytest.mark.slow  # 800 statements by default, 6000 with HYPOTHESIS_PROFILE=ci
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(st.lists(_STATEMENT, min_size=20, max_size=20))
def test_fuzz_no_statement_changes_a_byte_or_makes_a_file(fuzz_db, statements):
    """Thousands of generated statements (keywords, comments, quotes, odd characters): the
    database's bytes never change and no file appears anywhere under the watched tree."""
    db = fuzz_db / "res" / "results.db"
    before, digest = _tree(fuzz_db), _digest(db)
    old = os.getcwd()
    os.chdir(fuzz_db / "cwd")  # relative ATTACH / VACUUM INTO targets land here
    try:
        for sql in statements:
            try:
                run_query(str(fuzz_db / "res"), sql)
            except ScenarioError:
                pass
    finally:
        os.chdir(old)
    assert _tree(fuzz_db) == before and _digest(db) == digest


# ---------------------------------------------------------------------- no -wal/-shm


def test_reading_a_finished_database_leaves_no_wal_or_shm(written):
    """The writer leaves a rollback-journal database; queries create no -wal/-shm next to it."""
    assert not (written / "results.db-wal").exists()
    assert run_query(str(written), "SELECT count(*) FROM runs").rows == [(12,)]
    assert main(["runs", str(written)]) == 0
    assert sorted(p.name for p in written.iterdir() if p.name.startswith("results.db")) == \
        ["results.db"]


def test_reading_a_wal_database_no_writer_has_open_leaves_no_files(written):
    """A WAL-mode database without -wal/-shm (an older irqlab's) is read without making them."""
    with closing(sqlite3.connect(written / "results.db")) as con:
        con.execute("PRAGMA journal_mode=WAL")
    assert not (written / "results.db-wal").exists()
    assert run_query(str(written), "SELECT count(*) FROM runs").rows == [(12,)]
    assert not (written / "results.db-wal").exists() and not (written / "results.db-shm").exists()


# ---------------------------------------------------------------------- stopping a query


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_timeout_bounds_a_runaway_query(written, capsys, engine):
    """--timeout stops a query that never ends, with either engine: exit 2 with a message."""
    assert main(["query", str(written), RUNAWAY, "--timeout", "0.3", "--engine", engine]) == 2
    assert "--timeout 0.3 s" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_ctrl_c_interrupts_a_runaway_query(written, capsys, engine):
    """SIGINT during a query that never ends stops it, with either engine: exit 130."""
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        assert main(["query", str(written), RUNAWAY, "--engine", engine]) == 130
    finally:
        timer.cancel()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------------- read-only media


@contextmanager
def _immutable(paths: list[Path]):
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    done = []
    try:
        for p in paths:
            r = subprocess.run(["chattr", "+i", str(p)], capture_output=True, text=True)
            if r.returncode:
                pytest.skip(f"chattr +i does not work here: {r.stderr.strip()}")
            done.append(p)
        yield
    finally:
        for p in reversed(done):
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)


def test_results_on_immutable_media_can_be_read(written, capsys):
    """After chattr +i on the results directory and its files, query, runs and show work and
    leave nothing behind."""
    paths = [p for p in written.rglob("*")] + [written]
    with _immutable(paths):
        assert main(["query", str(written), "SELECT count(*) AS n FROM sweep_1", "-f", "csv"]) == 0
        assert capsys.readouterr().out == "n\n12\n"
        assert main(["runs", str(written)]) == 0
        assert main(["show", str(written), "r000001"]) == 0
        assert sorted(p.name for p in written.iterdir() if p.name.startswith("results.db")) == \
            ["results.db"]


def test_results_in_a_read_only_mount_can_be_read(written, tmp_path, capsys):
    """A read-only bind mount of the results directory can be queried."""
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(written), str(ro)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot make a read-only bind mount here: {r.stderr.strip()}")
    try:
        assert main(["query", str(ro), "SELECT count(*) AS n FROM runs", "-f", "csv"]) == 0
        assert capsys.readouterr().out == "n\n12\n"
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)
