"""Results store throughput: write N run rows through ResultStore, then answer a grouped query.

    .venv/bin/python benchmarks/bench_results.py [--runs 1000000] [--batch 10000]

Prints, with machine and versions:
  * store write: ResultStore.write_batch for every batch (Parquet shard + one SQLite
    transaction each, fsync, WAL), against two baselines measured in the same run:
    a raw pyarrow write of the same rows as one table, and a raw sqlite3 executemany of
    the same wide rows into a bare table (no views, no fsync per batch);
  * grouped query: ``SELECT threshold, delay, avg(time_to_l2_progress_ns) FROM sweep_1
    GROUP BY 1, 2`` through ``irqlab query``'s read-only paths: ``--engine sqlite`` (the
    SQLite wide view) and ``--engine duckdb`` (DuckDB over the live Parquet files, with the
    session's set-up of views and lock-down included), and, as a baseline, DuckDB straight
    over the Parquet files.
Rows: 1 device, 2 swept parameters, every built-in metric (~50 columns a row).
"""

from __future__ import annotations

import argparse
import math
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from irqlab.results.store import ResultStore, RunInfo  # noqa: E402
from tests.results.results_helpers import make_result, sweep_info  # noqa: E402
from machine import describe  # benchmarks/machine.py

THRESHOLDS = [10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000, 300000]
DELAYS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
PATHS = ("mitigation.qemu_eoi_throttle.threshold", "mitigation.qemu_eoi_throttle.delay")
QUERY = ("SELECT threshold, delay, avg(time_to_l2_progress_ns) FROM {t} GROUP BY 1, 2")


def runs_for(start: int, n: int) -> list[RunInfo]:
    pts = len(THRESHOLDS) * len(DELAYS)
    out = []
    for k in range(start, start + n):
        point, rep = k % pts, k // pts
        out.append(RunInfo(f"run{k:08d}", point, rep, 1000 + k, (point, rep),
                           {PATHS[0]: THRESHOLDS[point % len(THRESHOLDS)],
                            PATHS[1]: DELAYS[point // len(THRESHOLDS)]}, 0.001))
    return out


def versions() -> str:
    import duckdb
    import pyarrow
    import sqlalchemy

    return (f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
            f"pyarrow {pyarrow.__version__}, sqlalchemy {sqlalchemy.__version__}, "
            f"duckdb {duckdb.__version__}, numpy {np.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--out", help="directory to write (default: a temporary one, removed)")
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_results_"))
    try:
        run(args.runs, args.batch, out)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)


def run(n: int, batch: int, out: Path) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from irqlab.results.duckdb_engine import run_duckdb
    from irqlab.results.query import run_query

    print(f"machine: {describe()}")
    print(f"versions: {versions()}")
    print(f"rows: {n:,} runs in batches of {batch:,}; output {out}")
    result = make_result(batch)

    # ---- store write
    t_store = 0.0
    with ResultStore(out / "store") as store:
        store.begin_sweep(sweep_info("bench", "bench", n))
        for start in range(0, n, batch):
            k = min(batch, n - start)
            runs = runs_for(start, k)  # building the inputs is not timed
            t0 = time.perf_counter()
            store.write_batch("bench", runs, result, lane_index=list(range(k)))
            t_store += time.perf_counter() - t0
        store.finish_sweep("bench", "now", "done")
    db_mb = (out / "store" / "results.db").stat().st_size / 2**20
    pq_mb = sum(p.stat().st_size for p in (out / "store" / "parquet").rglob("*.parquet")) / 2**20

    # ---- baselines on the same rows (read back from the store's own shards)
    import pyarrow.dataset as ds

    table = ds.dataset(out / "store" / "parquet" / "runs" / "sweep_id=bench").to_table()
    t0 = time.perf_counter()
    pq.write_table(table, out / "raw.parquet", compression="zstd")
    t_pa = time.perf_counter() - t0

    cols = table.column_names
    raw = sqlite3.connect(out / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute(f"CREATE TABLE t ({', '.join(chr(34) + c + chr(34) for c in cols)})")
    t0 = time.perf_counter()
    raw.execute("BEGIN")
    for b in table.to_batches(max_chunksize=batch):
        pyd = b.to_pydict()
        raw.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(cols))})",
                        zip(*(pyd[c] for c in cols)))
    raw.execute("COMMIT")
    t_sqlite = time.perf_counter() - t0
    raw.close()

    # ---- grouped query
    target = str(out / "store")
    run_query(target, "SELECT count(*) FROM sweep_1")  # open once (page cache warm-up)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = run_query(target, QUERY.format(t="sweep_1"))
        times.append(time.perf_counter() - t0)
    t_q = min(times)
    glob = str(out / "store" / "parquet" / "runs" / "*" / "*.parquet")
    dtimes = []
    for _ in range(3):
        t0 = time.perf_counter()
        drows = duckdb.sql(QUERY.format(t=f"read_parquet('{glob}')")).fetchall()
        dtimes.append(time.perf_counter() - t0)
    t_dq = min(dtimes)
    etimes = []
    for _ in range(3):
        t0 = time.perf_counter()
        erows = run_duckdb(target, QUERY.format(t="sweep_1")).rows
        etimes.append(time.perf_counter() - t0)
    t_eq = min(etimes)
    assert len(res.rows) == len(drows) == len(erows) == len(THRESHOLDS) * len(DELAYS)
    for a, b in zip(sorted(res.rows), sorted(erows)):  # the same answer, up to summation order
        assert a[:2] == b[:2] and math.isclose(a[2], b[2], rel_tol=1e-9), (a, b)

    print()
    print(f"{'what':58} {'seconds':>9} {'rows/s':>12}")
    print(f"{'store write (ResultStore.write_batch, SQL + Parquet)':58} {t_store:9.2f} "
          f"{n / t_store:12,.0f}")
    print(f"{'  baseline: raw pyarrow write_table of the same rows':58} {t_pa:9.2f} "
          f"{n / t_pa:12,.0f}")
    print(f"{'  baseline: raw sqlite3 executemany of the same rows':58} {t_sqlite:9.2f} "
          f"{n / t_sqlite:12,.0f}")
    print(f"{'grouped query, irqlab query --engine sqlite (SQLite view)':58} {t_q:9.2f}")
    print(f"{'grouped query, irqlab query --engine duckdb (Parquet)':58} {t_eq:9.2f}")
    print(f"{'  baseline: bare DuckDB over the Parquet files':58} {t_dq:9.2f}")
    print()
    print(f"ratio store write / raw pyarrow write: {t_store / t_pa:.1f}x")
    print(f"ratio store write / raw sqlite3 insert: {t_store / t_sqlite:.2f}x")
    print(f"ratio --engine sqlite / --engine duckdb (grouped query): {t_q / t_eq:.1f}x")
    print(f"ratio --engine duckdb / bare DuckDB (session set-up cost): {t_eq / t_dq:.1f}x")
    print(f"sizes: results.db {db_mb:.0f} MiB, Parquet {pq_mb:.0f} MiB; "
          f"{len(table.column_names)} columns a row")
    print(f"targets: write under 60 s -> {'met' if t_store < 60 else 'MISSED'}; "
          f"query about 1 s -> {t_q:.2f} s")
    del pa


if __name__ == "__main__":
    main()
