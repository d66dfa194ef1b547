"""``irqlab verify``: check a results directory's SQL rows against its Parquet files.

Read-only: the database is opened through :func:`irqlab.results.db.reader_engine`
and the files are only read (each in bounded chunks). What is checked:

* the SQLite file itself (``PRAGMA integrity_check``);
* every committed shard (a row of ``shards``): the file exists, has the size
  and SHA-256 recorded at its commit, and holds the recorded number of rows;
  a ``runs`` shard holds exactly the runs SQL assigns to its group;
* per sweep and dataset, the rows in SQL equal the rows in Parquet;
* no Parquet file in the dataset is unknown to the database (its rows would be
  read by pyarrow or DuckDB but are not in SQL).

Each problem names its file and the runs in it. ``repair`` (``--repair``)
takes the groups of missing or corrupt shards out of the results (files moved
to ``quarantine/``), so the next run of each sweep runs exactly those runs again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irqlab.results import shards

#: problems that a repair can mend by running the runs again
REPAIRABLE = ("missing", "corrupt")


@dataclass
class Problem:
    """One finding: ``kind`` is missing | corrupt | mismatch | unknown | database."""

    kind: str
    file: str | None
    detail: str
    runs: list[str] = field(default_factory=list)

    def format(self, limit: int = 5) -> str:
        what = f"{self.kind} {self.file}" if self.file else self.kind
        text = f"{what}: {self.detail}"
        if self.runs:
            shown = ", ".join(self.runs[:limit])
            more = f", ... {len(self.runs) - limit} more" if len(self.runs) > limit else ""
            text += f" ({len(self.runs)} runs: {shown}{more})"
        return text


@dataclass
class Report:
    """What :func:`verify` checked and found."""

    shards: int = 0
    runs: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _rows(conn: Any, sql: str) -> list[tuple]:
    from sqlalchemy import text

    return [tuple(r) for r in conn.execute(text(sql)).all()]


def verify(out_dir: str | os.PathLike, db_url: str | None = None) -> Report:
    """Check ``out_dir`` (its ``results.db``, or the database at ``db_url``) against its
    Parquet files; see the module docstring. Never writes."""
    import pyarrow.parquet as pq

    from irqlab.results.db import database_error, open_errors, reader_engine

    out = Path(out_dir)
    root = out / "parquet"
    target = db_url or str(out)
    try:
        engine = reader_engine(target)
        conn = engine.connect()
    except open_errors() as e:
        raise database_error(target, e) from None
    rep = Report()
    try:
        with conn:
            if conn.dialect.name == "sqlite":
                res = _rows(conn, "PRAGMA integrity_check")
                if res != [("ok",)]:
                    rep.problems.append(Problem("database", None, "integrity_check: " +
                                                "; ".join(str(r[0]) for r in res[:5])))
            cols = {r[1] for r in _rows(conn, "SELECT * FROM pragma_table_info('shards')")} \
                if conn.dialect.name == "sqlite" else {"bytes", "sha256"}
            digest = "bytes, sha256" if {"bytes", "sha256"} <= cols else "NULL, NULL"
            shard_rows = _rows(conn, f"SELECT file, grp, sweep_id, dataset, rows, {digest} "
                                     "FROM shards ORDER BY file")
            by_grp: dict[str, list[str]] = {}
            for grp, rid in _rows(conn, "SELECT shard, run_id FROM runs"):
                by_grp.setdefault(grp, []).append(rid)
            sql_counts = {}
            for ds in shards.DATASETS:
                for sid, n in _rows(conn, f"SELECT sweep_id, count(*) FROM {ds} GROUP BY sweep_id"):
                    sql_counts[(ds, sid)] = n
            wide = _rows(conn, "SELECT sweep_id, data_table FROM sweeps")
            for sid, table in wide:
                q = conn.dialect.identifier_preparer.quote
                try:
                    n = _rows(conn, f"SELECT count(*) FROM {q(table)}")[0][0]
                except Exception:  # noqa: BLE001 - a sweep without runs has no table yet
                    continue
                if n != sql_counts.get(("runs", sid), 0):
                    rep.problems.append(Problem("mismatch", None, f"sweep {sid}: {table} has "
                                                f"{n} rows, runs {sql_counts.get(('runs', sid), 0)}"))
            running = _rows(conn, "SELECT sweep_id FROM sweeps WHERE status = 'running'")
    finally:
        engine.dispose()

    rep.runs = sum(len(v) for v in by_grp.values())
    rep.shards = len(shard_rows)
    pq_counts: dict[tuple[str, str], int] = {}
    grp_has_runs_file = set()
    for file, grp, sid, ds, nrows, size, sha in shard_rows:
        runs = sorted(by_grp.get(grp, []))
        path = root / file
        if ds == "runs":
            grp_has_runs_file.add(grp)
        try:
            st = path.lstat()
        except FileNotFoundError:
            rep.problems.append(Problem("missing", file, "the file is not there", runs))
            continue
        if not path.is_file() or path.is_symlink():
            rep.problems.append(Problem("corrupt", file, "not a regular file", runs))
            continue
        if size is not None and st.st_size != size:
            rep.problems.append(Problem("corrupt", file, f"{st.st_size} bytes, {size} committed",
                                        runs))
            continue
        if sha is not None and shards.file_digest(path)[1] != sha:
            rep.problems.append(Problem("corrupt", file, "SHA-256 differs from the one committed",
                                        runs))
            continue
        try:
            meta = pq.read_metadata(path)
            if meta.num_rows != nrows:
                raise ValueError(f"{meta.num_rows} rows, {nrows} committed")
            if ds == "runs":
                ids = pq.read_table(path, columns=["run_id"])["run_id"].to_pylist()
                if sorted(ids) != runs:
                    rep.problems.append(Problem(
                        "mismatch", file, f"holds {len(ids)} runs, SQL assigns {len(runs)} "
                        f"to its group {grp}", sorted(set(ids) ^ set(runs))))
        except Exception as e:  # noqa: BLE001 - any unreadable file is corrupt
            rep.problems.append(Problem("corrupt", file, f"unreadable: {e}", runs))
            continue
        pq_counts[(ds, sid)] = pq_counts.get((ds, sid), 0) + nrows
    for grp, runs in sorted(by_grp.items()):
        if grp not in grp_has_runs_file:
            rep.problems.append(Problem("missing", None, f"no runs shard of group {grp} is "
                                        "committed", sorted(runs)))
    for key in sorted(set(sql_counts) | set(pq_counts)):
        a, b = sql_counts.get(key, 0), pq_counts.get(key, 0)
        if a != b and not any(p.kind in REPAIRABLE for p in rep.problems):
            rep.problems.append(Problem("mismatch", None, f"{key[0]} of sweep {key[1]}: "
                                        f"{a} rows in SQL, {b} in Parquet"))
    live = {r[0] for r in shard_rows}
    for ds in shards.DATASETS:
        base = root / ds
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*.parquet")):
            rel = str(p.relative_to(root))
            if p.name.startswith("."):
                continue
            if rel not in live:
                rep.problems.append(Problem("unknown", rel, "a Parquet file the database does "
                                            "not list (readers of the dataset see its rows)"))
        for p in sorted(base.rglob(f".*{shards.TMP_SUFFIX}")):
            rep.notes.append(f"uncommitted temp file {p.relative_to(root)} (never read)")
    for (sid,) in running:
        rep.notes.append(f"sweep {sid} is marked running")
    return rep


def repair(out_dir: str | os.PathLike, report: Report, db_url: str | None = None
           ) -> list[tuple[str, str, int]]:
    """Take the shard groups of the missing and corrupt files in ``report`` out of the
    results (:meth:`ResultStore.drop_groups`); their runs run again on the next resume."""
    from irqlab.results.store import ResultStore

    bad = {p.file: p.kind for p in report.problems if p.kind in REPAIRABLE and p.file}
    with ResultStore(out_dir, db_url) as store:
        return store.drop_groups(bad)
