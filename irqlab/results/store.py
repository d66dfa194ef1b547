"""The results store: the sweep driver's one writer of the Parquet dataset and the SQL database.

Usage (by :mod:`irqlab.experiments`)::

    store = ResultStore(out_dir)               # sqlite file out_dir/results.db
    store.begin_sweep(info)                    # idempotent for one sweep_id (resume)
    done = store.completed(info.sweep_id)      # run_id -> 'ok' | 'failed'
    store.write_batch(info.sweep_id, runs, batch_result)
    store.finish_sweep(info.sweep_id, ended_at, "done")
    store.close()

Atomicity: ``write_batch`` writes its Parquet shards to hidden temp files and
fsyncs them, then inserts every SQL row of the batch (runs, the wide data
rows, series, arrays, and the ``shards`` rows naming the files) in ONE
transaction, and only after the commit renames the temp files to their final
names. A crash before the commit leaves nothing visible (the temps, whose
group was announced in ``shard_intents`` before they were written, are
deleted when the store is next opened); a crash after it leaves the rows
committed and the rename is finished when the store is next opened. Files
that no intent names are never deleted (see :mod:`.shards`). Only this
object writes; readers (``irqlab query``, sqlite3, pyarrow, DuckDB) can read
while it does (SQLite in WAL mode; switched back to a rollback journal when
the writer closes, so a finished database is read without -wal/-shm files).

Storage failures (a full disk, an I/O error, a lost file) raise a
ScenarioError saying so; the sweep row is still marked, with the space of a
small reserve file the store keeps for that (:mod:`.writer`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from irqlab.errors import ScenarioError
from irqlab.experiments.provenance import now_iso
from irqlab.results import naming, shards
from irqlab.results.schema import RUN_DOCS, RUN_TYPES, SCHEMA_VERSION
from irqlab.results.rows import (arrays_long, bulk_insert, device_parts, int_rows, np_kind,
                                 pa_strings, param_kind, param_values, params_json, series_long)
from irqlab.results.writer import (add_missing_columns, make_reserve, out_of_space,
                                   storage_error, storage_errors, take_writer_lock, writer_gone,
                                   writer_id)

if TYPE_CHECKING:  # pragma: no cover
    from irqlab.engine.result import BatchResult

QUARANTINE = "quarantine"  # files of lost shard groups, moved out of the dataset

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 2000  # ids per IN (...) list


class _Changed(Exception):
    """The runs already stored changed between a batch's check and its transaction."""


@dataclass(frozen=True)
class SweepInfo:
    """Provenance of one sweep (one row of ``sweeps``).

    ``sweep_id`` must match ``[A-Za-z0-9][A-Za-z0-9._-]*`` (at most 128
    characters): it names a Parquet partition directory. ``started_at`` is
    ISO 8601 UTC. ``param_paths`` are the canonical dotted paths the sweep
    varies. ``param_units`` (optional) gives a parameter's unit (``s``,
    ``Hz``, ``""``) where the store's inference from the path is not enough.
    """

    sweep_id: str
    name: str
    scenario_text: str
    scenario_hash: str
    scenario_file: str | None
    command: str
    irqlab_version: str
    plugin_versions: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    host: str
    started_at: str
    planned_runs: int
    param_paths: tuple[str, ...]
    base_seed: int
    param_units: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """Identity of one run.

    ``params``: the point's values by canonical dotted path: numbers
    (int/float; times in seconds, frequencies in Hz), strings or bools.
    Numbers are stored as DOUBLE in the wide table and exactly (JSON) in
    ``runs.params`` for ``reproduce``. ``wall_s``: wall time attributed to
    this run.
    """

    run_id: str
    point: int
    replication: int
    seed: int
    spawn_key: tuple[int, ...]
    params: dict[str, object]
    wall_s: float


@dataclass
class _Col:
    name: str
    role: str  # run | param | metric
    path: str
    type: str  # float | int | bool | str
    unit: str = ""
    doc: str = ""


@dataclass
class _Sweep:
    sweep_id: str
    no: int
    name: str
    param_paths: tuple[str, ...]
    param_units: dict[str, str]
    cols: dict[str, _Col] = field(default_factory=dict)  # column name -> info, in table order
    by_path: dict[tuple[str, str], str] = field(default_factory=dict)  # (role, path) -> column
    table: Any = None  # sqlalchemy Table once the data table exists


class ResultStore:
    """The one writer of a results directory (Parquet) and database (SQL).

    ``out_dir``: the Parquet dataset goes under ``out_dir/parquet/``; with
    ``db_url`` None the database is the SQLite file ``out_dir/results.db``,
    otherwise any SQLAlchemy URL (PostgreSQL included). Opening takes an
    exclusive lock on ``out_dir/.irqlab-writer.lock`` (a second writer is a
    ScenarioError) and finishes or discards what a crashed writer left.
    """

    def __init__(self, out_dir: str | os.PathLike, db_url: str | None = None) -> None:
        self.out_dir = Path(out_dir)
        with storage_errors(self.out_dir):
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.root = self.out_dir / "parquet"
            self.root.mkdir(exist_ok=True)
            self._lock_fd = take_writer_lock(self.out_dir)
        try:
            self._open(db_url)
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise

    def _open(self, db_url: str | None) -> None:
        from irqlab.results.db import database_error, open_errors, writer_engine
        from irqlab.results.schema import fixed_tables, latency_bin_rows

        self.url = db_url or f"sqlite:///{self.out_dir / 'results.db'}"
        self._own_db = db_url is None
        self.md, self.t = fixed_tables()
        with storage_errors(self.out_dir):
            # first: if even the reserve cannot be written, nothing is marked running
            self._reserve = make_reserve(self.out_dir)
        try:
            self.engine = writer_engine(self.url)
            with self.engine.begin() as conn:
                self.md.create_all(conn)
                add_missing_columns(conn, self.md)
                meta = self.t["irqlab_meta"]
                if conn.execute(meta.select().where(meta.c.key == "schema_version")).first() is None:
                    conn.execute(meta.insert().values(key="schema_version", value=SCHEMA_VERSION))
                bins = self.t["latency_bins"]
                if conn.execute(bins.select().limit(1)).first() is None:
                    conn.execute(bins.insert(), latency_bin_rows())
        except open_errors() as e:
            if out_of_space(e):
                raise storage_error(self.out_dir, e) from None
            raise database_error(self.url, e) from None
        self._sweeps: dict[str, _Sweep] = {}
        self.new_sweeps: set[str] = set()  # sweeps begun by this store, not resumed
        with storage_errors(self.out_dir):
            self._seq = self._max_seq()
            self.recovered = self.recover()
            self.abandoned = self.mark_abandoned()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release the database and the writer lock; a SQLite database is left in rollback
        journal mode (no -wal/-shm files), unless a reader holds it open."""
        if self._lock_fd < 0:
            return
        try:
            self.engine.dispose()
            if self.engine.dialect.name == "sqlite":
                from irqlab.results.db import leave_wal

                leave_wal(self.engine.url.database)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def recover(self) -> dict[str, list[str]]:
        """Finish or discard Parquet files a crashed writer of this database left, leave
        every other file in place (see :func:`shards.recover`), and forget the intents."""
        from sqlalchemy import select

        sh, si, sw = self.t["shards"], self.t["shard_intents"], self.t["sweeps"]
        with self.engine.connect() as conn:
            live = dict(conn.execute(select(sh.c.file, sh.c.bytes)).all())
            intents = conn.execute(select(si.c.name, si.c.kind)).all()
            own = set(conn.execute(select(sw.c.sweep_id)).scalars())
        grps = {n for n, k in intents if k == "grp"}
        doomed = {n for n, k in intents if k == "file"}
        done = shards.recover(self.root, live, grps, doomed, own)
        if intents:
            with self.engine.begin() as conn:
                conn.execute(si.delete().where(si.c.name.in_([n for n, _ in intents])))
        return done

    def mark_abandoned(self) -> list[str]:
        """Mark ``killed`` every sweep still ``running`` whose writer is gone: one that
        wrote into this directory's own SQLite file (this process holds the writer lock
        now), or one whose recorded writer process no longer exists on this host."""
        from sqlalchemy import select

        sw = self.t["sweeps"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(sw.c.sweep_id, sw.c.writer)
                                .where(sw.c.status == "running")).all()
        local = self._own_db  # this directory's results.db: under the lock this process holds
        dead = [sid for sid, w in rows if local or writer_gone(w)]
        if dead:
            with self.engine.begin() as conn:
                conn.execute(sw.update().where(sw.c.sweep_id.in_(dead)).values(
                    status="killed", writer=None))
            for sid in dead:
                self._write_sweep_parquet(sid)
        return dead

    def _max_seq(self) -> int:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            grps = conn.execute(select(self.t["shards"].c.grp).distinct()).scalars().all()
        return max((int(g.split("-")[1]) for g in grps), default=0)

    def _next_grp(self) -> str:
        self._seq += 1
        return f"part-{self._seq:08d}-{secrets.token_hex(3)}"

    # ------------------------------------------------------------------ sweeps

    def begin_sweep(self, info: SweepInfo) -> list[tuple[str, str, int]]:
        """Record a sweep (status ``running``); for an existing ``sweep_id`` (resume) check
        the scenario is the same and mark it running again. Idempotent.

        On a resume, the sweep's shard groups with a missing file, or one whose size is
        not the one committed, are dropped (:meth:`drop_groups`) so that their runs are
        run again; returns what was dropped: ``[(file, why, runs)]``.
        """
        if not _SAFE_ID.match(info.sweep_id):
            raise ValueError(f"sweep_id {info.sweep_id!r} must match {_SAFE_ID.pattern}")
        with storage_errors(self.out_dir):
            self._begin(info)
        try:
            with storage_errors(self.out_dir):
                bad = {**{f: "missing" for f in self.recovered["missing"]},
                       **{f: "damaged (its size is not the one committed)" for f in self.recovered["damaged"]}}
                lost = self.drop_groups(bad, sweep_id=info.sweep_id)
                self._write_sweep_parquet(info.sweep_id)
        except ScenarioError:
            try:  # the row says running: say error, as a sweep that stops later would
                self.finish_sweep(info.sweep_id, now_iso(), "error")
            except ScenarioError:
                pass  # the cause is reported below; the next writer marks it (killed)
            raise
        return lost

    def _begin(self, info: SweepInfo) -> None:
        from sqlalchemy import func, select

        sw = self.t["sweeps"]
        with self.engine.begin() as conn:
            row = conn.execute(select(sw).where(sw.c.sweep_id == info.sweep_id)).mappings().first()
            if row is not None:
                if row["scenario_hash"] != info.scenario_hash:
                    raise ScenarioError(
                        f"sweep '{info.sweep_id}' already exists in this database with another "
                        f"scenario (hash {row['scenario_hash']} != {info.scenario_hash})",
                        hint="use a new output directory or sweep id")
                conn.execute(sw.update().where(sw.c.sweep_id == info.sweep_id).values(
                    status="running", ended_at=None, planned_runs=info.planned_runs,
                    param_units=json.dumps(dict(info.param_units), sort_keys=True),
                    writer=writer_id()))
            else:
                no = (conn.execute(select(func.max(sw.c.sweep_no))).scalar() or 0) + 1
                conn.execute(sw.insert().values(
                    sweep_id=info.sweep_id, sweep_no=no, name=info.name, status="running",
                    started_at=info.started_at, ended_at=None, planned_runs=info.planned_runs,
                    param_paths=json.dumps(list(info.param_paths)), base_seed=str(info.base_seed),
                    param_units=json.dumps(dict(info.param_units), sort_keys=True),
                    scenario_hash=info.scenario_hash, scenario_file=info.scenario_file,
                    scenario_text=info.scenario_text, command=info.command,
                    irqlab_version=info.irqlab_version,
                    plugin_versions=json.dumps(info.plugin_versions, sort_keys=True),
                    git_commit=info.git_commit, git_dirty=info.git_dirty, host=info.host,
                    view_name=naming.view_name(no), alias_view=None,
                    data_table=naming.data_table(no), writer=writer_id()))
        if row is None:
            self.new_sweeps.add(info.sweep_id)
        else:
            self.new_sweeps.discard(info.sweep_id)
        self._sweeps.pop(info.sweep_id, None)

    def finish_sweep(self, sweep_id: str, ended_at: str, status: str) -> None:
        """Record the end of a sweep: ``status`` such as ``done``, ``failed``, ``interrupted``.

        On a full disk the reserve file is given up for this one update; the
        Parquet copy of the sweep's row is then best effort."""
        sw = self.t["sweeps"]

        def update() -> int:
            with self.engine.begin() as conn:
                return conn.execute(sw.update().where(sw.c.sweep_id == sweep_id).values(
                    ended_at=ended_at, status=status, writer=None)).rowcount

        try:
            with storage_errors(self.out_dir):
                n = update()
        except ScenarioError:
            if not self._release_reserve():
                raise
            with storage_errors(self.out_dir):
                n = update()
        if not n:
            raise ValueError(f"unknown sweep {sweep_id!r}")
        try:
            with storage_errors(self.out_dir):
                self._write_sweep_parquet(sweep_id)
        except ScenarioError:
            if self._reserve is not None:
                raise

    def _release_reserve(self) -> bool:
        """Delete the reserve file (once); True if it was there to free space."""
        if self._reserve is None:
            return False
        self._reserve.unlink(missing_ok=True)
        self._reserve = None
        return True

    def completed(self, sweep_id: str) -> dict[str, str]:
        """``{run_id: 'ok' | 'failed'}`` of the runs of ``sweep_id`` already committed."""
        from sqlalchemy import select

        r = self.t["runs"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(r.c.run_id, r.c.status).where(r.c.sweep_id == sweep_id))
            return {a: b for a, b in rows}

    def _sweep(self, sweep_id: str) -> _Sweep:
        from sqlalchemy import select

        st = self._sweeps.get(sweep_id)
        if st is not None:
            return st
        sw, sc = self.t["sweeps"], self.t["sweep_columns"]
        with self.engine.connect() as conn:
            row = conn.execute(select(sw).where(sw.c.sweep_id == sweep_id)).mappings().first()
            if row is None:
                raise ValueError(f"unknown sweep {sweep_id!r}: call begin_sweep first")
            cols = conn.execute(select(sc).where(sc.c.sweep_id == sweep_id)
                                .order_by(sc.c.ordinal)).mappings().all()
        st = _Sweep(sweep_id, row["sweep_no"], row["name"] or "",
                    tuple(json.loads(row["param_paths"] or "[]")),
                    json.loads(row["param_units"] or "{}"))
        for c in cols:
            st.cols[c["column_name"]] = _Col(c["column_name"], c["role"], c["path"], c["type"],
                                             c["unit"] or "", c["description"] or "")
            st.by_path[(c["role"], c["path"])] = c["column_name"]
        if st.cols:
            from irqlab.results.schema import data_table_def

            st.table = data_table_def(naming.data_table(st.no),
                                      [(c.name, c.type) for c in st.cols.values()])
        self._sweeps[sweep_id] = st
        return st

    def _write_sweep_parquet(self, sweep_id: str) -> None:
        import pyarrow as pa
        from sqlalchemy import select

        sw = self.t["sweeps"]
        with self.engine.connect() as conn:
            row = dict(conn.execute(select(sw).where(sw.c.sweep_id == sweep_id)).mappings().one())
        row.pop("sweep_id")
        types = {c.name: c.type for c in sw.columns}
        fields = []
        for k in row:
            py = types[k].python_type
            fields.append(pa.field(k, {int: pa.int64(), bool: pa.bool_()}.get(py, pa.string())))
        table = pa.Table.from_pylist([row], schema=pa.schema(fields))
        shards.write_replace(self.root / "sweeps" / f"sweep_id={sweep_id}" / "sweep.parquet", table)

    def drop_groups(self, bad: dict[str, str], sweep_id: str | None = None
                    ) -> list[tuple[str, str, int]]:
        """Take the shard groups of the files ``bad`` (file -> why) out of the results, so
        that a resume runs their runs again: every file of such a group is moved to
        ``out_dir/quarantine/`` (nothing is deleted), then its runs' rows and its shards
        rows are deleted in one transaction. ``sweep_id``: only that sweep's groups.
        Returns ``[(file, why, runs in its group)]``."""
        from sqlalchemy import select

        if not bad:
            return []
        sh, rt = self.t["shards"], self.t["runs"]
        with self.engine.connect() as conn:
            q = select(sh.c.file, sh.c.grp, sh.c.sweep_id).where(sh.c.file.in_(list(bad)))
            hit = [r for r in conn.execute(q).all() if sweep_id is None or r[2] == sweep_id]
            grps = sorted({g for _, g, _ in hit})
            if not grps:
                return []
            files = conn.execute(select(sh.c.file).where(sh.c.grp.in_(grps))).scalars().all()
            victims = conn.execute(select(rt.c.run_id, rt.c.sweep_id, rt.c.status, rt.c.shard)
                                   .where(rt.c.shard.in_(grps))).all()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        for rel in files:
            src = self.root / rel
            if src.exists():
                dst = self.out_dir / QUARANTINE / stamp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        for sid in {v[1] for v in victims}:
            self._sweep(sid)  # loaded before the transaction, which holds the write lock
        with self.engine.begin() as conn:
            self._delete_runs(conn, {rid: (sid, st, g) for rid, sid, st, g in victims})
            conn.execute(sh.delete().where(sh.c.grp.in_(grps)))
        per_grp: dict[str, int] = {}
        for _, _, _, g in victims:
            per_grp[g] = per_grp.get(g, 0) + 1
        return [(f, bad[f], per_grp.get(g, 0)) for f, g, _ in hit]

    # ------------------------------------------------------------------ batches

    def write_batch(self, sweep_id: str, runs: Sequence[RunInfo], result: "BatchResult",
                    lane_index: Sequence[int] | None = None) -> list[str]:
        """Atomically store ``runs[i]`` with lane ``lane_index[i]`` (default ``i``) of ``result``.

        A ``run_id`` already committed with status ``failed`` is replaced (a
        retry); one committed ``ok`` is skipped; a run is never duplicated.
        Either every row of the batch becomes visible (SQL and Parquet) or none.
        Returns the run_ids skipped as already stored.
        """
        if lane_index is None:
            lane_index = list(range(len(runs)))
        if len(lane_index) != len(runs):
            raise ValueError(f"{len(runs)} runs but {len(lane_index)} lane indices")
        if any(not 0 <= i < result.n for i in lane_index):
            raise ValueError(f"lane index out of range for a result of {result.n} lanes")
        ids = [r.run_id for r in runs]
        if len(set(ids)) != len(ids):
            raise ValueError("a run_id appears twice in one batch")
        if not runs:
            return []
        with storage_errors(self.out_dir):
            for attempt in range(3):
                try:
                    return self._write_batch(sweep_id, runs, result, lane_index, ids)
                except _Changed:  # another writer stored some of these runs: decide again
                    pass
            raise ScenarioError(f"other writers keep storing runs of this batch in {self.url}",
                                hint="run one sweep per database at a time")

    def _write_batch(self, sweep_id: str, runs: Sequence[RunInfo], result: "BatchResult",
                     lane_index: Sequence[int], ids: list[str]) -> list[str]:
        import numpy as np

        st = self._sweep(sweep_id)
        existing = self._existing(ids)  # run_id -> (sweep_id, status, shard)
        keep = [k for k, rid in enumerate(ids) if existing.get(rid, (None, "failed"))[1] != "ok"]
        already = [rid for rid in ids if existing.get(rid, (None, "failed"))[1] == "ok"]
        if not keep:
            return already
        runs = [runs[k] for k in keep]
        lanes = np.asarray([lane_index[k] for k in keep], dtype=np.int64)
        replaced = {r.run_id: existing[r.run_id] for r in runs if r.run_id in existing}

        flat = result.flat_columns()
        scalars = {k: v for k, v in flat.items() if np.ndim(v) == 1}
        arrays = {k: v for k, v in flat.items() if np.ndim(v) >= 2}
        ddl = self._plan_columns(st, runs, scalars)
        cols = {**st.cols, **{c.name: c for c in ddl}}
        data = self._data_columns(cols, runs, result, lanes, scalars)
        grp = self._next_grp()
        renamed = {old: self._next_grp() for old in sorted({v[2] for v in replaced.values() if v[2]})}
        tables = {"runs": self._arrow(st.sweep_id, cols, data, runs)}
        series_rows = series_long(runs, result, lanes)
        if series_rows is not None:
            tables["series"] = series_rows
        arr_rows = arrays_long(runs, arrays, lanes)
        if arr_rows is not None:
            tables["metric_arrays"] = arr_rows

        # 0. announce the groups: their temps are this database's until committed
        groups = [grp, *renamed.values()]
        si = self.t["shard_intents"]
        with self.engine.begin() as conn:
            conn.execute(si.insert(), [dict(name=g, kind="grp") for g in groups])
        new_files = {ds: shards.final_rel(ds, sweep_id, grp) for ds in tables}
        written: list[str] = []
        try:
            # 1. temp files, fsynced
            digests = {}
            for ds, tbl in tables.items():
                written.append(new_files[ds])
                digests[new_files[ds]] = shards.write_temp(self.root, new_files[ds], tbl)
            rewritten, dead = self._rewrite_replaced(replaced, renamed, written, digests)

            # 2. one transaction, which first checks that what it replaces is still there
            with self.engine.begin() as conn:
                if self._existing(ids, conn) != existing:
                    raise _Changed()
                if ddl:
                    self._apply_ddl(conn, st, ddl)
                self._delete_runs(conn, replaced)
                self._insert_all(conn, st, sweep_id, grp, runs, data, tables, new_files,
                                 rewritten, dead, digests)
                conn.execute(si.delete().where(si.c.name.in_(groups)))
                if dead:
                    conn.execute(si.insert(), [dict(name=f, kind="file") for f in dead])
        except BaseException:
            for rel in written:
                shards.temp_path(self.root, rel).unlink(missing_ok=True)
            self._sweeps.pop(sweep_id, None)  # the DDL may have been rolled back
            try:
                with self.engine.begin() as conn:
                    conn.execute(si.delete().where(si.c.name.in_(groups)))
            except Exception:  # noqa: BLE001 - the next open forgets them
                pass
            raise
        # 3. publish: stale files first, so a reader never sees a run twice
        shards.remove(self.root, dead)
        shards.publish(self.root, [f for g in rewritten.values() for f, _ in g[1]])
        shards.publish(self.root, new_files.values())
        if dead:
            with self.engine.begin() as conn:
                conn.execute(si.delete().where(si.c.name.in_(dead)))
        return already

    def stored_status(self, sweep_id: str, run_ids: Sequence[str]) -> dict[str, str]:
        """``{run_id: 'ok' | 'failed'}`` of those of ``run_ids`` committed for ``sweep_id``
        (a resume asks this per chunk of planned runs, not for the whole sweep)."""
        return {rid: status for rid, (sid, status, _) in self._existing(list(run_ids)).items()
                if sid == sweep_id}

    def _existing(self, ids: list[str], conn: Any = None) -> dict[str, tuple[str, str, str]]:
        from sqlalchemy import select

        if conn is None:
            with self.engine.connect() as c:
                return self._existing(ids, c)
        r = self.t["runs"]
        out = {}
        for i in range(0, len(ids), _CHUNK):
            q = select(r.c.run_id, r.c.sweep_id, r.c.status, r.c.shard).where(
                r.c.run_id.in_(ids[i:i + _CHUNK]))
            for rid, sid, status, shard in conn.execute(q):
                out[rid] = (sid, status, shard)
        return out

    def _plan_columns(self, st: _Sweep, runs: Sequence[RunInfo],
                      scalars: dict[str, Any]) -> list[_Col]:
        """Columns this batch needs that the sweep's table lacks (added to ``st``)."""
        from irqlab.results.units import metric_info, param_unit

        new: list[_Col] = []
        if not st.cols:
            for name, typ in RUN_TYPES.items():
                new.append(_Col(name, "run", name, typ, "s" if name == "wall_s" else "",
                                RUN_DOCS[name]))
        metric_names = {}
        for flat in scalars:
            if ("metric", flat) not in st.by_path:
                metric_names[flat] = naming.metric_column(flat)
        paths = list(dict.fromkeys([*st.param_paths, *(p for r in runs for p in r.params)]))
        new_paths = [p for p in paths if ("param", p) not in st.by_path]
        if new_paths:
            taken = set(st.cols) | set(metric_names.values()) | {c.name for c in new}
            taken -= {c for (role, _), c in st.by_path.items() if role == "param"}
            mapping = naming.param_columns(paths, taken)
            used = {c.lower() for c in st.cols} | {c.name.lower() for c in new}
            for p in new_paths:
                name = mapping[p]
                while name.lower() in used:
                    name = "param_" + naming.sanitize(p) if not name.startswith("param_") \
                        else name + "_"
                used.add(name.lower())
                typ = param_kind([r.params.get(p) for r in runs])
                unit = st.param_units.get(p, param_unit(p) if typ == "float" else "")
                new.append(_Col(name, "param", p, typ, unit, "parameter " + p))
        used = {c.lower() for c in st.cols} | {c.name.lower() for c in new}
        for flat, name in metric_names.items():
            while name.lower() in used:
                name += "_"
            used.add(name.lower())
            typ, unit, doc = metric_info(flat, np_kind(scalars[flat]))
            new.append(_Col(name, "metric", flat, typ, unit, doc))
        return new

    def _apply_ddl(self, conn: Any, st: _Sweep, new: list[_Col]) -> None:
        from sqlalchemy.schema import CreateTable

        from irqlab.results.schema import data_table_def, sql_type

        name = naming.data_table(st.no)
        first = not st.cols
        base = len(st.cols)
        for c in new:
            st.cols[c.name] = c
            st.by_path[(c.role, c.path)] = c.name
        st.table = data_table_def(name, [(c.name, c.type) for c in st.cols.values()])
        if first:
            conn.execute(CreateTable(st.table))
        else:
            prep = conn.dialect.identifier_preparer
            for c in new:
                coltype = sql_type(c.type).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {prep.quote(name)} ADD COLUMN "
                                     f"{prep.quote(c.name)} {coltype}")
        sc = self.t["sweep_columns"]
        conn.execute(sc.insert(), [
            dict(sweep_id=st.sweep_id, column_name=c.name, ordinal=base + k, role=c.role,
                 path=c.path, type=c.type, unit=c.unit, description=c.doc,
                 **device_parts(c))
            for k, c in enumerate(new)])
        from irqlab.results.views import refresh_views

        refresh_views(conn, st.sweep_id)

    def _data_columns(self, cols: dict[str, _Col], runs: Sequence[RunInfo],
                      result: "BatchResult", lanes: Any, scalars: dict[str, Any]
                      ) -> dict[str, Any]:
        """``{column: numpy array or list}`` of the wide rows, in table column order."""
        import numpy as np

        out: dict[str, Any] = {}
        for name, c in cols.items():
            if c.role == "run":
                if name == "run_id":
                    out[name] = [r.run_id for r in runs]
                elif name == "point":
                    out[name] = np.array([r.point for r in runs], np.int64)
                elif name == "replication":
                    out[name] = np.array([r.replication for r in runs], np.int64)
                elif name == "seed":
                    out[name] = [str(int(r.seed)) for r in runs]
                elif name == "spawn_key":
                    out[name] = ["[" + ", ".join(str(int(x)) for x in r.spawn_key) + "]"
                                 for r in runs]
                elif name == "status":
                    out[name] = [result.status[i] for i in lanes.tolist()]
                elif name == "error":
                    out[name] = [result.error[i] for i in lanes.tolist()]
                elif name == "wall_s":
                    out[name] = np.array([r.wall_s for r in runs], np.float64)
            elif c.role == "param":
                out[name] = param_values([r.params.get(c.path) for r in runs], c.type, c.path)
            else:
                arr = scalars.get(c.path)
                if arr is None:
                    out[name] = [None] * len(runs)
                else:
                    arr = np.asarray(arr)[lanes]
                    out[name] = arr.astype({"float": np.float64, "int": np.int64,
                                            "bool": np.bool_}[c.type], copy=False)
        return out

    def _arrow(self, sweep_id: str, cols: dict[str, _Col], data: dict[str, Any],
               runs: Sequence[RunInfo]) -> Any:
        """The runs shard of a batch. A numeric parameter's field metadata also says which
        rows were given as integers (``ints``: ``all``, or their run ids), so that
        ``irqlab rebuild`` restores ``runs.params`` exactly."""
        import pyarrow as pa

        from irqlab.results.schema import arrow_type

        fields, arrays = [], []
        for name, col in data.items():
            c = cols[name]
            meta = {"role": c.role, "path": c.path, "type": c.type, "unit": c.unit}
            if c.role == "param" and c.type == "float":
                meta["ints"] = int_rows([r.params.get(c.path) for r in runs],
                                         [r.run_id for r in runs])
            fields.append(pa.field(name, arrow_type(c.type), metadata=meta))
            arrays.append(pa.array(col, type=arrow_type(c.type), from_pandas=True)
                          if c.type == "float" and not isinstance(col, list)
                          else pa.array(col, type=arrow_type(c.type)))
        schema = pa.schema(fields, metadata={"irqlab.sweep_id": sweep_id,
                                             "irqlab.schema_version": SCHEMA_VERSION})
        return pa.Table.from_arrays(arrays, schema=schema)

    def _rewrite_replaced(self, replaced: dict[str, tuple[str, str, str]],
                          renamed: dict[str, str], written: list[str],
                          digests: dict[str, tuple[int, str]]
                          ) -> tuple[dict[str, tuple[str, list[tuple[str, int]]]], list[str]]:
        """For retried runs: rewrite their old shard groups ``renamed[old]`` without them.

        Returns ``({old_grp: (new_grp, [(new file, rows)])}, [old files])``; the new
        files are written as temps (appended to ``written``, digests in ``digests``).
        """
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        from sqlalchemy import select

        if not replaced:
            return {}, []
        drop = list(replaced)
        sh = self.t["shards"]
        rewritten: dict[str, tuple[str, list[tuple[str, int]]]] = {}
        dead: list[str] = []
        with self.engine.connect() as conn:
            rows = conn.execute(select(sh.c.file, sh.c.grp, sh.c.sweep_id, sh.c.dataset)
                                .where(sh.c.grp.in_(list(renamed)))).all()
        for old, new_grp in renamed.items():
            files = []
            for file, _g, sid, ds in (r for r in rows if r[1] == old):
                dead.append(file)
                tbl = pq.read_table(self.root / file)
                tbl = tbl.filter(pc.invert(pc.is_in(tbl["run_id"], value_set=pa_strings(drop))))
                if tbl.num_rows:
                    rel = shards.final_rel(ds, sid, new_grp)
                    written.append(rel)
                    digests[rel] = shards.write_temp(self.root, rel, tbl)
                    files.append((rel, tbl.num_rows))
            rewritten[old] = (new_grp, files)
        return rewritten, dead

    def _delete_runs(self, conn: Any, replaced: dict[str, tuple[str, str, str]]) -> None:
        if not replaced:
            return
        by_sweep: dict[str, list[str]] = {}
        for rid, (sid, _, _) in replaced.items():
            by_sweep.setdefault(sid, []).append(rid)
        for sid, rids in by_sweep.items():
            st = self._sweep(sid)
            tables = [self.t["runs"], self.t["series"], self.t["metric_arrays"]]
            if st.table is not None:
                tables.append(st.table)
            for i in range(0, len(rids), _CHUNK):
                chunk = rids[i:i + _CHUNK]
                for t in tables:
                    conn.execute(t.delete().where(t.c.run_id.in_(chunk)))

    def _insert_all(self, conn: Any, st: _Sweep, sweep_id: str, grp: str,
                    runs: Sequence[RunInfo], data: dict[str, Any], tables: dict[str, Any],
                    new_files: dict[str, str],
                    rewritten: dict[str, tuple[str, list[tuple[str, int]]]],
                    dead: list[str], digests: dict[str, tuple[int, str]]) -> None:
        sh, rt = self.t["shards"], self.t["runs"]
        created = now_iso()
        if dead:
            for i in range(0, len(dead), _CHUNK):
                conn.execute(sh.delete().where(sh.c.file.in_(dead[i:i + _CHUNK])))
        shard_rows = []
        for old, (new_grp, files) in rewritten.items():
            conn.execute(rt.update().where(rt.c.shard == old).values(shard=new_grp))
            for rel, rows in files:
                ds = rel.split("/", 1)[0]
                shard_rows.append(dict(file=rel, grp=new_grp, sweep_id=rel.split("/")[1][9:],
                                       dataset=ds, rows=rows, created_at=created,
                                       bytes=digests[rel][0], sha256=digests[rel][1]))
        for ds, rel in new_files.items():
            shard_rows.append(dict(file=rel, grp=grp, sweep_id=sweep_id, dataset=ds,
                                   rows=tables[ds].num_rows, created_at=created,
                                   bytes=digests[rel][0], sha256=digests[rel][1]))
        conn.execute(sh.insert(), shard_rows)

        n = len(runs)
        ev = st.by_path.get(("metric", "events"))
        tr = st.by_path.get(("metric", "truncated"))
        run_cols = {
            "run_id": data["run_id"], "sweep_id": [sweep_id] * n,
            "point": data["point"], "replication": data["replication"], "seed": data["seed"],
            "spawn_key": data["spawn_key"], "status": data["status"], "error": data["error"],
            "wall_s": data["wall_s"],
            "events": data[ev] if ev else [None] * n,
            "truncated": data[tr] if tr else [None] * n,
            "params": [params_json(r.params) for r in runs],
            "shard": [grp] * n,
        }
        bulk_insert(conn, rt, run_cols)
        bulk_insert(conn, st.table, data)
        if "series" in tables:
            cols = tables["series"].to_pydict()
            cols["sweep_id"] = [sweep_id] * tables["series"].num_rows
            bulk_insert(conn, self.t["series"], cols)
        if "metric_arrays" in tables:
            cols = tables["metric_arrays"].to_pydict()
            cols["sweep_id"] = [sweep_id] * tables["metric_arrays"].num_rows
            bulk_insert(conn, self.t["metric_arrays"], cols)

