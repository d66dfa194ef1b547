"""What is in a results database: sweeps, runs, one run's parameters, metrics and provenance.

Everything here reads through :func:`irqlab.results.query.run_query`, i.e.
read-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from irqlab.errors import ScenarioError, did_you_mean
from irqlab.results import naming
from irqlab.results.query import QueryResult, run_query


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def sweeps(target: str) -> QueryResult:
    """One row per sweep: id, number, name, view, status, committed ok/failed, planned, times."""
    return run_query(target, """
        SELECT s.sweep_no AS no, s.sweep_id, s.name, s.view_name AS view, s.alias_view AS alias,
               s.status,
               (SELECT count(*) FROM runs r WHERE r.sweep_id = s.sweep_id AND r.status = 'ok') AS ok,
               (SELECT count(*) FROM runs r WHERE r.sweep_id = s.sweep_id
                                             AND r.status = 'failed') AS failed,
               s.planned_runs AS planned, s.started_at, s.ended_at
        FROM sweeps s ORDER BY s.sweep_no""")


def find_sweep(target: str, sweep: str) -> dict[str, Any]:
    """A sweep's row by id, number, name (latest) or view name; ScenarioError if none."""
    rows = run_query(target, "SELECT * FROM sweeps ORDER BY sweep_no").rows
    cols = run_query(target, "SELECT * FROM sweeps WHERE 1 = 0").columns
    recs = [dict(zip(cols, r)) for r in rows]
    for key in ("sweep_id", "view_name", "alias_view"):
        hit = [r for r in recs if r[key] == sweep]
        if hit:
            return hit[-1]
    if sweep.isdigit():
        hit = [r for r in recs if r["sweep_no"] == int(sweep)]
        if hit:
            return hit[0]
    hit = [r for r in recs if r["name"] == sweep]
    if hit:
        return hit[-1]
    names = [r["sweep_id"] for r in recs] + [r["name"] for r in recs if r["name"]]
    raise ScenarioError(f"no sweep '{sweep}' in this database",
                        hint=did_you_mean(sweep, names) or "see 'irqlab runs DB'")


def latest_sweep(target: str) -> dict[str, Any]:
    """The sweep with the highest number; ScenarioError if the database has none."""
    res = run_query(target, "SELECT sweep_id FROM sweeps ORDER BY sweep_no DESC")
    if not res.rows:
        raise ScenarioError("the results database holds no sweep yet")
    return find_sweep(target, res.rows[0][0])


def runs(target: str, sweep: str | None = None, status: str | None = None,
         limit: int | None = 50) -> tuple[QueryResult, int]:
    """Runs (optionally of one sweep and status), and how many match in all."""
    where, params = [], {}
    if sweep is not None:
        where.append("r.sweep_id = :sweep")
        params["sweep"] = find_sweep(target, sweep)["sweep_id"]
    if status is not None:
        where.append("r.status = :status")
        params["status"] = status
    w = f"WHERE {' AND '.join(where)}" if where else ""
    total = run_query(target, f"SELECT count(*) FROM runs r {w}", params).rows[0][0]
    lim = f" LIMIT {int(limit)}" if limit else ""
    res = run_query(target, f"""
        SELECT r.run_id, s.sweep_no AS sweep, r.point, r.replication, r.seed, r.spawn_key,
               r.status,
               r.wall_s, r.events, r.truncated, r.error
        FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id {w}
        ORDER BY s.sweep_no, r.point, r.replication, r.run_id{lim}""", params)
    return res, total


@dataclass
class RunRecord:
    """One run as stored: identity, parameters, metrics (with units), sweep provenance."""

    run: dict[str, Any]
    params: dict[str, Any]  # exact values by dotted path (from runs.params)
    param_cols: list[tuple[str, str, Any, str]]  # (path, column, stored value, unit)
    metrics: list[tuple[str, str, Any, str, str]]  # (path, column, value, type, unit)
    sweep: dict[str, Any]
    series_fields: list[str] = field(default_factory=list)


def find_run_id(target: str, run_id: str) -> str:
    """The full run id for ``run_id`` or a unique prefix of one; ScenarioError otherwise."""
    res = run_query(target, "SELECT run_id FROM runs WHERE run_id = :r", {"r": run_id})
    if res.rows:
        return run_id
    like = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    res = run_query(target, "SELECT run_id FROM runs WHERE run_id LIKE :p ESCAPE '\\' "
                            "ORDER BY run_id LIMIT 6", {"p": like})
    ids = [r[0] for r in res.rows]
    if len(ids) == 1:
        return ids[0]
    if ids:
        raise ScenarioError(f"run id prefix '{run_id}' is ambiguous",
                            hint="matches " + ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else ""))
    raise ScenarioError(f"no run '{run_id}' in this database", hint="see 'irqlab runs DB'")


def run_record(target: str, run_id: str) -> RunRecord:
    """Everything stored about one run (``run_id`` may be a unique prefix)."""
    run_id = find_run_id(target, run_id)
    r = run_query(target, "SELECT * FROM runs WHERE run_id = :r", {"r": run_id})
    run = dict(zip(r.columns, r.rows[0]))
    sw = run_query(target, "SELECT * FROM sweeps WHERE sweep_id = :s", {"s": run["sweep_id"]})
    sweep = dict(zip(sw.columns, sw.rows[0]))
    cat = run_query(target, "SELECT column_name, role, path, type, unit FROM sweep_columns "
                            "WHERE sweep_id = :s ORDER BY ordinal", {"s": run["sweep_id"]})
    data = run_query(target, f"SELECT * FROM {_q(naming.data_table(sweep['sweep_no']))} "
                             f"WHERE run_id = :r", {"r": run_id})
    values = dict(zip(data.columns, data.rows[0])) if data.rows else {}
    params, metrics = [], []
    for col, role, path, typ, unit in cat.rows:
        v = values.get(col)
        if typ == "bool" and v is not None:
            v = bool(v)
        if role == "param":
            params.append((path, col, v, unit or ""))
        elif role == "metric":
            metrics.append((path, col, v, typ, unit or ""))
    ser = run_query(target, "SELECT DISTINCT field FROM series WHERE run_id = :r ORDER BY field",
                    {"r": run_id})
    return RunRecord(run=run, params=json.loads(run.get("params") or "{}"), param_cols=params,
                     metrics=metrics, sweep=sweep, series_fields=[x[0] for x in ser.rows])
