"""Views that make a question one short query.

``sweep_<no>``     the wide view of one sweep: one row per committed run, one
                   column per run field, parameter and scalar metric
``sweep_<name>``   the same for the latest sweep with that name (sanitized,
                   lower case), when the name allows it
``results_long``   every sweep, long: one row per (run, parameter or metric)
                   with ``value`` (DOUBLE; booleans as 0/1) or ``value_text``;
                   ``device``/``metric`` split ``device.<dev>.<metric>`` names
``device_metrics`` the per-device rows of ``results_long``: (run, device, metric, value)
``runs_ok``        the ``runs`` table restricted to status ``ok``

Views are (re)created inside the writer's transaction whenever a sweep's
columns change. The SQL is portable (SQLite, PostgreSQL): quoted identifiers,
``CAST(... AS DOUBLE PRECISION)``, ``CASE`` for booleans, and the long view
nests its ``UNION ALL`` in groups to stay below SQLite's compound-select limit.
"""

from __future__ import annotations

from typing import Any

from irqlab.results import naming

LONG_VIEW = "results_long"
DEVICE_VIEW = "device_metrics"
_GROUP = 100  # SELECTs per nested UNION ALL


def _lit(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _drop_view(conn: Any, name: str) -> None:
    q = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"DROP VIEW IF EXISTS {q(name)}")


def refresh_views(conn: Any, sweep_id: str) -> None:
    """(Re)create the wide view and alias of ``sweep_id``, and the long view."""
    from sqlalchemy import select

    from irqlab.results.schema import fixed_tables

    _, t = fixed_tables()
    sw, sc = t["sweeps"], t["sweep_columns"]
    q = conn.dialect.identifier_preparer.quote
    row = conn.execute(select(sw.c.sweep_no, sw.c.name, sw.c.alias_view)
                       .where(sw.c.sweep_id == sweep_id)).one()
    cols = conn.execute(select(sc.c.column_name).where(sc.c.sweep_id == sweep_id)
                        .order_by(sc.c.ordinal)).scalars().all()
    view = naming.view_name(row.sweep_no)
    body = (f"SELECT {', '.join(q(c) for c in cols)} "
            f"FROM {q(naming.data_table(row.sweep_no))}")
    _drop_view(conn, view)
    conn.exec_driver_sql(f"CREATE VIEW {q(view)} AS {body}")

    alias = naming.alias_view(row.name or "")
    if alias is not None:
        holder = conn.execute(select(sw.c.sweep_id).where(sw.c.alias_view == alias)).scalars().all()
        for other in holder:
            if other != sweep_id:
                conn.execute(sw.update().where(sw.c.sweep_id == other).values(alias_view=None))
        _drop_view(conn, alias)
        conn.exec_driver_sql(f"CREATE VIEW {q(alias)} AS {body}")
        conn.execute(sw.update().where(sw.c.sweep_id == sweep_id).values(alias_view=alias))
    refresh_long_view(conn)
    if not _has_view(conn, "runs_ok"):
        conn.exec_driver_sql(f"CREATE VIEW {q('runs_ok')} AS SELECT * FROM {q('runs')} "
                             f"WHERE {q('status')} = 'ok'")


def _has_view(conn: Any, name: str) -> bool:
    from sqlalchemy import inspect

    return name in inspect(conn).get_view_names()


def refresh_long_view(conn: Any) -> None:
    """(Re)create ``results_long`` over every sweep that has a data table."""
    from sqlalchemy import select

    from irqlab.results.schema import fixed_tables

    _, t = fixed_tables()
    sw, sc = t["sweeps"], t["sweep_columns"]
    q = conn.dialect.identifier_preparer.quote
    cols_by_sweep: dict[str, list[tuple[str, str]]] = {}
    for sid, name, typ, role in conn.execute(
            select(sc.c.sweep_id, sc.c.column_name, sc.c.type, sc.c.role)
            .where(sc.c.role.in_(("param", "metric"))).order_by(sc.c.sweep_id, sc.c.ordinal)):
        cols_by_sweep.setdefault(sid, []).append((name, typ))
    nos = dict(conn.execute(select(sw.c.sweep_id, sw.c.sweep_no)).all())
    selects = []
    for sid, cols in sorted(cols_by_sweep.items(), key=lambda kv: nos[kv[0]]):
        num = [(c, ty) for c, ty in cols if ty != "str"]
        txt = [c for c, ty in cols if ty == "str"]

        def num_expr(c: str, ty: str) -> str:
            if ty == "bool":
                return (f"CASE WHEN d.{q(c)} IS NULL THEN NULL WHEN d.{q(c)} THEN 1.0 "
                        f"ELSE 0.0 END")
            return f"CAST(d.{q(c)} AS DOUBLE PRECISION)"

        value = ("CASE c.column_name " + " ".join(
            f"WHEN {_lit(c)} THEN {num_expr(c, ty)}" for c, ty in num) + " END") if num \
            else "CAST(NULL AS DOUBLE PRECISION)"
        value_text = ("CASE c.column_name " + " ".join(
            f"WHEN {_lit(c)} THEN d.{q(c)}" for c in txt) + " END") if txt \
            else "CAST(NULL AS VARCHAR(1))"
        selects.append(
            f"SELECT CAST({_lit(sid)} AS VARCHAR(128)) AS sweep_id, d.run_id AS run_id, "
            f"d.point AS point, d.replication AS replication, d.status AS status, "
            f"c.role AS role, c.path AS name, c.column_name AS column_name, c.unit AS unit, "
            f"c.device AS device, c.metric AS metric, "
            f"{value} AS value, {value_text} AS value_text "
            f"FROM {q(naming.data_table(nos[sid]))} d CROSS JOIN {q('sweep_columns')} c "
            f"WHERE c.sweep_id = {_lit(sid)} AND c.role IN ('param', 'metric')")
    if not selects:
        body = ("SELECT CAST(NULL AS VARCHAR(128)) AS sweep_id, CAST(NULL AS VARCHAR(128)) AS "
                "run_id, CAST(NULL AS BIGINT) AS point, CAST(NULL AS BIGINT) AS replication, "
                "CAST(NULL AS VARCHAR(16)) AS status, CAST(NULL AS VARCHAR(16)) AS role, "
                "CAST(NULL AS VARCHAR(255)) AS name, CAST(NULL AS VARCHAR(255)) AS column_name, "
                "CAST(NULL AS VARCHAR(32)) AS unit, CAST(NULL AS VARCHAR(255)) AS device, "
                "CAST(NULL AS VARCHAR(255)) AS metric, CAST(NULL AS DOUBLE PRECISION) AS value, "
                "CAST(NULL AS VARCHAR(1)) AS value_text WHERE 1 = 0")
    elif len(selects) <= _GROUP:
        body = " UNION ALL ".join(selects)
    else:
        groups = [" UNION ALL ".join(selects[i:i + _GROUP])
                  for i in range(0, len(selects), _GROUP)]
        body = " UNION ALL ".join(f"SELECT * FROM ({g}) g{k}" for k, g in enumerate(groups))
    _drop_view(conn, DEVICE_VIEW)
    _drop_view(conn, LONG_VIEW)
    conn.exec_driver_sql(f"CREATE VIEW {q(LONG_VIEW)} AS {body}")
    conn.exec_driver_sql(
        f"CREATE VIEW {q(DEVICE_VIEW)} AS SELECT sweep_id, run_id, point, replication, status, "
        f"device, metric, unit, value FROM {q(LONG_VIEW)} WHERE device IS NOT NULL")
