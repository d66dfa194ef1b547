"""The example third-party package examples/plugins/irqlab-tokenbucket: pip-installed into
this environment, it is discovered, runs, sweeps, and keeps the vectorized contract."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from irqlab.plugins import registry as reg_mod

from .conftest import EXAMPLES, cli

PKG = EXAMPLES / "plugins" / "irqlab-tokenbucket"
SCN = PKG / "token_bucket.scn"
RATE, BURST = "mitigation.token_bucket.rate", "mitigation.token_bucket.burst"


def test_the_plugin_is_under_60_lines():
    """The whole mitigation, docstrings included, is under 60 lines of Python."""
    n = len((PKG / "irqlab_tokenbucket" / "__init__.py").read_text(encoding="utf-8").splitlines())
    assert n < 60


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip install a copy of the package (the source tree stays clean); uninstall after."""
    src = tmp_path_factory.mktemp("pkg") / "irqlab-tokenbucket"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip"]
    done = subprocess.run([*pip, "install", "-q", "--no-deps", str(src)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip install failed:\n{done.stdout}\n{done.stderr}")
    reg_mod.reset()
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "-q", "irqlab-tokenbucket"], capture_output=True)
        sys.modules.pop("irqlab_tokenbucket", None)
        reg_mod.reset()


pytestmark = pytest.mark.slow


def test_installed_plugin_is_listed_ok(installed, capsys):
    """`irqlab plugins` lists token_bucket, ok, from the irqlab-tokenbucket distribution."""
    status, out, _ = cli(capsys, "plugins", "--json", "--kind", "mitigation")
    (row,) = [r for r in json.loads(out) if r["name"] == "token_bucket"]
    assert status == 0
    assert (row["status"], row["origin"], row["target"]) == \
        ("ok", "irqlab-tokenbucket 0.1.0", "irqlab_tokenbucket:TokenBucket")


def test_show_prints_its_declared_parameters(installed, capsys):
    """`irqlab plugins show token_bucket` gives rate (frequency) and burst (int)."""
    _, out, _ = cli(capsys, "plugins", "show", "token_bucket", "--json")
    (d,) = json.loads(out)
    assert [(p["name"], p["type"], p["default"], p["range"]) for p in d["params"]] == \
        [("rate", "frequency", "1kHz", ">= 1Hz"), ("burst", "int", "100", ">= 1")]
    assert (d["hooks"], d["timers"]) == (["ioapic_eoi", "timer"], 1)


def test_run_lets_l2_progress(installed, capsys):
    """`irqlab run token_bucket.scn --json`: every run ok, L2 progresses, the bucket acted."""
    status, out, err = cli(capsys, "run", str(SCN), "--json")
    runs = json.loads(out)["runs"]
    assert status == 0, err
    assert len(runs) == 2
    for r in runs:
        assert r["status"] == "ok" and not r["livelock"]
        assert r["time_to_l2_progress_ns"] is not None
        assert r["mitigation_activations"]["token_bucket"] > 0


def test_parameter_out_of_range_is_a_located_error(installed, capsys):
    """--set token_bucket.rate=0.5Hz is below the declared minimum of 1Hz: an error located
    at the value on the command line, saying which parameter it set."""
    status, _, err = cli(capsys, "run", str(SCN), "--set", "token_bucket.rate=0.5Hz")
    first = err.splitlines()[0]
    col = len(f"irqlab run {SCN} --set token_bucket.rate=") + 1
    assert status == 2
    assert first == (f"<command line>:1:{col}: error: mitigation.token_bucket.rate must be at "
                     "least 1Hz; got 0.5Hz")
    assert "hint: mitigation.token_bucket.rate was set to 0.5Hz" in err


def test_sweep_over_rate_stores_every_run(installed, capsys, tmp_path):
    """`irqlab sweep` over rate = 1kHz..1MHz x 2 replications: 8 ok runs; L2 progresses up to
    100kHz and never at 1MHz (faster than the storm itself); read back with SQL."""
    out_dir = tmp_path / "out"
    status, out, err = cli(capsys, "sweep", str(SCN), "--out", str(out_dir), "--launcher", "inline",
                           "--no-progress")
    assert status == 0, err
    assert "8 ok, 0 failed" in out
    con = sqlite3.connect(out_dir / "results.db")
    try:
        rows = con.execute("SELECT rate, count(*), sum(status = 'ok'), count(time_to_l2_progress_ns), "
                           "min(mitigation_activations_token_bucket) FROM sweep_1 "
                           "GROUP BY rate ORDER BY rate").fetchall()
    finally:
        con.close()
    assert [r[:4] for r in rows] == [(1e3, 2, 2, 2), (1e4, 2, 2, 2), (1e5, 2, 2, 2), (1e6, 2, 2, 0)]
    assert all(r[4] > 0 for r in rows)
    status, out, _ = cli(capsys, "query", str(out_dir), "-f", "json",
                         "SELECT rate, avg(time_to_l2_progress_ns) AS t FROM sweep_1 GROUP BY rate ORDER BY rate")
    assert status == 0 and [row["t"] is None for row in json.loads(out)] == [False, False, False, True]


@pytest.fixture(scope="module")
def program(installed):
    from irqlab import engine
    from irqlab.dsl import load

    return engine.compile(load(str(SCN)))


def _lanes(program, points):
    from irqlab import engine

    return [engine.Lane(7, (i,), {**program.params, RATE: float(r), BURST: int(b)})
            for i, (r, b) in enumerate(points)]


POINTS = [(1e3, 100), (1e5, 1), (1e6, 100), (3e4, 7), (1e3, 1), (2e5, 50)]


def test_backends_agree_bit_for_bit(program):
    """The lockstep executor (the NumPy hooks) and the kernel (the kernel hook) give identical
    results for every lane."""
    from irqlab import engine

    lanes = _lanes(program, POINTS)
    a = engine.run(program, lanes, backend="numpy")
    b = engine.run(program, lanes, backend="kernel")
    assert a.status == ["ok"] * len(POINTS)
    for i in range(len(POINTS)):
        assert json.dumps(a.lane(i), sort_keys=True) == json.dumps(b.lane(i), sort_keys=True), POINTS[i]


def test_a_lane_alone_equals_the_lane_in_a_batch(program):
    """Each lane run alone gives the bits it gives among lanes with other rates and bursts."""
    from irqlab import engine

    lanes = _lanes(program, POINTS)
    batch = engine.run(program, lanes, backend="numpy")
    for i in range(len(POINTS)):
        alone = engine.run(program, [lanes[i]], backend="numpy")
        assert json.dumps(alone.lane(0), sort_keys=True) == json.dumps(batch.lane(i), sort_keys=True)


def test_auto_runs_it_with_the_kernel_through_its_kernel_hook(installed, capsys):
    """The plugin names a kernel hook: `auto` runs it with the per-lane kernel and `irqlab run`
    says so."""
    status, out, _ = cli(capsys, "run", str(SCN), "--json", "-n", "1")
    assert status == 0
    assert json.loads(out)["backend"].startswith("kernel (")
