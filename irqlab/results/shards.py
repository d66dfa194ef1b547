"""Parquet shards written atomically: write to a hidden temp name, fsync, commit in SQL,
then rename.

Layout under the Parquet root (``out_dir/parquet``)::

    runs/sweep_id=<id>/<grp>.parquet       wide rows, one per run (= sweep_<no>_data)
    series/sweep_id=<id>/<grp>.parquet     long time series (optional)
    metric_arrays/sweep_id=<id>/<grp>.parquet
    sweeps/sweep_id=<id>/sweep.parquet     the sweep's provenance row

A shard group ``grp`` (``part-<seq>-<random>``) holds the rows of one
``write_batch`` in each dataset. Temp files are ``.<grp>.parquet.tmp``: a
leading dot and another suffix, so pyarrow, DuckDB and polars never read them.
The SQL ``shards`` table is the truth: a file is live iff it has a row there
(with its size and SHA-256, recorded at the commit).

Ownership: before a writer writes a group's temp files it commits the group's
name to ``shard_intents`` (kind ``grp``); a file it will delete after a commit
is named there in the commit itself (kind ``file``). Recovery removes only
files an intent names, so Parquet that another database (or a lost one)
committed is never deleted: it is reported and left in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

DATASETS = ("runs", "series", "metric_arrays")
TMP_SUFFIX = ".tmp"


def final_rel(dataset: str, sweep_id: str, grp: str) -> str:
    """The live file of a group in a dataset, relative to the Parquet root."""
    return f"{dataset}/sweep_id={sweep_id}/{grp}.parquet"


def temp_path(root: Path, rel: str) -> Path:
    """The hidden temp file that becomes ``rel`` when renamed."""
    p = root / rel
    return p.with_name("." + p.name + TMP_SUFFIX)


def fsync_dir(path: Path) -> None:
    """Make renames and unlinks in ``path`` durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def grp_of(rel: str) -> str:
    """The shard group of a live file's relative path (``.../<grp>.parquet``)."""
    return rel.rsplit("/", 1)[-1][:-len(".parquet")]


def write_temp(root: Path, rel: str, table: Any) -> tuple[int, str]:
    """Write ``table`` to the temp file of ``rel`` and fsync it; return ``(bytes, sha256)``
    of what was written."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue()
    tmp = temp_path(root, rel)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return data.size, hashlib.sha256(data).hexdigest()


def file_digest(path: Path, chunk: int = 1 << 20) -> tuple[int, str]:
    """``(bytes, sha256)`` of a file, read in chunks (bounded memory)."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            n += len(b)
            h.update(b)
    return n, h.hexdigest()


def publish(root: Path, rels: Iterable[str]) -> None:
    """Rename each committed temp file to its final name (idempotent)."""
    dirs = set()
    for rel in rels:
        tmp = temp_path(root, rel)
        if tmp.exists():
            os.replace(tmp, root / rel)
            dirs.add((root / rel).parent)
    for d in dirs:
        fsync_dir(d)


def remove(root: Path, rels: Iterable[str]) -> None:
    """Delete live files that are no longer in the ``shards`` table."""
    dirs = set()
    for rel in rels:
        p = root / rel
        if p.exists():
            p.unlink()
            dirs.add(p.parent)
    for d in dirs:
        fsync_dir(d)


def write_replace(path: Path, table: Any) -> None:
    """Write a small file (a sweep's provenance) by temp + fsync + atomic rename."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + f".{os.getpid()}" + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def recover(root: Path, live: dict[str, int | None], intended_grps: set[str],
            doomed: set[str], own_sweeps: set[str]) -> dict[str, list[str]]:
    """Bring the files in line with the committed state after a crash.

    ``live``: committed files -> recorded size (None if unknown);
    ``intended_grps``: groups whose temps this database's writer announced
    (uncommitted unless live); ``doomed``: files a commit replaced, to delete;
    ``own_sweeps``: sweep ids of this database (their provenance temps are its own).

    A live file whose temp exists but final does not is renamed; a temp of an
    intended group that is not live is deleted (its transaction never
    committed); a doomed file is deleted. Anything else is left where it is
    and listed under ``unknown``. Also returns the live files that are missing
    and those whose size differs from the recorded one (``damaged``).
    """
    done: dict[str, list[str]] = {"published": [], "deleted_temp": [], "deleted_stale": [],
                                  "unknown": [], "missing": [], "damaged": []}
    for ds in (*DATASETS, "sweeps"):
        base = root / ds
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            if p.is_symlink() or not p.is_file():
                continue
            name = p.name
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                if ds == "sweeps":
                    if p.parent.name.removeprefix("sweep_id=") in own_sweeps:
                        p.unlink()
                        done["deleted_temp"].append(str(p.relative_to(root)))
                    else:
                        done["unknown"].append(str(p.relative_to(root)))
                    continue
                rel = str(p.with_name(name[1:-len(TMP_SUFFIX)]).relative_to(root))
                if rel in live and not (root / rel).exists():
                    os.replace(p, root / rel)
                    done["published"].append(rel)
                elif rel not in live and grp_of(rel) in intended_grps:
                    p.unlink()
                    done["deleted_temp"].append(rel)
                else:
                    done["unknown"].append(str(p.relative_to(root)))
            elif ds != "sweeps" and name.endswith(".parquet") and not name.startswith("."):
                rel = str(p.relative_to(root))
                if rel in live:
                    continue
                if rel in doomed:
                    p.unlink()
                    done["deleted_stale"].append(rel)
                else:
                    done["unknown"].append(rel)
    for rel, size in sorted(live.items()):
        try:
            st = os.stat(root / rel)
        except FileNotFoundError:
            done["missing"].append(rel)
            continue
        if size is not None and st.st_size != size:
            done["damaged"].append(rel)
    return done
