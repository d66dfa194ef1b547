"""The real sweep driver and engine into the store, then query, plot and reproduce from it."""

from __future__ import annotations

import sqlite3

import pytest

from irqlab import ir

TH = "mitigation.qemu_eoi_throttle.threshold"
DL = "mitigation.qemu_eoi_throttle.delay"


@pytest.fixture
def swept(tmp_path):
    """A 3 x 2 x 2-replication sweep of the small IR scenario, run by the real driver."""
    scen = pytest.importorskip("tests.experiments.ir_scenarios")
    from irqlab.experiments.driver import SweepRequest, run_sweep

    s = scen.with_sweep(scen.small(replications=2, seed=5), ir.Grid(items=(
        scen.axis(TH, 10, 13, 20), scen.axis(DL, *(scen.q(d, "s") for d in (1e-3, 2e-3))))))
    req = SweepRequest(text="small", file=None, out_dir=str(tmp_path / "out"), launcher="inline",
                       progress=False, command="irqlab sweep test")
    rep = run_sweep(req, scenario=s)
    assert rep.ok == 12
    return tmp_path / "out", s


def _ir_rerun(scenario):
    """rerun() without the DSL: the same resolve, compile and one-lane run on the IR."""
    from irqlab import engine, resolve
    from irqlab.engine.program import Lane
    from irqlab.experiments import to_overrides

    def rerun(text, file, params, seed, spawn_key):
        resolved = resolve.resolve(scenario, to_overrides(scenario, params))
        return engine.run(engine.compile(resolved),
                          [Lane(int(seed), tuple(int(k) for k in spawn_key), {})])
    return rerun


def test_a_real_run_reproduces_bit_identically(swept, monkeypatch):
    """Every stored metric of a real engine run comes back bit-identical from a rerun."""
    import irqlab.results.reproduce as rp

    out, scenario = swept
    monkeypatch.setattr(rp, "load_rerun", lambda: _ir_rerun(scenario))
    run_id = sqlite3.connect(out / "results.db").execute(
        "SELECT run_id FROM runs WHERE point = 3 AND replication = 1").fetchone()[0]
    rec, diffs = rp.reproduce(str(out), run_id)
    assert diffs == [] and len(rec.metrics) > 30


def test_a_changed_parameter_does_not_reproduce(swept, monkeypatch):
    """Reproduce notices when the rerun is not the same run (here: a longer duration)."""
    import irqlab.results.reproduce as rp

    out, scenario = swept
    inner = _ir_rerun(scenario)
    monkeypatch.setattr(rp, "load_rerun",
                        lambda: lambda t, f, p, s, k: inner(t, f, {**p, "run.duration": 2e-3}, s, k))
    run_id = sqlite3.connect(out / "results.db").execute(
        "SELECT run_id FROM runs WHERE point = 0 AND replication = 0").fetchone()[0]
    _, diffs = rp.reproduce(str(out), run_id)
    assert "sim_time_ns" in {d.name for d in diffs}


def test_the_grouped_question_on_a_real_sweep(swept, tmp_path):
    """The wide view of a real sweep has the short parameter names and answers by group."""
    from irqlab.results.plot import plot
    from irqlab.results.query import run_query

    out, _ = swept
    res = run_query(str(out), "SELECT threshold, delay, count(*), avg(l1_time_ns) "
                              "FROM sweep_small GROUP BY 1, 2 ORDER BY 1, 2")
    assert [r[:3] for r in res.rows] == [(t, d, 2) for t in (10.0, 13.0, 20.0)
                                         for d in (0.001, 0.002)]
    plot(str(out), "l1_time_ns", "delay", hue="threshold", out=str(tmp_path / "p.svg"))
    assert "delay [ms]" in (tmp_path / "p.svg").read_text()
