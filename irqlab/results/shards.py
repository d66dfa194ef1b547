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
The SQL ``shards`` table is the truth: a file is live iff it has a row there.
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


def write_temp(root: Path, rel: str, table: Any) -> Path:
    """Write ``table`` to the temp file of ``rel`` and fsync it; return the temp path."""
    import pyarrow.parquet as pq

    tmp = temp_path(root, rel)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    return tmp


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
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def recover(root: Path, live: set[str]) -> dict[str, list[str]]:
    """Bring the files in line with the committed ``live`` set after a crash.

    A live file whose temp exists but final does not is renamed; a temp that
    is not live is deleted (its transaction never committed); a final
    ``part-*.parquet`` that is not live is deleted (superseded by a retry).
    Returns what was done, by action, and the live files that are missing.
    """
    done: dict[str, list[str]] = {"published": [], "deleted_temp": [], "deleted_stale": [],
                                  "missing": []}
    for ds in (*DATASETS, "sweeps"):
        base = root / ds
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            if not p.is_file():
                continue
            name = p.name
            if name.startswith(".") and name.endswith(TMP_SUFFIX):
                if ds == "sweeps":
                    p.unlink()
                    done["deleted_temp"].append(str(p.relative_to(root)))
                    continue
                rel = str(p.with_name(name[1:-len(TMP_SUFFIX)]).relative_to(root))
                if rel in live and not (root / rel).exists():
                    os.replace(p, root / rel)
                    done["published"].append(rel)
                else:
                    p.unlink()
                    done["deleted_temp"].append(rel)
            elif ds != "sweeps" and name.startswith("part-") and name.endswith(".parquet"):
                rel = str(p.relative_to(root))
                if rel not in live:
                    p.unlink()
                    done["deleted_stale"].append(rel)
    done["missing"] = sorted(r for r in live if not (root / r).exists())
    return done
