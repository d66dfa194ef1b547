"""Opening the results database: the driver's writable engine and read-only engines.

``DB`` arguments on the command line may be an SQLAlchemy URL
(``postgresql+psycopg://...``), a SQLite file, or a sweep output directory
holding ``results.db``.

SQLite specifics live only here (behind ``engine.dialect.name`` checks): WAL
mode so readers never block the writer, a busy timeout, ``synchronous=FULL``
for the driver, explicit ``BEGIN IMMEDIATE`` so DDL is transactional too, and
the read-only connections of :mod:`irqlab.results.readonly` for readers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError

BUSY_TIMEOUT_MS = 30_000
DB_FILE = "results.db"


def is_url(target: str) -> bool:
    """True if ``target`` looks like an SQLAlchemy URL rather than a path."""
    return "://" in str(target)


def resolve_target(target: str | os.PathLike) -> tuple[str, Path | None]:
    """``(url, sqlite_path or None)`` for a DB argument; ScenarioError if there is no database."""
    t = str(target)
    if is_url(t):
        if t.startswith("sqlite:///"):
            p = Path(t[len("sqlite:///"):])
            return t, p
        return t, None
    p = Path(t)
    if p.is_dir():
        p = p / DB_FILE
    if not p.is_file():
        raise ScenarioError(f"no results database at '{t}'",
                            hint="give a results.db file, a sweep output directory or an SQLAlchemy URL")
    return f"sqlite:///{p}", p


def database_error(target: str | os.PathLike, e: BaseException) -> ScenarioError:
    """A user error for a database that cannot be opened: a URL SQLAlchemy does not know,
    a driver that is not installed, or a server that does not answer."""
    from sqlalchemy import exc

    shown = str(target)
    if is_url(shown):
        try:
            from sqlalchemy.engine import make_url

            shown = make_url(shown).render_as_string(hide_password=True)
        except exc.ArgumentError:
            pass
    if isinstance(e, ModuleNotFoundError):
        return ScenarioError(f"cannot open the database {shown}: its driver is not installed "
                             f"(no module named '{e.name}')",
                             hint="install the DB-API driver of that URL, or name one that is "
                             "installed (e.g. postgresql+psycopg://, mysql+pymysql://)")
    if isinstance(e, (exc.NoSuchModuleError, exc.ArgumentError)):
        return ScenarioError(f"'{shown}' is not a database URL SQLAlchemy can use: "
                             f"{str(e).splitlines()[0]}",
                             hint="dialect[+driver]://user[:password]@host[:port]/database, "
                             "or a results.db path")
    orig = getattr(e, "orig", None) or e
    why = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return ScenarioError(f"cannot connect to the database {shown}: {why}",
                         hint="is the server running, and are the host, port, user and "
                         "database in the URL right?")


def open_errors() -> tuple[type[BaseException], ...]:
    """What opening an engine or its first connection raises for a bad database."""
    from sqlalchemy import exc

    return (ModuleNotFoundError, exc.SQLAlchemyError)


def writer_engine(url: str) -> Any:
    """An engine for the one writer (the sweep driver)."""
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000,
                                                  "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _rec):  # pragma: no cover - exercised via every test
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (DDL included)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # pragma: no cover
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def leave_wal(path: str | None) -> None:
    """Switch the SQLite file ``path`` back to a rollback journal, which removes its -wal
    and -shm files, so that a finished database is read (even on read-only media)
    without them. Quietly keeps WAL while another connection has the file open."""
    import sqlite3

    if not path or path == ":memory:":
        return
    try:
        con = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        con.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error:
        pass
    finally:
        con.close()


def one_statement_only(engine: Any) -> None:
    """Make psycopg (3) send every statement with the extended query protocol, which takes
    exactly one statement: with the simple protocol, ``COMMIT; BEGIN READ WRITE; ...``
    in one string would leave the read-only transaction."""
    from sqlalchemy import event

    @event.listens_for(engine, "do_execute")
    def _execute(cursor, statement, parameters, context):  # pragma: no cover - needs a server
        cursor.execute(statement, parameters or None, prepare=True)
        return True

    @event.listens_for(engine, "do_execute_no_params")
    def _execute_no_params(cursor, statement, context):  # pragma: no cover - needs a server
        cursor.execute(statement, None, prepare=True)
        return True


def reader_engine(target: str | os.PathLike) -> Any:
    """A read-only engine (:mod:`irqlab.results.readonly`): SQLite through
    :func:`~irqlab.results.readonly.connect_sqlite` (``mode=ro`` or ``immutable=1``,
    ``query_only``, an authorizer that allows only reads); other databases with
    read-only sessions and every transaction ``READ ONLY`` (PostgreSQL, MySQL)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    from irqlab.results.readonly import connect_sqlite, server_read_only

    url, path = resolve_target(target)
    if path is not None:
        return create_engine("sqlite://", creator=lambda: connect_sqlite(path),
                             poolclass=NullPool)
    connect_args, per_txn = server_read_only(url)
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    if engine.dialect.driver == "psycopg":
        one_statement_only(engine)
    if per_txn is not None:
        @event.listens_for(engine, "begin")
        def _ro(conn):  # pragma: no cover - needs a server
            conn.exec_driver_sql(per_txn)

    return engine
