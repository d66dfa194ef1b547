"""`run { histograms on }`: each device's latency histogram per run, in SQL and Parquet."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from irqlab.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "level_highrate.scn"


def _scenario(tmp_path: Path, histograms: bool) -> Path:
    f = tmp_path / "h.scn"
    on = "; histograms on" if histograms else ""
    f.write_text(f'import "{EXAMPLE}"\nscenario h extends level_highrate {{\n'
                 f'    run {{ duration 5ms{on} }}\n}}\n')
    return f


def _sweep(tmp_path: Path, histograms: bool) -> Path:
    out = tmp_path / "out"
    assert main(["sweep", str(_scenario(tmp_path, histograms)), "--grid", "run.seed=1,2",
                 "--out", str(out), "--launcher", "inline", "--no-progress", "--no-table"]) == 0
    return out


def test_one_count_per_service_in_sql_and_parquet(tmp_path, capsys):
    """A level device's every service ends an episode: each run's histogram sums to its
    serviced count, read back with sqlite3 and with pyarrow."""
    import pyarrow.dataset as ds

    out = _sweep(tmp_path, True)
    with closing(sqlite3.connect(out / "results.db")) as db:
        rows = db.execute(
            "SELECT a.run_id, sum(a.value), count(*), w.device_dev_serviced FROM metric_arrays a "
            "JOIN sweep_h w USING (run_id) WHERE a.name = 'device.dev.latency_hist' "
            "GROUP BY a.run_id").fetchall()
    assert len(rows) == 8 and all(total == served > 0 and bins == 92 for _, total, bins, served in rows)
    pq = ds.dataset(out / "parquet" / "metric_arrays", partitioning="hive").to_table().to_pydict()
    by_run: dict[str, float] = {}
    for rid, v in zip(pq["run_id"], pq["value"]):
        by_run[rid] = by_run.get(rid, 0.0) + v
    assert by_run == {rid: total for rid, total, _, _ in rows}


def test_latency_bins_give_the_edges(tmp_path, capsys):
    """latency_bins: bin 0 from 0, bin 1 from 10 ns, 10 bins a decade, the last unbounded."""
    out = _sweep(tmp_path, True)
    with closing(sqlite3.connect(out / "results.db")) as db:
        bins = db.execute("SELECT idx, lower_ns, upper_ns FROM latency_bins ORDER BY idx").fetchall()
    assert bins[0] == (0, 0.0, 10.0) and bins[1][1] == 10.0
    assert np.isclose(bins[11][1], 100.0) and bins[-1][1] == pytest.approx(1e10) and bins[-1][2] is None


def test_no_histograms_unless_asked(tmp_path, capsys):
    """Without `histograms on` nothing is written to metric_arrays."""
    out = _sweep(tmp_path, False)
    with closing(sqlite3.connect(out / "results.db")) as db:
        assert db.execute("SELECT count(*) FROM metric_arrays").fetchone()[0] == 0


def test_both_executors_give_the_same_histogram(tmp_path, capsys):
    """irqlab run --json: the lockstep executor's and the kernel's histograms are equal."""
    import json

    f = _scenario(tmp_path, True)
    hists = []
    for backend in ("numpy", "kernel"):
        assert main(["run", str(f), "-n", "2", "--json", "--backend", backend]) == 0
        runs = json.loads(capsys.readouterr().out)["runs"]
        hists.append([r["devices"]["dev"]["latency_hist"] for r in runs])
    assert hists[0] == hists[1] and sum(hists[0][0]) > 0


def test_show_prints_the_histogram(tmp_path, capsys):
    """irqlab show --json has the run's histogram; its total is the run's serviced count."""
    import json

    out = _sweep(tmp_path, True)
    with closing(sqlite3.connect(out / "results.db")) as db:
        run_id, served = db.execute("SELECT run_id, device_dev_serviced FROM sweep_h LIMIT 1").fetchone()
    capsys.readouterr()
    assert main(["show", str(out), run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert sum(shown["arrays"]["device.dev.latency_hist"]) == served


def test_plot_draws_the_distribution_per_group(tmp_path, capsys):
    """irqlab plot DB latency_hist --by seed: an SVG over latency, one line per seed."""
    from irqlab.results.plot import plot

    out = _sweep(tmp_path, True)
    svg = tmp_path / "h.svg"
    summary = plot(str(out), "latency_hist", None, out=str(svg), hue="seed")
    text = svg.read_text()
    assert summary["lines"] == 2 and summary["rows"] == 8
    assert "fraction of services" in text and "latency, assertion to service [" in text


def test_plot_of_a_histogram_against_a_parameter_is_a_user_error(tmp_path, capsys):
    """-x makes no sense for a histogram (its x axis is the latency): exit 2, with a hint."""
    out = _sweep(tmp_path, True)
    capsys.readouterr()
    rc = main(["plot", str(out), "latency_hist", "-x", "seed", "-o", str(tmp_path / "h.png")])
    assert rc == 2 and "is a histogram" in capsys.readouterr().err
