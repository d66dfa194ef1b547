"""The result schema: SQL tables (SQLAlchemy Core) and the matching Arrow types.

Fixed tables, the same for every sweep (documented in ``docs/results.md``):

``sweeps``         one row per sweep: provenance, status, view names
``runs``           one row per committed run of every sweep
``sweep_columns``  the catalog: every column of every sweep's wide table with
                   its role (run/param/metric), dotted path, type, unit, meaning
``series``         optional time series, long: (run_id, field, sample, t_ns, value)
``metric_arrays``  array-valued metrics (e.g. latency histograms), long:
                   (run_id, name, idx, value)
``shards``         the Parquet files that hold committed rows (size, SHA-256)
``shard_intents``  Parquet files this database's writer is about to create or delete
``latency_bins``   the bins of ``device.<dev>.latency_hist``: (idx, lower_ns, upper_ns)
``irqlab_meta``    key/value: schema version

and, per sweep, a wide table ``sweep_<no>_data`` (one row per run: run
columns, one column per parameter, one per scalar metric) behind the view
``sweep_<no>``. Types: ``float`` -> DOUBLE, ``int`` -> BIGINT, ``bool`` ->
BOOLEAN, ``str`` -> TEXT. NaN metrics are stored as NULL.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = "1"

RUN_TYPES = {  # the run columns of every wide table and runs shard
    "run_id": "str", "point": "int", "replication": "int", "seed": "str", "spawn_key": "str",
    "status": "str", "error": "str", "wall_s": "float",
}
RUN_DOCS = {
    "run_id": "the run's identity", "point": "index of the parameter point in the sweep",
    "replication": "replication index at that point",
    "seed": "the run's seed (decimal text: seeds may exceed 64 bits)",
    "spawn_key": "numpy SeedSequence spawn key, JSON list", "status": "ok or failed",
    "error": "why the run failed (null if ok)", "wall_s": "wall time attributed to the run",
}


def sql_type(typ: str) -> Any:
    """The SQLAlchemy type of a column type name (float|int|bool|str)."""
    from sqlalchemy import BigInteger, Boolean, Double, Text

    return {"float": Double(), "int": BigInteger(), "bool": Boolean(create_constraint=False),
            "str": Text()}[typ]


def arrow_type(typ: str) -> Any:
    """The Arrow type of a column type name."""
    import pyarrow as pa

    return {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}[typ]


def fixed_tables() -> tuple[Any, dict[str, Any]]:
    """``(MetaData, {name: Table})`` of the fixed tables."""
    from sqlalchemy import (BigInteger, Boolean, Column, Double, Index, Integer, MetaData,
                            String, Table, Text)

    md = MetaData()
    t = {}
    t["irqlab_meta"] = Table("irqlab_meta", md, Column("key", String(64), primary_key=True),
                             Column("value", Text))
    t["sweeps"] = Table(
        "sweeps", md,
        Column("sweep_id", String(128), primary_key=True),
        Column("sweep_no", Integer, nullable=False, unique=True),
        Column("name", Text), Column("status", String(32)),
        Column("started_at", String(40)), Column("ended_at", String(40)),
        Column("planned_runs", BigInteger), Column("param_paths", Text),  # JSON list
        Column("param_units", Text),  # JSON object: path -> unit, as given by the driver
        Column("base_seed", Text), Column("scenario_hash", String(128)),
        Column("scenario_file", Text), Column("scenario_text", Text), Column("command", Text),
        Column("irqlab_version", String(64)), Column("plugin_versions", Text),  # JSON object
        Column("git_commit", String(64)), Column("git_dirty", Boolean(create_constraint=False)),
        Column("host", Text), Column("view_name", String(128)), Column("alias_view", String(128)),
        Column("data_table", String(128)),
        Column("writer", Text),  # "<host>:<pid>" of the process running it (while running)
    )
    t["runs"] = Table(
        "runs", md,
        Column("run_id", String(128), primary_key=True),
        Column("sweep_id", String(128), nullable=False),
        Column("point", BigInteger), Column("replication", BigInteger),
        Column("seed", Text), Column("spawn_key", Text), Column("status", String(16)),
        Column("error", Text), Column("wall_s", Double), Column("events", BigInteger),
        Column("truncated", Boolean(create_constraint=False)),
        Column("params", Text),  # JSON object, the exact values given (for reproduce)
        Column("shard", String(128)),
        Index("ix_runs_sweep", "sweep_id", "status"),
        Index("ix_runs_shard", "shard"),
    )
    t["sweep_columns"] = Table(
        "sweep_columns", md,
        Column("sweep_id", String(128), primary_key=True),
        Column("column_name", String(255), primary_key=True),
        Column("ordinal", Integer), Column("role", String(16)),  # run | param | metric
        Column("path", Text), Column("type", String(8)), Column("unit", String(32)),
        Column("description", Text),
        Column("device", String(255)),  # for device.<dev>.<metric>: <dev>, else NULL
        Column("metric", String(255)),  # for device.<dev>.<metric>: <metric>, else NULL
    )
    t["series"] = Table(
        "series", md,
        Column("run_id", String(128), primary_key=True),
        Column("field", String(255), primary_key=True),
        Column("sample", Integer, primary_key=True),
        Column("sweep_id", String(128)), Column("t_ns", Double), Column("value", Double),
    )
    t["metric_arrays"] = Table(
        "metric_arrays", md,
        Column("run_id", String(128), primary_key=True),
        Column("name", String(255), primary_key=True),
        Column("idx", Integer, primary_key=True),
        Column("sweep_id", String(128)), Column("value", Double),
    )
    t["latency_bins"] = Table(
        "latency_bins", md,
        Column("idx", Integer, primary_key=True),
        Column("lower_ns", Double), Column("upper_ns", Double),  # upper NULL: unbounded
    )
    t["shards"] = Table(
        "shards", md,
        Column("file", String(512), primary_key=True),  # relative to the parquet root
        Column("grp", String(128), nullable=False), Column("sweep_id", String(128)),
        Column("dataset", String(32)), Column("rows", BigInteger), Column("created_at", String(40)),
        Column("bytes", BigInteger), Column("sha256", String(64)),  # of the file as committed
        Index("ix_shards_grp", "grp"),
    )
    t["shard_intents"] = Table(
        "shard_intents", md,
        Column("name", String(512), primary_key=True),  # a shard group, or a file
        Column("kind", String(8), nullable=False),  # grp: its temps are ours; file: delete it
    )
    return md, t


def latency_bin_rows() -> list[dict[str, Any]]:
    """The rows of ``latency_bins``: every latency histogram bin's edges in ns."""
    from irqlab.engine.stats import bin_edges_ps

    lower = [float(e) / 1e3 for e in bin_edges_ps()]
    upper: list[float | None] = [*lower[1:], None]
    return [dict(idx=i, lower_ns=lo, upper_ns=hi) for i, (lo, hi) in enumerate(zip(lower, upper))]


def data_table_def(name: str, columns: list[tuple[str, str]]) -> Any:
    """The per-sweep wide table: ``columns`` as ``[(name, type)]``, ``run_id`` first."""
    from sqlalchemy import Column, MetaData, String, Table

    cols = [Column("run_id", String(128), primary_key=True)]
    cols += [Column(c, sql_type(t)) for c, t in columns if c != "run_id"]
    return Table(name, MetaData(), *cols)
