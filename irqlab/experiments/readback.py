"""Read a sweep's runs back from its results database (read-only), for the
answer table after a resume, when earlier runs are not in memory."""

from __future__ import annotations

from typing import Any, Sequence


def stored_rows(target: str, sweep_id: str, param_paths: Sequence[str], metrics: Sequence[str],
                fallback: Sequence[Any] = ()) -> list[Any]:
    """Every committed run of ``sweep_id`` as :class:`~.driver.RunRow` s (params by path,
    the named metrics); ``fallback`` if the database cannot be read."""
    from irqlab.errors import ScenarioError
    from irqlab.experiments.driver import RunRow
    from irqlab.results import catalog
    from irqlab.results.query import run_query

    def q(ident: str) -> str:
        return '"' + ident.replace('"', '""') + '"'

    try:
        sweep = catalog.find_sweep(target, sweep_id)
        cat = run_query(target, "SELECT column_name, role, path, type FROM sweep_columns "
                                "WHERE sweep_id = :s ORDER BY ordinal", {"s": sweep_id})
        wanted = {("param", p) for p in param_paths} | {("metric", m) for m in metrics}
        cols = [(c, role, path, typ) for c, role, path, typ in cat.rows if (role, path) in wanted]
        sel = ", ".join(["point", "replication", "status", *(q(c) for c, *_ in cols)])
        res = run_query(target, f"SELECT {sel} FROM {q(sweep['view_name'])}")
    except ScenarioError:
        return list(fallback)
    out = []
    for row in res.rows:
        point, rep, status, *vals = row
        params, mets = {}, {}
        for (c, role, path, typ), v in zip(cols, vals):
            if typ == "bool" and v is not None:
                v = bool(v)
            if role == "param":
                params[path] = v
            else:
                mets[path] = float("nan") if v is None and typ == "float" else v
        out.append(RunRow(int(point), int(rep), status, params, mets))
    return out
