"""Rerun a stored run and check that its metrics come back bit-identical.

The run is rebuilt from what the database holds: the sweep's scenario text
and file name, the run's exact parameter values (``runs.params``), its seed
and spawn key, and handed to ``irqlab.experiments.rerun(scenario_text,
scenario_file, params, seed, spawn_key) -> BatchResult`` (one lane).
Every stored metric is compared bit for bit (NaN equals NaN; a NULL stored
for NaN equals NaN). When the Parquet shard of the run is found beside a
SQLite database it is the reference (exact float64); otherwise the SQL row is.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from irqlab.errors import ScenarioError
from irqlab.results.catalog import RunRecord, run_record


@dataclass
class Difference:
    """One metric that did not reproduce."""

    name: str
    stored: Any
    new: Any


def load_rerun() -> Callable[..., Any]:
    """``irqlab.experiments.rerun``, or a ScenarioError if this installation lacks it."""
    try:
        from irqlab.experiments import rerun
    except ImportError as e:
        raise ScenarioError(f"cannot rerun: irqlab.experiments.rerun is not available ({e})") from None
    return rerun


def same(a: Any, b: Any) -> bool:
    """Bit-identical, with NaN == NaN and None (stored NULL) == NaN."""
    def norm(x: Any) -> Any:
        if x is None:
            return math.nan
        if hasattr(x, "item"):
            x = x.item()
        return x

    a, b = norm(a), norm(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) and not (isinstance(a, float) and math.isnan(a)) \
            and not (isinstance(b, float) and math.isnan(b))
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    return struct.pack("<d", fa) == struct.pack("<d", fb)


def _parquet_row(target: str, rec: RunRecord) -> dict[str, Any] | None:
    from irqlab.results.db import resolve_target

    try:
        _, path = resolve_target(target)
    except ScenarioError:
        return None
    if path is None or not rec.run.get("shard"):
        return None
    f = (path.parent / "parquet" / "runs" / f"sweep_id={rec.run['sweep_id']}"
         / f"{rec.run['shard']}.parquet")
    if not f.is_file():
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(f)
    t = t.filter(pc.equal(t["run_id"], rec.run["run_id"]))
    return t.to_pylist()[0] if t.num_rows == 1 else None


def stored_arrays(target: str, run_id: str) -> dict[str, list[float]]:
    """The run's array-valued metrics from ``metric_arrays``, by name."""
    from irqlab.results.query import run_query

    res = run_query(target, "SELECT name, idx, value FROM metric_arrays WHERE run_id = :r "
                            "ORDER BY name, idx", {"r": run_id})
    out: dict[str, list[float]] = {}
    for name, _, v in res.rows:
        out.setdefault(name, []).append(v)
    return out


def reproduce(target: str, run_id: str,
              rerun: Callable[..., Any] | None = None) -> tuple[RunRecord, list[Difference]]:
    """Rerun ``run_id`` and return its record and the metrics that differ (empty: identical)."""
    import numpy as np

    rec = run_record(target, run_id)
    rerun = rerun or load_rerun()
    spawn_key = tuple(json.loads(rec.run["spawn_key"] or "[]"))
    result = rerun(rec.sweep["scenario_text"], rec.sweep["scenario_file"], rec.params,
                   int(rec.run["seed"]), spawn_key)
    if result.n < 1:
        raise ScenarioError(f"rerun of {rec.run['run_id']} returned no lane")
    flat = result.flat_columns()
    ref = _parquet_row(target, rec)
    diffs: list[Difference] = []
    if result.status[0] != rec.run["status"]:
        diffs.append(Difference("status", rec.run["status"],
                                f"{result.status[0]} ({result.error[0]})" if result.error[0]
                                else result.status[0]))
    for path, col, value, _typ, _unit in rec.metrics:
        stored = ref[col] if ref is not None and col in ref else value
        if path not in flat:
            if stored is not None:  # NULL: a column added by later batches, not this run's
                diffs.append(Difference(path, stored, "<missing>"))
            continue
        new = np.asarray(flat[path])[0]
        if not same(stored, new):
            diffs.append(Difference(path, stored, new.item() if hasattr(new, "item") else new))
    for name, values in stored_arrays(target, rec.run["run_id"]).items():
        new = np.asarray(flat.get(name, []), np.float64)
        new = new[0].reshape(-1) if new.ndim >= 2 else np.array([])
        if len(new) != len(values) or not all(same(a, b) for a, b in zip(values, new)):
            diffs.append(Difference(name, values, new.tolist()))
    return rec, diffs


def parquet_root_for(target: str) -> Path | None:
    """The Parquet root beside a SQLite results database, if there is one."""
    from irqlab.results.db import resolve_target

    _, path = resolve_target(target)
    if path is None:
        return None
    root = path.parent / "parquet"
    return root if root.is_dir() else None
