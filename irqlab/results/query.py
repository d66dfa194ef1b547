"""Read-only SQL over a results database, and the output formats of ``irqlab query``.

The database itself refuses anything but reading (:mod:`irqlab.results.readonly`:
an SQLite authorizer on a ``mode=ro``/``immutable`` connection; read-only
transactions on a server), so a query can never change results, whatever
its text, and can run while a sweep is writing. Ctrl-C or ``timeout`` stops a
query that runs too long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from irqlab.errors import ScenarioError

FORMATS = ("table", "csv", "json", "parquet")


@dataclass
class QueryResult:
    """Column names and rows (tuples of Python values) of one query."""

    columns: list[str]
    rows: list[tuple]


def friendly_db_error(e: Exception) -> str:
    """The database's own message for an SQL error, without the SQLAlchemy wrapping."""
    orig = getattr(e, "orig", None) or e
    msg = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return msg


READ_ONLY_HINT = "irqlab query runs one read-only statement (SELECT, WITH ... SELECT, EXPLAIN)"


def run_query(target: str, sql: str, params: dict[str, Any] | None = None,
              timeout: float | None = None) -> QueryResult:
    """Run one read-only statement against a DB (path, directory or URL).

    Raises ScenarioError for a statement the database refuses (a write), a
    missing database, an SQL error (with the database's message) or a query
    stopped by ``timeout`` seconds; KeyboardInterrupt if Ctrl-C stopped it.
    """
    from sqlalchemy import exc, text

    from irqlab.results.db import database_error, open_errors, reader_engine
    from irqlab.results.readonly import QueryGuard

    if not sql.strip():
        raise ScenarioError("empty SQL statement")
    try:
        engine = reader_engine(target)
        conn = engine.connect()
    except open_errors() as e:
        raise database_error(target, e) from None
    guard = None
    try:
        with conn:
            if timeout is not None and conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
            with QueryGuard(conn.connection.dbapi_connection, timeout) as guard:
                res = conn.execute(text(sql), params or {})
                if not res.returns_rows:
                    raise ScenarioError("the statement returned no rows", hint=READ_ONLY_HINT)
                cols = list(res.keys())
                rows = [tuple(r) for r in res.fetchall()]
            conn.rollback()
    except exc.SQLAlchemyError as e:
        if guard is not None:
            guard.raise_if_stopped()
        msg = friendly_db_error(e)
        low = msg.replace(" ", "").lower()
        if "readonly" in low or "read-only" in msg.lower() or "notauthorized" in low:
            raise ScenarioError(f"the results database is opened read-only: {msg}",
                                hint=READ_ONLY_HINT) from None
        raise ScenarioError(f"SQL error: {msg}") from None
    finally:
        engine.dispose()
    return QueryResult(cols, rows)


# ---------------------------------------------------------------------- output


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else repr(v)
    return str(v)


def to_arrow(res: QueryResult) -> Any:
    """The rows as an Arrow table (types inferred; mixed columns become strings)."""
    import pyarrow as pa

    arrays = []
    for k, name in enumerate(res.columns):
        col = [r[k] for r in res.rows]
        try:
            arrays.append(pa.array(col))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in col], pa.string()))
    return pa.Table.from_arrays(arrays, names=_unique(res.columns))


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}_{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def write_output(res: QueryResult, fmt: str, out: str | None, console: Any = None,
                 force: bool = False) -> None:
    """Print or save ``res`` as ``table`` (rich), ``csv``, ``json`` (a list of objects) or
    ``parquet`` (needs ``out``). ``out`` must have passed
    :func:`~irqlab.results.readonly.check_output_path`; it is created exclusively
    unless ``force``."""
    import csv
    import io
    import json
    import sys

    if fmt not in FORMATS:
        raise ScenarioError(f"unknown format '{fmt}'", hint=f"one of: {', '.join(FORMATS)}")
    if fmt == "parquet":
        if not out:
            raise ScenarioError("--format parquet needs an output file (-o FILE)")
        import pyarrow.parquet as pq

        with open(out, "wb" if force else "xb") as f:
            pq.write_table(to_arrow(res), f)
        return
    if fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(show_header=True, header_style="bold")
        for c in res.columns:
            table.add_column(c, overflow="fold")
        for r in res.rows:
            table.add_row(*(_cell(v) for v in r))
        if out:
            with open(out, "w" if force else "x") as f:
                Console(file=f, width=200).print(table)
        else:
            con = console or Console(width=None if sys.stdout.isatty() else 240)
            con.print(table)
            if not res.rows:
                con.print("(no rows)")
        return
    buf = io.StringIO()
    if fmt == "csv":
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(res.columns)
        for r in res.rows:
            w.writerow(["" if v is None else v for v in r])
    else:
        def val(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, (bytes, bytearray)):
                return v.hex()
            return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)

        json.dump([{c: val(v) for c, v in zip(res.columns, r)} for r in res.rows], buf, indent=1)
        buf.write("\n")
    if out:
        with open(out, "w" if force else "x") as f:
            f.write(buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
