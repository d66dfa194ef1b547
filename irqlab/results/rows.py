"""Batch results as rows: the wide columns' values, the long series and arrays tables, the
exact ``runs.params`` JSON, and the bulk insert the store uses for all of them."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from irqlab.engine.result import BatchResult
    from irqlab.results.store import RunInfo


def device_parts(c: Any) -> dict[str, str | None]:
    """``device``/``metric`` catalog entries of a ``device.<dev>.<metric>`` column."""
    if c.role == "metric" and c.path.startswith("device.") and c.path.count(".") >= 2:
        dev, metric = c.path[len("device."):].rsplit(".", 1)
        return {"device": dev, "metric": metric}
    return {"device": None, "metric": None}


def np_kind(arr: Any) -> str:
    """numpy ``dtype.kind`` of an array-like."""
    import numpy as np

    return np.asarray(arr).dtype.kind


def pa_strings(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.string())


_KEY_JSON: dict[str, str] = {}


def params_json(params: dict[str, Any]) -> str:
    """``params`` as JSON with sorted keys, keeping ints and floats apart (exact floats)."""
    parts = []
    for k in sorted(params):
        v = params[k]
        t = type(v)
        if t is float and v - v == 0.0:  # finite
            js = float.__repr__(v)
        elif t is int:
            js = int.__repr__(v)
        elif t is bool:
            js = "true" if v else "false"
        else:
            js = json.dumps(v, default=_json_default)
        key = _KEY_JSON.get(k)
        if key is None:
            key = _KEY_JSON[k] = json.dumps(k) + ": "
        parts.append(key + js)
    return "{" + ", ".join(parts) + "}"


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"cannot store parameter value {x!r} ({type(x).__name__})")


def int_rows(values: list[Any], ids: list[str]) -> str:
    """``all`` if every given value is an integer, else the run ids of those that are,
    comma-separated (run ids, not row numbers: a shard rewritten without some runs keeps it
    true)."""
    import numpy as np

    given = [i for i, v in enumerate(values) if v is not None]
    ints = [i for i in given if isinstance(values[i], (int, np.integer))
            and not isinstance(values[i], (bool, np.bool_))]
    return "all" if ints and len(ints) == len(given) else ",".join(ids[i] for i in ints)


def param_kind(values: list[Any]) -> str:
    import numpy as np

    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(v, (int, np.integer)):
            kinds.add("int")  # an integer parameter (resolve keeps them ints) stays one
        elif isinstance(v, (float, np.floating)):
            kinds.add("float")
        else:
            kinds.add("str")
    if kinds == {"int", "float"}:
        return "float"
    if len(kinds) == 1:
        return kinds.pop()
    return "str" if kinds else "float"


def param_values(values: list[Any], typ: str, path: str) -> Any:
    import numpy as np

    if typ == "float":
        try:
            return np.array([np.nan if v is None else float(v) for v in values], np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {path} was numeric in earlier runs; got {values!r}")
    if typ == "int":
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)))
               and not (isinstance(v, (float, np.floating)) and float(v).is_integer())
               for v in values):
            raise ValueError(f"parameter {path} was an integer in earlier runs; got {values!r}")
        return [None if v is None else int(v) for v in values]
    if typ == "bool":
        return [None if v is None else bool(v) for v in values]
    return [None if v is None else str(v) for v in values]


def sql_values(col: Any) -> list[Any]:
    """A column as Python values for the DB-API: numpy scalars unboxed, NaN -> None."""
    import numpy as np

    if isinstance(col, np.ndarray):
        if col.dtype.kind == "f":
            nan = np.isnan(col)
            if nan.any():
                obj = col.astype(object)
                obj[nan] = None
                return obj.tolist()
        return col.tolist()
    return [None if isinstance(v, float) and math.isnan(v) else v for v in col]


def bulk_insert(conn: Any, table: Any, cols: dict[str, Any]) -> None:
    """Insert columns ``{name: values}`` (equal lengths) into ``table`` in one executemany.

    On SQLite the DB-API's ``executemany`` gets plain tuples (the fastest
    path); elsewhere SQLAlchemy's batched ``insertmanyvalues`` does the work.
    """
    names = list(cols)
    values = [sql_values(cols[n]) for n in names]
    if not values or not values[0]:
        return
    if conn.dialect.name == "sqlite":
        prep = conn.dialect.identifier_preparer
        sql = (f"INSERT INTO {prep.quote(table.name)} ({', '.join(prep.quote(n) for n in names)}) "
               f"VALUES ({', '.join('?' for _ in names)})")
        conn.exec_driver_sql(sql, list(zip(*values)))
    else:
        conn.execute(table.insert(), [dict(zip(names, row)) for row in zip(*values)])


def series_long(runs: Sequence[RunInfo], result: "BatchResult", lanes: Any) -> Any:
    """The batch's time series as a long Arrow table, or None if there are none."""
    import numpy as np
    import pyarrow as pa

    if not result.series:
        return None
    fields = [k for k in result.series if k != "t_ns"]
    if not fields:
        return None
    ids = np.array([r.run_id for r in runs], dtype=object)
    t = result.series.get("t_ns")
    parts = {"run_id": [], "field": [], "sample": [], "t_ns": [], "value": []}
    for f in fields:
        v = np.asarray(result.series[f], np.float64)[lanes]  # [n, samples]
        n, s = v.shape
        if t is None:
            tt = np.full((n, s), np.nan)
        elif np.ndim(t) == 2:
            tt = np.asarray(t, np.float64)[lanes]
        else:
            tt = np.broadcast_to(np.asarray(t, np.float64), (n, s))
        parts["run_id"].append(np.repeat(ids, s))
        parts["field"].append(np.full(n * s, f, dtype=object))
        parts["sample"].append(np.tile(np.arange(s, dtype=np.int64), n))
        parts["t_ns"].append(np.asarray(tt, np.float64).reshape(-1))
        parts["value"].append(v.reshape(-1))
    return pa.table({
        "run_id": pa.array(np.concatenate(parts["run_id"]).tolist(), pa.string()),
        "field": pa.array(np.concatenate(parts["field"]).tolist(), pa.string()),
        "sample": pa.array(np.concatenate(parts["sample"]), pa.int64()),
        "t_ns": pa.array(np.concatenate(parts["t_ns"]), pa.float64(), from_pandas=True),
        "value": pa.array(np.concatenate(parts["value"]), pa.float64(), from_pandas=True),
    })


def arrays_long(runs: Sequence[RunInfo], arrays: dict[str, Any], lanes: Any) -> Any:
    """Array-valued metrics ``{name: [n, k]}`` as a long Arrow table, or None."""
    import numpy as np
    import pyarrow as pa

    if not arrays:
        return None
    ids = np.array([r.run_id for r in runs], dtype=object)
    run_id, name, idx, value = [], [], [], []
    for k, arr in arrays.items():
        v = np.asarray(arr, np.float64)[lanes].reshape(len(runs), -1)
        n, s = v.shape
        run_id.append(np.repeat(ids, s))
        name.append(np.full(n * s, k, dtype=object))
        idx.append(np.tile(np.arange(s, dtype=np.int64), n))
        value.append(v.reshape(-1))
    return pa.table({
        "run_id": pa.array(np.concatenate(run_id).tolist(), pa.string()),
        "name": pa.array(np.concatenate(name).tolist(), pa.string()),
        "idx": pa.array(np.concatenate(idx), pa.int64()),
        "value": pa.array(np.concatenate(value), pa.float64(), from_pandas=True),
    })
