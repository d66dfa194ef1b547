"""The Python API for notebooks: ``irqlab.open(results_dir)`` and ``irqlab.run(scenario)``.

    import irqlab
    res = irqlab.open("results/founding")       # a sweep output directory, results.db or URL
    res.sweeps()                                 # one row per sweep (Arrow; as_="pandas"|"polars")
    df = res.runs(sweep="founding", as_="pandas")  # the sweep's wide rows
    res.scenario(run_id)                         # the scenario text the run ran
    res.reproduce(run_id)                        # rerun; truthy if bit-identical
    res.plot("time_to_l2_progress_ns", x="threshold", by="delay")  # shows inline in Jupyter
    res.report("founding.html")                  # one HTML file to share
    irqlab.run("examples/founding_case.scn", **{"run.duration": "10ms"})  # one-off runs

Everything reads the results read-only (the same paths as ``irqlab query``, ``runs``,
``show``, ``reproduce`` and ``plot``). Tables are Arrow by default; pandas and polars
are optional and asked for with ``as_=``. Documented in ``docs/python-api.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError

__all__ = ["open", "run", "Results", "Reproduction", "Figure"]


@dataclass
class Reproduction:
    """The outcome of :meth:`Results.reproduce`: truthy when every stored metric came back
    bit-identical; ``differences`` lists the ones that did not (name, stored, new)."""

    run_id: str
    metrics: int
    differences: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        if not self.differences:
            return f"{self.run_id}: reproduced: {self.metrics} metrics bit-identical"
        return (f"{self.run_id}: NOT reproduced: {len(self.differences)} of {self.metrics} "
                f"metrics differ")


@dataclass
class Figure:
    """A plot written to ``path`` (PNG or SVG); Jupyter shows it inline. ``summary``: what
    :func:`irqlab.results.plot.plot` returned (runs drawn, caption, log axes)."""

    path: Path
    summary: dict

    def _repr_svg_(self) -> str | None:
        return self.path.read_text(encoding="utf-8") if self.path.suffix == ".svg" else None

    def _repr_png_(self) -> bytes | None:
        return self.path.read_bytes() if self.path.suffix == ".png" else None


class Results:
    """A results database (a sweep output directory, its ``results.db`` or an SQLAlchemy
    URL), read-only. Tables come back as Arrow, or pandas/polars with ``as_=``."""

    def __init__(self, target: str | os.PathLike) -> None:
        from irqlab.results.db import resolve_target

        self.target = str(target)
        resolve_target(self.target)  # a ScenarioError now if there is no database

    def __repr__(self) -> str:
        return f"irqlab.open({self.target!r})"

    def sweeps(self, *, as_: str = "arrow") -> Any:
        """One row per sweep: number, id, name, view, status, ok/failed/planned runs, times."""
        from irqlab.results import catalog
        from irqlab.results.frames import convert, query_arrow

        return convert(query_arrow(catalog.sweeps(self.target)), as_)

    def sweep(self, sweep: str | int | None = None) -> dict:
        """A sweep's ``sweeps`` row (its provenance) by id, number, name or view; the latest
        when ``sweep`` is None."""
        from irqlab.results import catalog

        if sweep is None:
            return catalog.latest_sweep(self.target)
        return catalog.find_sweep(self.target, str(sweep))

    def runs(self, sweep: str | int | None = None, *, status: str | None = None,
             as_: str = "arrow") -> Any:
        """The sweep's runs, one row each, with every run field, parameter and scalar metric
        (the columns of the view ``sweep_<no>``; parameters in base units: seconds, Hz).
        ``sweep``: id, number, name or view (default: the latest); ``status``: ``ok`` or
        ``failed`` only."""
        from irqlab.results.frames import convert, sweep_runs

        return convert(sweep_runs(self.target, self.sweep(sweep), status), as_)

    def query(self, sql: str, *, engine: str = "auto", as_: str = "arrow") -> Any:
        """One read-only SQL statement (as ``irqlab query``; ``engine``: auto, sqlite or
        duckdb)."""
        from irqlab.results.duckdb_engine import run_query_with
        from irqlab.results.frames import convert, query_arrow

        return convert(query_arrow(run_query_with(self.target, sql, engine)), as_)

    def scenario(self, run_id: str) -> str:
        """The scenario text the run ran (its sweep's, exactly as stored)."""
        from irqlab.results.catalog import run_record

        return run_record(self.target, run_id).sweep["scenario_text"]

    def show(self, run_id: str) -> dict:
        """Everything stored about one run: ``run``, ``params`` (exact values by path),
        ``metrics`` (by path) and ``sweep`` (provenance). ``run_id`` may be a unique prefix."""
        from irqlab.results.catalog import run_record

        rec = run_record(self.target, run_id)
        return {"run": {k: v for k, v in rec.run.items() if k != "params"},
                "params": rec.params,
                "metrics": {path: v for path, _, v, _, _ in rec.metrics},
                "sweep": {k: v for k, v in rec.sweep.items() if k != "scenario_text"}}

    def reproduce(self, run_id: str) -> Reproduction:
        """Rerun a stored run from its scenario, parameters and seed, and compare every
        stored metric bit for bit (as ``irqlab reproduce``)."""
        from irqlab.results.reproduce import reproduce

        rec, diffs = reproduce(self.target, run_id)
        return Reproduction(rec.run["run_id"], len(rec.metrics), list(diffs))

    def plot(self, metric: str, x: str | None = None, *, by: str | None = None,
             y: str | None = None, sweep: str | int | None = None,
             out: str | os.PathLike | None = None, logx: bool | None = None,
             logy: bool | None = None, title: str | None = None) -> Figure:
        """Plot ``metric`` against parameter ``x`` (one line per ``by`` value, or a heatmap
        over ``x`` and ``y``), as ``irqlab plot``. ``out``: a .png or .svg file (default:
        an SVG in a temporary directory, shown inline by Jupyter)."""
        from irqlab.results.plot import plot

        if out is None:
            import tempfile

            out = Path(tempfile.mkdtemp(prefix="irqlab-plot-")) / "plot.svg"
        summary = plot(self.target, metric, x, out=str(out), hue=by, y=y,
                       sweep=None if sweep is None else str(sweep), logx=logx, logy=logy,
                       title=title)
        return Figure(Path(out), summary)

    def report(self, out: str | os.PathLike, sweep: str | int | None = None) -> Path:
        """Write the sweep's self-contained HTML report to ``out`` (as ``irqlab report``)."""
        from irqlab.results.report import write_report

        return write_report(self.target, out, None if sweep is None else str(sweep))


def open(target: str | os.PathLike) -> Results:  # noqa: A001 - irqlab.open, as documented
    """The results in ``target`` (a sweep output directory, a ``results.db`` or an
    SQLAlchemy URL), read-only."""
    return Results(target)


def _scenario(text_or_path: str | os.PathLike) -> Any:
    from irqlab import dsl

    if isinstance(text_or_path, os.PathLike):
        return dsl.load(text_or_path)
    text = str(text_or_path)
    if "\n" not in text and "{" not in text:
        if not Path(text).is_file():
            raise ScenarioError(f"no scenario file '{text}'",
                                hint="give a .scn path, or the scenario's text")
        return dsl.load(text)
    return dsl.loads(text, "<text>")


def run(text_or_path: str | os.PathLike, *, replications: int | None = None,
        seed: int | None = None, backend: str | None = None, as_: str = "arrow",
        **overrides: Any) -> Any:
    """Run a scenario once (its replications) without storing anything, and return one row
    per replication: ``replication, seed, spawn_key, status, error`` and every scalar
    metric, named as the result columns are (``exits_VMRESUME``,
    ``device_uhci_latency_p99_ns``).

    ``text_or_path``: a ``.scn`` path or the scenario's text. ``overrides``: parameter
    values by dotted path, as ``--set`` takes them (``**{"run.duration": "10ms"}``, or
    ``run__duration="10ms"``: ``__`` stands for ``.``). Seeds as ``irqlab run``:
    replication ``r`` uses ``SeedSequence(seed, (r,))``, so the rows equal that command's.
    """
    import numpy as np
    import pyarrow as pa

    from irqlab import engine
    from irqlab.cli.sim import lanes_for
    from irqlab.resolve import resolve
    from irqlab.results.frames import convert
    from irqlab.results.naming import metric_column

    scenario = _scenario(text_or_path)
    given = {k.replace("__", "."): v for k, v in overrides.items()}
    resolved = resolve(scenario, given)
    program = engine.compile(resolved)
    lanes, base = lanes_for(resolved, program, replications, seed)
    result = engine.run(program, lanes, backend=backend)
    cols: dict[str, Any] = {
        "replication": pa.array([ln.spawn_key[0] for ln in lanes], pa.int64()),
        "seed": pa.array([str(base)] * result.n),
        "spawn_key": pa.array([str(list(ln.spawn_key)) for ln in lanes]),
        "status": pa.array(result.status, pa.string()),
        "error": pa.array(result.error, pa.string()),
    }
    for name, values in result.flat_columns().items():
        arr = np.asarray(values)
        if arr.ndim != 1:
            continue  # array metrics (histograms) are not one value a run
        if arr.dtype.kind == "f":
            cols[metric_column(name)] = pa.array(arr, pa.float64(), mask=np.isnan(arr))
        else:
            cols[metric_column(name)] = pa.array(arr)
    return convert(pa.table(cols), as_)
