"""Result tables as Arrow, pandas or polars: the caller picks, only pyarrow is required.

* :func:`convert` -- an Arrow table as ``arrow`` (itself), ``pandas`` or ``polars``, with a
  clear error when that library is not installed;
* :func:`sweep_runs` -- a sweep's wide rows (what the view ``sweep_<no>`` holds) read
  straight from its live Parquet files with pyarrow, in the catalog's column order; from
  SQL when the database has no Parquet beside it (a PostgreSQL URL) or one of its live
  files is missing.
"""

from __future__ import annotations

from typing import Any

from irqlab.errors import ScenarioError

KINDS = ("arrow", "pandas", "polars")


def convert(table: Any, as_: str) -> Any:
    """``table`` (a ``pyarrow.Table``) as ``as_``: arrow, pandas or polars."""
    if as_ not in KINDS:
        raise ScenarioError(f"unknown table kind as_={as_!r}", hint="one of: " + ", ".join(KINDS))
    if as_ == "arrow":
        return table
    try:
        if as_ == "pandas":
            import pandas  # noqa: F401 - to_pandas needs it

            return table.to_pandas()
        import polars

        return polars.from_arrow(table)
    except ImportError:
        raise ScenarioError(f"as_={as_!r} needs {as_}, which is not installed",
                            hint=f"pip install {as_} (or 'irqlab[analysis]'), or use "
                                 f"as_='arrow'") from None


def query_arrow(res: Any) -> Any:
    """A :class:`~irqlab.results.query.QueryResult` as an Arrow table."""
    from irqlab.results.query import to_arrow

    return to_arrow(res)


_ARROW = {"float": "float64", "int": "int64", "bool": "bool_", "str": "string"}


def sweep_runs(target: str, sweep: dict, status: str | None = None) -> Any:
    """The wide rows of ``sweep`` (a ``sweeps`` row) as an Arrow table: one row per
    committed run, columns as in ``sweep_columns`` (a column a file lacks is null there).
    ``status``: only runs with this status."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from irqlab.results.query import run_query
    from irqlab.results.reproduce import parquet_root_for

    cat = run_query(target, "SELECT column_name, type FROM sweep_columns WHERE sweep_id = :s "
                            "ORDER BY ordinal", {"s": sweep["sweep_id"]}).rows
    root = parquet_root_for(target)
    files = [] if root is None else [root / r[0] for r in run_query(
        target, "SELECT file FROM shards WHERE sweep_id = :s AND dataset = 'runs' ORDER BY file",
        {"s": sweep["sweep_id"]}).rows]
    if root is None or not all(p.is_file() for p in files):
        # no Parquet (a server database), or a file lost or not yet renamed into place:
        # SQL holds every row
        where = " WHERE status = :st" if status else ""
        res = run_query(target, f'SELECT * FROM "{sweep["view_name"]}"{where}',
                        {"st": status} if status else None)
        return query_arrow(res)
    schema = pa.schema([(c, getattr(pa, _ARROW.get(t, "string"))()) for c, t in cat])
    parts = []
    for p in files:
        t = pq.read_table(p)
        cols = [t[c].cast(schema.field(c).type) if c in t.column_names
                else pa.nulls(t.num_rows, schema.field(c).type) for c in schema.names]
        parts.append(pa.Table.from_arrays(cols, schema=schema))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    if status:
        table = table.filter(pc.equal(table["status"], status))
    return table
