"""The Python API (irqlab.open, irqlab.run): tables as Arrow, pandas or polars, read-only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import irqlab
from irqlab.cli.main import main
from irqlab.errors import ScenarioError
from irqlab.results.query import run_query
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def stored(tmp_path):
    """A sweep of 12 runs (r000004 failed) written in two batches."""
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(6), make_result(6, fail=(4,)))
        store.write_batch("s1", run_infos(6, start=6), make_result(6, seed=1))
        store.finish_sweep("s1", "2024-01-01T01:00:00+00:00", "done")
    return tmp_path


def test_import_irqlab_is_light():
    """`import irqlab` loads none of pyarrow, SQLAlchemy, matplotlib, pandas, polars, duckdb;
    irqlab.open is there on first use."""
    code = ("import sys, irqlab; heavy = [m for m in ('pyarrow', 'sqlalchemy', 'matplotlib', "
            "'pandas', 'polars', 'duckdb', 'ray', 'numpy') if m in sys.modules]; "
            "print(heavy); print(callable(irqlab.open), callable(irqlab.run))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True True"


def test_run_works_in_a_fresh_interpreter(tmp_path):
    """irqlab.run as the first thing a script does (no CLI module loaded before it)."""
    code = ("import irqlab; t = irqlab.run(%r, replications=1, run__duration='1ms'); "
            "print(t.num_rows)" % str(EXAMPLES / "level_highrate.scn"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_unknown_attribute_is_an_attribute_error():
    """irqlab.nope raises AttributeError, as a module should."""
    with pytest.raises(AttributeError):
        irqlab.nope  # noqa: B018


def test_open_needs_a_database(tmp_path):
    """A directory without results.db is a ScenarioError at open()."""
    with pytest.raises(ScenarioError, match="no results database"):
        irqlab.open(tmp_path)


def test_runs_are_the_views_rows(stored):
    """runs() holds the rows and columns of the view sweep_1, read from the Parquet files."""
    table = irqlab.open(stored).runs()
    view = run_query(str(stored), "SELECT * FROM sweep_1 ORDER BY run_id")
    assert table.column_names == view.columns
    got = sorted(table.to_pylist(), key=lambda r: r["run_id"])
    want = [dict(zip(view.columns, r)) for r in view.rows]
    norm = lambda rows: [{k: int(v) if isinstance(v, bool) else v for k, v in r.items()}  # noqa: E731
                         for r in rows]
    assert norm(got) == norm(want)
    assert irqlab.open(stored).runs(status="failed").column("run_id").to_pylist() == ["r000004"]


def test_runs_survive_a_lost_parquet_file(stored):
    """With a live Parquet file gone, runs() reads the SQL rows: none is dropped."""
    sorted((stored / "parquet" / "runs").rglob("*.parquet"))[0].unlink()
    assert sorted(irqlab.open(stored).runs().column("run_id").to_pylist()) == \
        [f"r{k:06d}" for k in range(12)]


@pytest.mark.parametrize("kind,check", [
    ("arrow", lambda t: t.num_rows), ("pandas", lambda t: len(t)), ("polars", lambda t: t.height)])
def test_runs_and_sweeps_in_each_table_kind(stored, kind, check):
    """as_='arrow'|'pandas'|'polars' give the same 12 runs and 1 sweep."""
    pytest.importorskip({"arrow": "pyarrow"}.get(kind, kind))
    res = irqlab.open(stored)
    assert check(res.runs("storm", as_=kind)) == 12
    assert check(res.sweeps(as_=kind)) == 1
    assert check(res.query("SELECT threshold FROM sweep_1", as_=kind)) == 12


def test_a_missing_table_library_is_a_clear_error(stored, monkeypatch):
    """as_='pandas' without pandas installed says so, and how to get it."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ScenarioError, match="as_='pandas' needs pandas, which is not installed"):
        irqlab.open(stored).runs(as_="pandas")
    with pytest.raises(ScenarioError, match="unknown table kind"):
        irqlab.open(stored).runs(as_="excel")


def test_scenario_and_show_give_what_is_stored(stored):
    """scenario() is the stored text; show() the exact params and provenance."""
    res = irqlab.open(stored)
    assert res.scenario("r000003") == "run { duration 1ms }\n"
    rec = res.show("r000003")
    assert rec["params"]["mitigation.qemu_eoi_throttle.threshold"] == 100
    assert rec["sweep"]["git_commit"] == "deadbeef"


def test_plot_returns_a_figure_jupyter_shows(stored, tmp_path):
    """plot() writes an SVG that the figure hands to Jupyter, or the file asked for."""
    fig = irqlab.open(stored).plot("l2_time_ns", x="threshold", by="delay")
    assert fig._repr_svg_().lstrip().startswith("<?xml") and fig.summary["rows"] == 11
    fig = irqlab.open(stored).plot("l2_time_ns", x="threshold", out=tmp_path / "p.png")
    assert fig._repr_png_()[:4] == b"\x89PNG" and fig._repr_svg_() is None


def test_report_writes_the_html_report(stored, tmp_path):
    """report() writes the same self-contained file as `irqlab report`."""
    path = irqlab.open(stored).report(tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "irqlab reproduce" in page and "<svg" in page


def test_run_gives_what_irqlab_run_prints(capsys):
    """irqlab.run() rows hold the metrics `irqlab run --json` prints, replication by replication."""
    path = EXAMPLES / "level_highrate.scn"
    assert main(["run", str(path), "-n", "2", "--set", "run.duration=2ms", "--json"]) == 0
    want = json.loads(capsys.readouterr().out)["runs"]
    got = irqlab.run(path, replications=2, run__duration="2ms").to_pylist()
    assert [r["replication"] for r in got] == [0, 1]
    for g, w in zip(got, want):
        for k in ("l1_time_ns", "events", "eoi_count", "livelock"):
            assert g[k] == w[k]
        assert g["device_dev_latency_max_ns"] == w["devices"]["dev"]["latency_max_ns"]


def test_run_reports_bad_overrides(tmp_path):
    """An unknown path or a missing file is a ScenarioError, not a traceback."""
    with pytest.raises(ScenarioError):
        irqlab.run(EXAMPLES / "level_highrate.scn", **{"run.nope": "1"})
    with pytest.raises(ScenarioError, match="no scenario file"):
        irqlab.run(str(tmp_path / "missing.scn"))
