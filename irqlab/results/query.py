"""Read-only SQL over a results database, and the output formats of ``irqlab query``.

The database is opened read-only (SQLite ``mode=ro`` + ``query_only``;
PostgreSQL sessions with ``default_transaction_read_only``), and a statement
that would write is refused before it reaches the database, so a query can
never change results, and can run while a sweep is writing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError

FORMATS = ("table", "csv", "json", "parquet")
_WRITE = re.compile(
    r"^\s*(insert|update|delete|replace|upsert|merge|create|drop|alter|truncate|attach|detach|"
    r"vacuum|reindex|grant|revoke|copy|begin|commit|rollback|savepoint|release|lock|"
    r"call|do|set|reset|load|install)\b", re.I)
_PRAGMA_SET = re.compile(r"^\s*pragma\s+[\w.]+\s*(=|\()", re.I)
_WRITE_ANYWHERE = re.compile(r"\b(insert\s+into|update\s+\w+\s+set|delete\s+from)\b", re.I)


@dataclass
class QueryResult:
    """Column names and rows (tuples of Python values) of one query."""

    columns: list[str]
    rows: list[tuple]


def _strip_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", sql)


def _outside_quotes(sql: str) -> str:
    """``sql`` with the contents of '...' and "..." blanked out."""
    out, quote = [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
            out.append(" ")
        elif ch in "'\"":
            quote = ch
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def check_read_only(sql: str) -> None:
    """Refuse a statement that would write (a ScenarioError naming the keyword), and more
    than one statement."""
    body = _strip_comments(sql).strip().rstrip(";").strip()
    if not body:
        raise ScenarioError("empty SQL statement")
    if ";" in _outside_quotes(body):
        raise ScenarioError("one SQL statement at a time, please",
                            hint="irqlab query runs a single SELECT")
    m = _WRITE.match(body) or _PRAGMA_SET.match(body)
    if m is None and re.match(r"^\s*with\b", body, re.I):
        m = _WRITE_ANYWHERE.search(body)
    if m is not None:
        word = m.group(0).strip().split()[0].upper()
        raise ScenarioError(
            f"the results database is opened read-only: {word} statements are refused",
            hint="irqlab query runs SELECT (and WITH ... SELECT, EXPLAIN) only")


def friendly_db_error(e: Exception) -> str:
    """The database's own message for an SQL error, without the SQLAlchemy wrapping."""
    orig = getattr(e, "orig", None) or e
    msg = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return msg


def run_query(target: str, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
    """Run one read-only statement against a DB (path, directory or URL).

    Raises ScenarioError for a write statement, a missing database or an SQL
    error (with the database's message).
    """
    from sqlalchemy import exc, text

    from irqlab.results.db import database_error, open_errors, reader_engine

    check_read_only(sql)
    try:
        engine = reader_engine(target)
        conn = engine.connect()
    except open_errors() as e:
        raise database_error(target, e) from None
    try:
        with conn:
            res = conn.execute(text(sql), params or {})
            if not res.returns_rows:
                raise ScenarioError("the statement returned no rows",
                                    hint="irqlab query runs SELECT statements")
            cols = list(res.keys())
            rows = [tuple(r) for r in res.fetchall()]
            conn.rollback()
    except exc.SQLAlchemyError as e:
        msg = friendly_db_error(e)
        if "readonly" in msg.replace(" ", "").lower() or "read-only" in msg.lower():
            raise ScenarioError(
                f"the results database is opened read-only: {msg}",
                hint="irqlab query runs SELECT (and WITH ... SELECT, EXPLAIN) only") from None
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


def write_output(res: QueryResult, fmt: str, out: str | None, console: Any = None) -> None:
    """Print or save ``res`` as ``table`` (rich), ``csv``, ``json`` (a list of objects) or
    ``parquet`` (needs ``out``)."""
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

        pq.write_table(to_arrow(res), out)
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
            with open(out, "w") as f:
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
        Path(out).write_text(buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
