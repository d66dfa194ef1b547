"""``irqlab query --engine duckdb``: the same tables, views and column names, answered by
DuckDB over the Parquet files.

What a DuckDB session holds (an in-memory database, thrown away after the query):

* ``sweep_<no>_data`` -- a view over exactly the live Parquet files of the sweep's
  ``runs`` dataset (the ``shards`` table says which files are live), with the columns
  of ``sweep_columns`` in their order (``union_by_name``: a column added by a later
  batch is NULL in earlier files, as in SQL);
* ``series`` and ``metric_arrays`` -- views over their live files;
* every other table (``sweeps``, ``sweep_columns``, ``shards``, ``latency_bins``,
  ``irqlab_meta``; ``runs`` only when the statement names it) copied from the
  SQLite database, which is opened read-only;
* every view (``sweep_<no>``, ``sweep_<name>``, ``results_long``, ``device_metrics``,
  ``runs_ok``) created from the very SQL text SQLite stores for it, so the views are
  the same by construction.

Read-only, as the SQLite path (enforced by the engine, not by a text filter): the
statement must be one SELECT (or EXPLAIN) by DuckDB's own parser, and runs after ``allowed_directories`` is narrowed to the Parquet directories of the
results (``parquet/<dataset>/sweep_id=<id>/``), ``enable_external_access`` is off (no
other file, no ATTACH, COPY, INSTALL or LOAD can reach the file system) and
``lock_configuration`` is on (the query cannot undo it).

``auto`` picks DuckDB when it is installed, the target is a SQLite results directory
with its Parquet files, and the statement reads only Parquet-backed relations (it does
not name ``runs``/``runs_ok``, whose ``params`` and ``shard`` exist only in SQL); a
statement DuckDB cannot run (SQLite's dialect, or an error) goes to SQLite, so ``auto``
answers whatever SQLite answers, with SQLite's messages.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError
from irqlab.results.query import QueryResult, friendly_db_error
from irqlab.results.readonly import QueryGuard

ENGINES = ("auto", "sqlite", "duckdb")
PARQUET_TABLES = ("series", "metric_arrays")
SQL_ONLY = ("runs", "runs_ok")  # relations whose columns are not all in the Parquet files
_DATA = re.compile(r"^sweep_\d+_data$")


def duckdb_available() -> bool:
    """True if the ``duckdb`` module can be imported."""
    import importlib.util

    return importlib.util.find_spec("duckdb") is not None


def choose_engine(target: str, sql: str, engine: str = "auto") -> str:
    """``sqlite`` or ``duckdb`` for ``engine`` (auto|sqlite|duckdb); ScenarioError if
    ``duckdb`` is asked for and cannot serve this target.

    (``sqlite`` means the SQLAlchemy path: also PostgreSQL URLs.)"""
    if engine not in ENGINES:
        raise ScenarioError(f"unknown query engine '{engine}'", hint="one of: " + ", ".join(ENGINES))
    if engine == "sqlite":
        return "sqlite"
    root = _parquet_root(target)
    if engine == "duckdb":
        if not duckdb_available():
            raise ScenarioError("--engine duckdb needs the duckdb package, which is not installed",
                                hint="pip install 'irqlab[duckdb]', or use --engine sqlite")
        if root is None:
            raise ScenarioError(f"--engine duckdb reads the Parquet files beside a results.db; "
                                f"'{target}' has none",
                                hint="give the sweep's output directory, or use --engine sqlite")
        return "duckdb"
    if root is None or not duckdb_available() or mentions(sql) & set(SQL_ONLY):
        return "sqlite"
    return "duckdb"


def _parquet_root(target: str) -> Path | None:
    from irqlab.results.reproduce import parquet_root_for

    return parquet_root_for(target)


def run_query_with(target: str, sql: str, engine: str = "auto",
                   params: dict[str, Any] | None = None, timeout: float | None = None) -> QueryResult:
    """Run one read-only statement with the chosen engine (see :func:`choose_engine`);
    ``timeout`` (seconds) bounds the SQL database's queries (DuckDB's are over Parquet)."""
    from irqlab.results.query import run_query

    if choose_engine(target, sql, engine) == "sqlite":
        return run_query(target, sql, params, timeout=timeout)
    try:
        return run_duckdb(target, sql, params, timeout=timeout)
    except DuckSQLError:
        if engine != "auto":
            raise
        return run_query(target, sql, params, timeout=timeout)  # SQLite's dialect or message


class DuckSQLError(ScenarioError):
    """DuckDB could not run a statement (syntax, an unknown column or function, a live
    Parquet file missing): under ``auto`` the statement goes to SQLite, whose dialect and
    messages are the reference and which holds every row."""


class DuckGuard(QueryGuard):
    """:class:`~irqlab.results.readonly.QueryGuard` for a DuckDB connection: Ctrl-C and
    ``timeout`` seconds call ``con.interrupt()``, which stops the running statement."""

    def __enter__(self) -> "DuckGuard":
        if self.timeout is not None:
            self._timer = threading.Timer(self.timeout, self._expire)
            self._timer.daemon = True
            self._timer.start()
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _expire(self) -> None:
        self.timed_out = True
        self.conn.interrupt()

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        self.conn.interrupt()

    def __exit__(self, *exc: Any) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        super().__exit__(*exc)


def run_duckdb(target: str, sql: str, params: dict[str, Any] | None = None,
               timeout: float | None = None) -> QueryResult:
    """Run one read-only statement with DuckDB over ``target``'s Parquet files.

    ``params``: named parameters (``$name`` in DuckDB SQL). Ctrl-C stops the statement
    (KeyboardInterrupt); so does ``timeout`` seconds (a ScenarioError)."""
    from irqlab.results.db import resolve_target

    _, db_path = resolve_target(target)
    root = _parquet_root(target)
    if db_path is None or root is None:
        raise ScenarioError(f"'{target}' has no Parquet files for DuckDB to read")
    con = open_session(db_path, root, sql)
    import duckdb

    try:
        stmts = con.extract_statements(sql)
        if len(stmts) != 1:
            raise ScenarioError("one SQL statement at a time, please",
                                hint="irqlab query runs a single SELECT")
        kind = stmts[0].type.name
        if kind not in ("SELECT", "EXPLAIN"):
            raise ScenarioError(
                f"the results database is opened read-only: {kind} statements are refused",
                hint="irqlab query runs SELECT (and WITH ... SELECT, EXPLAIN) only")
        guard = DuckGuard(con, timeout)
        try:
            with guard:
                cur = con.execute(sql, params or None)
                cols = [d[0] for d in cur.description]
                rows = [tuple(r) for r in cur.fetchall()]
        except duckdb.InterruptException:
            guard.raise_if_stopped()
            raise KeyboardInterrupt from None
    except duckdb.PermissionException as e:
        raise ScenarioError(f"the DuckDB session may read only the results' Parquet files: "
                            f"{str(e).splitlines()[0]}") from None
    except duckdb.Error as e:
        raise DuckSQLError(f"SQL error: {friendly_db_error(e)}") from None
    finally:
        con.close()
    return QueryResult(cols, rows)


def _sqlite_ro(db_path: Path) -> sqlite3.Connection:
    from irqlab.results.readonly import connect_sqlite

    conn = connect_sqlite(db_path.resolve())
    # only this module's own statements run here (the user's go to DuckDB), and it needs
    # a read transaction: the file stays read-only (mode=ro or immutable, query_only)
    conn.set_authorizer(None)
    return conn


def _arrow_of(cur: sqlite3.Cursor) -> Any:
    from irqlab.results.query import to_arrow

    cols = [d[0] for d in cur.description]
    return to_arrow(QueryResult(cols, cur.fetchall()))


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


_DUCK_TYPES = {"float": "DOUBLE", "int": "BIGINT", "bool": "BIGINT", "str": "VARCHAR"}


_IDENT = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_]*)')


def mentions(sql: str) -> set[str]:
    """The identifiers ``sql`` names (lower case; quoted ones unquoted)."""
    return {(q.replace('""', '"') if q else w).lower() for q, w in _IDENT.findall(sql)}


def open_session(db_path: Path, root: Path, sql: str = "") -> Any:
    """A locked-down in-memory DuckDB connection holding the results' tables and views that
    ``sql`` needs (see the module doc): the relations it names, and those their view
    definitions name, transitively; everything when ``sql`` is empty. The SQLite catalog
    and the list of live files are read in one read transaction."""
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    lite = _sqlite_ro(db_path)
    try:
        lite.execute("BEGIN")  # one snapshot for the catalog and the list of live files
        tables = [r[0] for r in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        views = dict(lite.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        need = _needed(sql, tables, views)
        live: dict[tuple[str, str], list[str]] = {}
        missing: dict[tuple[str, str], list[str]] = {}
        for sweep_id, dataset, file in lite.execute(
                "SELECT sweep_id, dataset, file FROM shards ORDER BY file"):
            p = root / file
            (live if p.is_file() else missing).setdefault((dataset, sweep_id), []).append(
                p.resolve().as_posix())
        sweeps = lite.execute("SELECT sweep_id, sweep_no FROM sweeps").fetchall()
        lost = [f for (d, sid), fs in missing.items() for f in fs
                if d in need or (d == "runs" and any(
                    sid == s_ and f"sweep_{no}_data" in need for s_, no in sweeps))]
        if lost:
            con.close()
            raise DuckSQLError(
                f"{len(lost)} live Parquet file(s) of the results are missing (or not yet "
                f"renamed into place by the writer), e.g. {lost[0]}",
                hint="--engine sqlite answers from the SQL database, which holds every row")
        catalog: dict[str, list[tuple[str, str]]] = {}
        for sid, name, typ in lite.execute(
                "SELECT sweep_id, column_name, type FROM sweep_columns ORDER BY sweep_id, ordinal"):
            catalog.setdefault(sid, []).append((name, typ))
        dirs = sorted({f.rsplit("/", 1)[0] + "/" for fs in live.values() for f in fs})
        con.execute("SET allowed_directories = ?", [dirs])  # (allowed_paths: slow per file)
        con.execute("SET parquet_metadata_cache = true")  # each view binds: read footers once
        for t in tables:
            if t.lower() not in need or _DATA.match(t) or (
                    t in PARQUET_TABLES and any(d == t for d, _ in live)):
                continue
            con.register("irqlab_copy", _arrow_of(lite.execute(f"SELECT * FROM {_q(t)}")))
            con.execute(f"CREATE TABLE {_q(t)} AS SELECT * FROM irqlab_copy")
            con.unregister("irqlab_copy")
        for sid, no in sweeps:
            if f"sweep_{no}_data" in need:
                _data_view(con, f"sweep_{no}_data", catalog.get(sid, []),
                           live.get(("runs", sid), []))
        for t in PARQUET_TABLES:
            parts = [fs for (d, _), fs in sorted(live.items()) if d == t]
            if parts and t in need:
                flist = "[" + ", ".join(_lit(f) for fs in parts for f in fs) + "]"
                cols = [r[1] for r in lite.execute(f"PRAGMA table_info({_q(t)})")]
                con.execute(f"CREATE VIEW {_q(t)} AS SELECT {', '.join(_q(c) for c in cols)} "
                            f"FROM read_parquet({flist}, hive_partitioning = true, "
                            f"union_by_name = true)")
    finally:
        lite.rollback()
        lite.close()
    pending = {n: text for n, text in views.items() if n.lower() in need}
    while pending:  # a view after the views it names (DuckDB binds at CREATE VIEW)
        ready = [n for n, text in pending.items()
                 if not (mentions(text) - {n.lower()}) & {m.lower() for m in pending}]
        for n in sorted(ready or pending):
            con.execute(pending.pop(n))
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _needed(sql: str, tables: list[str], views: dict[str, str]) -> set[str]:
    """The relations (lower case) ``sql`` needs: those it names and, for a view, those its
    definition names, transitively; all of them for an empty ``sql``."""
    names = {t.lower() for t in tables} | {v.lower() for v in views}
    if not sql.strip():
        return names
    texts = {v.lower(): text for v, text in views.items()}
    need: set[str] = set()
    todo = mentions(sql) & names
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo |= (mentions(texts.get(n, "")) & names) - need
    return need


def _data_view(con: Any, name: str, cols: list[tuple[str, str]], files: list[str]) -> None:
    """``name`` as a view over ``files`` with ``cols`` (name, irqlab type) in order, or an
    empty table of those columns when the sweep has no live file yet. A column added by a
    later batch is NULL in the earlier files (``union_by_name``)."""
    if not files:
        body = ", ".join(f"{_q(c)} {_DUCK_TYPES.get(t, 'VARCHAR')}" for c, t in cols) \
            or "run_id VARCHAR"
        con.execute(f"CREATE TABLE {_q(name)} ({body})")
        return
    flist = "[" + ", ".join(_lit(f) for f in files) + "]"
    sel = ", ".join(f"CAST({_q(c)} AS BIGINT) AS {_q(c)}" if t == "bool" else _q(c)
                    for c, t in cols)  # flags as 0/1, as SQL stores them: avg(livelock) works
    con.execute(f"CREATE VIEW {_q(name)} AS SELECT {sel} "
                f"FROM read_parquet({flist}, union_by_name = true)")
