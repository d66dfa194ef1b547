"""Read-only access to a results database, enforced by the database, not by reading SQL.

Everything that reads results (``irqlab query``, ``runs``, ``show``, ``plot``,
``verify``, and any other engine that wants the same guarantee) goes through
here:

* :func:`connect_sqlite` opens a SQLite file with ``mode=ro``, or with
  ``immutable=1`` where SQLite would otherwise have to create ``-wal``/``-shm``
  files (read-only media: ``chattr +i``, read-only mounts or directories; a
  WAL database no writer has open), so a read never creates a file; it sets
  ``query_only``, allows no attached database, and installs
  :func:`sqlite_authorizer`, which allows reading and nothing else: no
  ATTACH (so no ``VACUUM INTO``), no PRAGMA that sets a value or acts, no
  transaction control, no write of any table, temporary ones included;
* :func:`server_read_only` is the same promise for a server: PostgreSQL
  sessions start with ``default_transaction_read_only=on`` and every
  statement runs in a transaction opened ``READ ONLY``;
* :class:`QueryGuard` stops a running SQLite statement on Ctrl-C (then
  ``KeyboardInterrupt``, exit 130) or after ``timeout`` seconds;
* :func:`check_output_path` keeps a read-only command's output file out of
  any results directory and, unless forced, off any existing file.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError

BUSY_TIMEOUT_MS = 30_000

#: PRAGMAs a reader may run without a value (they report, they do not act)
READ_PRAGMAS = frozenset({
    "application_id", "auto_vacuum", "cache_size", "collation_list", "compile_options",
    "data_version", "database_list", "encoding", "foreign_keys", "freelist_count",
    "function_list", "journal_mode", "module_list", "page_count", "page_size", "pragma_list",
    "query_only", "read_uncommitted", "schema_version", "table_list", "user_version",
})
#: PRAGMAs whose argument names a table or index (or bounds a check), not a setting
READ_PRAGMAS_WITH_ARG = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
})
_ALLOWED = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                      getattr(sqlite3, "SQLITE_RECURSIVE", 33)})


def sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None,
                      source: str | None) -> int:
    """SQLite authorizer callback: ``SQLITE_OK`` for reading, ``SQLITE_DENY`` for anything
    else (see the module docstring)."""
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and db == "main":
        # asked while SQLite parses the schema for an eponymous table (pragma_table_info);
        # the schema itself cannot be written (no writable_schema, query_only, mode=ro)
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if (arg2 is None and name in READ_PRAGMAS) or name in READ_PRAGMAS_WITH_ARG:
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _is_wal(path: Path) -> bool:
    """True if the SQLite header says WAL (file format versions 2)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return len(head) == 20 and head[18] == 2 and head[19] == 2


def sqlite_uri(path: str | os.PathLike) -> str:
    """The URI a reader opens ``path`` with: ``mode=ro``, or ``immutable=1`` where SQLite
    could not (or should not) create the -wal/-shm files it needs for a WAL database:
    the file or its directory is not writable, or the database is in WAL mode with no
    -wal and no -shm (no writer has it open)."""
    p = Path(path).resolve()
    wal, shm = p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")
    writable = os.access(p, os.W_OK) and os.access(p.parent, os.W_OK)
    immutable = not writable or (_is_wal(p) and not wal.exists() and not shm.exists())
    from urllib.parse import quote

    return f"file:{quote(p.as_posix())}?" + ("immutable=1" if immutable else "mode=ro")


def connect_sqlite(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path`` (see the module docstring)."""
    conn = sqlite3.connect(sqlite_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only=ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(sqlite_authorizer)
    except BaseException:
        conn.close()
        raise
    return conn


def server_read_only(url: str) -> tuple[dict[str, Any], str | None]:
    """``(connect_args, per-transaction statement)`` that make a server session read-only
    (PostgreSQL; MySQL/MariaDB get the statement only)."""
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return {"options": "-c default_transaction_read_only=on"}, "SET TRANSACTION READ ONLY"
    if backend in ("mysql", "mariadb"):
        return {}, "SET TRANSACTION READ ONLY"
    return {}, None


class QueryGuard:
    """While active, Ctrl-C (SIGINT) and ``timeout`` seconds stop the SQLite statement
    running on ``conn`` (a progress handler checks every few thousand VM steps). Other
    connections are left alone: psycopg cancels a query on KeyboardInterrupt, and the
    timeout is the server's ``statement_timeout``.

    After the statement failed, :meth:`raise_if_stopped` raises KeyboardInterrupt for a
    Ctrl-C and a ScenarioError for the timeout.
    """

    STEPS = 10_000

    def __init__(self, conn: Any, timeout: float | None = None) -> None:
        self.conn = conn
        self.timeout = timeout
        self.interrupted = False
        self.timed_out = False
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._old: Any = None

    def _progress(self) -> int:
        if self.interrupted:
            return 1
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.timed_out = True
            return 1
        return 0

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted = True

    def __enter__(self) -> "QueryGuard":
        if not isinstance(self.conn, sqlite3.Connection):
            return self  # a server driver turns KeyboardInterrupt into a cancel itself
        self.conn.set_progress_handler(self._progress, self.STEPS)
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: Any) -> None:
        if isinstance(self.conn, sqlite3.Connection):
            self.conn.set_progress_handler(None, 0)
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
        if self.interrupted and exc[0] is None:
            raise KeyboardInterrupt

    def raise_if_stopped(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        if self.timed_out:
            raise ScenarioError(f"the query ran longer than --timeout {self.timeout:g} s and "
                                "was stopped", hint="narrow it, or give a longer --timeout")


# ---------------------------------------------------------------------- output files

RESULTS_MARKERS = ("results.db", ".irqlab-writer.lock")


def results_dir_of(path: Path) -> Path | None:
    """The results directory ``path`` lies in (one holding ``results.db``, the writer lock
    or a ``parquet/runs`` dataset), or None."""
    for d in (path, *path.parents):
        if any((d / m).exists() for m in RESULTS_MARKERS) or (d / "parquet" / "runs").is_dir():
            return d
    return None


def check_output_path(out: str | os.PathLike, db_target: str | None = None,
                      force: bool = False) -> Path:
    """Refuse (ScenarioError) an output file inside a results directory or the database
    ``db_target`` itself (with its -wal/-shm/-journal), a directory, and, unless ``force``,
    any existing file. Returns the path."""
    p = Path(out)
    full = p.resolve()
    db_files: set[Path] = set()
    if db_target and "://" not in str(db_target):
        t = Path(db_target)
        db = (t / "results.db" if t.is_dir() else t).resolve()
        db_files = {db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))}
    home = results_dir_of(full.parent)
    if full in db_files or home is not None:
        where = f"the results directory '{home}'" if home is not None else "the database"
        raise ScenarioError(f"will not write '{out}': it is a file of {where}",
                            hint="write the output somewhere outside the results directory")
    if full.is_dir():
        raise ScenarioError(f"cannot write '{out}': it is a directory")
    if (p.exists() or p.is_symlink()) and not force:
        raise ScenarioError(f"'{out}' exists; not overwriting it",
                            hint="give --force to replace it, or another file name")
    return p
