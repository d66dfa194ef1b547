"""``irqlab rebuild``: recreate a lost results database from the Parquet files.

The Parquet dataset holds every committed run: the wide rows (``runs/``,
with each column's role, dotted path, type and unit in its field metadata),
the long series and arrays, and each sweep's provenance row (``sweeps/``).
:func:`rebuild` writes a new database (tables, catalog and views) through a
:class:`~irqlab.results.store.ResultStore`, so the result is what the sweeps
themselves would have written:

* sweep numbers are the recorded ones (a number two sweeps claim goes to the
  one started first; the other gets the next free number);
* ``runs.params`` is restored exactly (the ``ints`` field metadata says which
  numeric values were integers; files written before it existed give floats);
* a run found in several groups (a crash between a retry's commit and the
  removal of the file it replaced) is taken from the newest group; a file
  none of whose rows survive is moved to ``quarantine/``;
* every shard gets its size and SHA-256 as found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError
from irqlab.experiments.provenance import iso_utc
from irqlab.results import naming, shards


@dataclass
class RebuildReport:
    """What :func:`rebuild` restored."""

    sweeps: int = 0
    runs: int = 0
    files: int = 0
    notes: list[str] = field(default_factory=list)


def _seq(grp: str) -> int:
    parts = grp.split("-")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def _files(root: Path, ds: str, sid: str) -> list[Path]:
    """The live files of a sweep in a dataset, oldest group first."""
    base = root / ds / f"sweep_id={sid}"
    if not base.is_dir():
        return []
    found = [p for p in base.glob("*.parquet") if not p.name.startswith(".") and p.is_file()]
    return sorted(found, key=lambda p: (_seq(p.stem), p.stem))


def rebuild(out_dir: str | os.PathLike, db_url: str | None = None) -> RebuildReport:
    """Recreate the database of ``out_dir`` (``results.db``, or the empty database at
    ``db_url``) from its Parquet files. ScenarioError if the database exists and is not
    empty, or there is no Parquet dataset."""
    import pyarrow.parquet as pq

    from irqlab.results.store import ResultStore

    out = Path(out_dir)
    root = out / "parquet"
    if not root.is_dir():
        raise ScenarioError(f"no Parquet dataset at '{root}'",
                            hint="give a sweep output directory (it holds parquet/)")
    if db_url is None and (out / "results.db").exists():
        raise ScenarioError(f"'{out / 'results.db'}' exists; rebuild writes a new database",
                            hint="move the old one away first (or give --db URL of an empty "
                                 "database)")
    sweep_ids = sorted({p.name[len("sweep_id="):] for ds in (*shards.DATASETS, "sweeps")
                        for p in (root / ds).glob("sweep_id=*") if p.is_dir()})
    rows: dict[str, dict[str, Any]] = {}
    rep = RebuildReport()
    for sid in sweep_ids:
        prov = root / "sweeps" / f"sweep_id={sid}" / "sweep.parquet"
        if prov.is_file():
            rows[sid] = pq.read_table(prov).to_pylist()[0]
        else:
            rows[sid] = {"name": None, "status": "unknown", "sweep_no": None}
            rep.notes.append(f"sweep {sid}: no sweep.parquet; its provenance is unknown")
    order = sorted(sweep_ids, key=lambda s: (rows[s].get("sweep_no") is None,
                                             rows[s].get("sweep_no") or 0,
                                             rows[s].get("started_at") or "", s))
    with ResultStore(out, db_url) as store:
        from sqlalchemy import func, select

        with store.engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(store.t["sweeps"])).scalar():
                raise ScenarioError(f"the database {db_url} already holds sweeps",
                                    hint="rebuild into an empty database")
        taken: set[int] = set()
        for sid in order:
            no = rows[sid].get("sweep_no")
            if no is None or no in taken:
                new = max(taken, default=0) + 1
                if no is not None:
                    rep.notes.append(f"sweep {sid}: number {no} is taken; now {new}")
                no = new
            taken.add(no)
            _restore_sweep(store, root, sid, no, rows[sid], rep)
            rep.sweeps += 1
    return rep


def _restore_sweep(store: Any, root: Path, sid: str, no: int, row: dict[str, Any],
                   rep: RebuildReport) -> None:
    import pyarrow.parquet as pq

    from irqlab.results.rows import bulk_insert, params_json
    from irqlab.results.store import _Col
    from irqlab.results.schema import RUN_DOCS
    from irqlab.results.units import metric_info

    sw = store.t["sweeps"]
    known = {c.name for c in sw.columns}
    values = {k: v for k, v in row.items() if k in known}
    values.update(sweep_id=sid, sweep_no=no, view_name=naming.view_name(no),
                  data_table=naming.data_table(no), alias_view=None, writer=None)
    with store.engine.begin() as conn:
        conn.execute(sw.insert().values(**values))

    # which group each run is taken from: the newest runs file that holds it
    run_files = _files(root, "runs", sid)
    tables = {p: pq.read_table(p) for p in run_files}
    winner: dict[str, str] = {}
    for p in run_files:
        for rid in tables[p]["run_id"].to_pylist():
            winner[rid] = p.stem
    cols: dict[str, _Col] = {}
    for p in run_files:  # columns are only ever appended: the union in file order
        for f in tables[p].schema:
            if f.name in cols or f.name == "sweep_id":
                continue
            m = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
            role, path, typ = m.get("role", "metric"), m.get("path", f.name), m.get("type", "str")
            if role == "run":
                doc = RUN_DOCS.get(f.name, "")
            elif role == "param":
                doc = "parameter " + path
            else:
                doc = metric_info(path, {"float": "f", "int": "i", "bool": "b"}.get(typ, "O"))[2]
            cols[f.name] = _Col(f.name, role, path, typ, m.get("unit", ""), doc)
    st = store._sweep(sid)
    keep_masks: dict[Path, Any] = {}
    with store.engine.begin() as conn:
        if cols:
            store._apply_ddl(conn, st, list(cols.values()))
        for p in run_files:
            t = tables[p]
            keep = [winner[r] == p.stem for r in t["run_id"].to_pylist()]
            t = t.filter(keep) if not all(keep) else t
            keep_masks[p] = t.num_rows
            if not t.num_rows:
                continue
            data = {c: (t[c].to_pylist() if c in t.column_names else [None] * t.num_rows)
                    for c in st.cols}
            bulk_insert(conn, st.table, data)
            bulk_insert(conn, store.t["runs"], _runs_rows(sid, p.stem, t, st, data, params_json))
            rep.runs += t.num_rows
        for ds in ("series", "metric_arrays"):
            for p in _files(root, ds, sid):
                t = pq.read_table(p)
                if "sweep_id" in t.column_names:
                    t = t.drop(["sweep_id"])
                keep = [winner.get(r) == p.stem for r in t["run_id"].to_pylist()]
                t = t.filter(keep) if not all(keep) else t
                keep_masks[p] = t.num_rows
                if t.num_rows:
                    d = t.to_pydict()
                    d["sweep_id"] = [sid] * t.num_rows
                    bulk_insert(conn, store.t[ds], d)
        shard_rows = []
        for p, n in keep_masks.items():
            ds = p.parent.parent.name
            rel = shards.final_rel(ds, sid, p.stem)
            if not n:
                dst = store.out_dir / "quarantine" / "rebuild" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dst)
                rep.notes.append(f"{rel}: every run in it is in a newer group; moved to {dst}")
                continue
            size, sha = shards.file_digest(p)
            created = datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)
            shard_rows.append(dict(file=rel, grp=p.stem, sweep_id=sid, dataset=ds, rows=n,
                                   created_at=iso_utc(created),
                                   bytes=size, sha256=sha))
            rep.files += 1
        if shard_rows:
            conn.execute(store.t["shards"].insert(), shard_rows)
    store._write_sweep_parquet(sid)


def _runs_rows(sid: str, grp: str, t: Any, st: Any, data: dict[str, list], params_json: Any
               ) -> dict[str, list]:
    """The ``runs`` rows of one runs shard, ``params`` JSON restored from the param columns."""
    n = t.num_rows
    params: list[dict[str, Any]] = [{} for _ in range(n)]
    ids = data["run_id"]
    for name, c in st.cols.items():
        if c.role != "param" or name not in t.column_names:
            continue
        meta = {k.decode(): v.decode() for k, v in (t.schema.field(name).metadata or {}).items()}
        ints = meta.get("ints", "")
        int_ids = None if ints == "all" else set(ints.split(",")) if ints else set()
        for i, v in enumerate(data[name]):
            if v is None:
                continue
            if c.type == "float":
                v = int(v) if (int_ids is None or ids[i] in int_ids) and "ints" in meta \
                    else float(v)
            params[i][c.path] = v
    by_path = {c.path: name for name, c in st.cols.items() if c.role == "metric"}
    ev, tr = by_path.get("events"), by_path.get("truncated")
    return {
        "run_id": ids, "sweep_id": [sid] * n, "point": data["point"],
        "replication": data["replication"], "seed": data["seed"],
        "spawn_key": data["spawn_key"], "status": data["status"], "error": data["error"],
        "wall_s": data["wall_s"],
        "events": data[ev] if ev else [None] * n,
        "truncated": data[tr] if tr else [None] * n,
        "params": [params_json(p) for p in params],
        "shard": [grp] * n,
    }

