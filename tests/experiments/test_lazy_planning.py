"""Planning is lazy: a sweep's size costs neither time nor memory before its runs are needed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from irqlab import dsl
from irqlab.cli.main import main
from irqlab.experiments import plan as planning
from irqlab.experiments.expand import Points
from irqlab.results.store import ResultStore
from scn_texts import tiny

# the command runs with 1.5 GiB of address space at most: materializing a plan fails
_RUN = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29)); "
        "from irqlab.cli.main import main; sys.exit(main(sys.argv[1:]))")


def _values(unit: str, n: int = 1000) -> str:
    return ", ".join(f"{i}{unit}" for i in range(1, n + 1))


def _dry_run(tmp_path, text: str) -> str:
    p = tmp_path / "big.scn"
    p.write_text(text)
    r = subprocess.run([sys.executable, "-c", _RUN, "sweep", str(p), "--dry-run"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_dry_run_of_a_billion_point_grid_counts_and_shows_the_first_runs(tmp_path):
    """--dry-run of a 10^9-point grid prints its count and first runs in bounded memory."""
    text = tiny(thresholds=_values(""), rates=_values("Hz")).replace(
        "nic.arrival.rate = [", f"device.nic.service = [{_values('ns')}]\n            nic.arrival.rate = [")
    out = _dry_run(tmp_path, text)
    assert "1000000000 points x 2 replications = 2000000000 runs" in out, out
    assert out.count("  run ") == 5 and "... 1999999995 more" in out


def test_dry_run_of_a_billion_replications(tmp_path):
    """--dry-run with replications 1000000000 prints the count and the first runs."""
    out = _dry_run(tmp_path, tiny(replications=1_000_000_000))
    assert "6 points x 1000000000 replications = 6000000000 runs" in out, out
    assert "point 0 rep 4 " in out and "... 5999999995 more" in out


def test_points_are_indexed_not_multiplied_out():
    """The last point of a 10^9-point grid is reached without the others; it is the
    product's last combination."""
    scn = dsl.loads(tiny(thresholds=_values(""), rates=_values("Hz")).replace(
        "nic.arrival.rate = [", f"device.nic.service = [{_values('ns')}]\n            nic.arrival.rate = ["))
    pts = Points(scn.sweep, scn)
    assert len(pts) == 10**9
    last = pts._root[10**9 - 1]
    assert [q.value for q in last.values()] == [1000.0, 1000e-9, 1000.0]


def test_a_random_sample_drawn_in_chunks_equals_one_draw():
    """A random sample larger than a chunk has the values of one draw per dimension."""
    text = tiny().replace("grid {", "random 10000 seed 7 {\n x_").replace(
        "x_\n            qemu_eoi_throttle.threshold = [10, 100, 1000]\n"
        "            nic.arrival.rate = [10kHz, 50kHz]",
        "qemu_eoi_throttle.delay in 1ms .. 10ms\n nic.arrival.rate in 1kHz .. 50kHz")
    scn = dsl.loads(text)
    pts = list(Points(scn.sweep, scn))
    rng = np.random.default_rng(7)
    u0, u1 = rng.random(10000), rng.random(10000)
    assert [p["mitigation.qemu_eoi_throttle.delay"].value for p in pts] == list(1e-3 + u0 * (10e-3 - 1e-3))
    assert [p["device.nic.arrival.rate"].value for p in pts] == list(1e3 + u1 * (50e3 - 1e3))


def test_a_resume_asks_the_store_per_chunk(tmp_path, capsys, monkeypatch):
    """A resume asks the store about each chunk of planned runs, never for the sweep's
    whole list, and skips every stored run."""
    p = tmp_path / "tiny.scn"
    p.write_text(tiny(replications=5))
    args = ["sweep", str(p), "--out", str(tmp_path / "out"), "--no-progress", "--no-table"]
    assert main(args) == 0
    asked = []
    real = ResultStore.stored_status
    monkeypatch.setattr(ResultStore, "completed", lambda self, sid: pytest.fail("whole list read"))
    monkeypatch.setattr(ResultStore, "stored_status",
                        lambda self, sid, ids: asked.append(len(ids)) or real(self, sid, ids))
    real_init = planning.Planner.__init__

    def small_chunks(self, *a, **kw):
        real_init(self, *a, **{**kw, "chunk_runs": 7})
    monkeypatch.setattr(planning.Planner, "__init__", small_chunks)
    capsys.readouterr()
    assert main(args) == 0
    assert "30 already done, 0 run now" in capsys.readouterr().out
    assert sum(asked) == 30 and max(asked) <= 7


def test_runs_stored_meanwhile_count_as_already_done(tmp_path, capsys, monkeypatch):
    """Runs the store skips as already stored when a batch is written are counted
    'already done', not 'run now'."""
    p = tmp_path / "tiny.scn"
    p.write_text(tiny())
    args = ["sweep", str(p), "--out", str(tmp_path / "out"), "--no-progress", "--no-table"]
    assert main(args) == 0
    # the planner's view is stale: it believes nothing is stored yet
    monkeypatch.setattr(ResultStore, "completed", lambda self, sid: {})
    monkeypatch.setattr(ResultStore, "stored_status", lambda self, sid, ids: {}, raising=False)
    capsys.readouterr()
    assert main(args) == 0
    assert "12 already done, 0 run now: 0 ok, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("expect", [False, True])
def test_runs_hold_their_point_scenario_only_for_expectations(expect):
    """A planned run keeps its point's resolved scenario only when the sweep's expect block
    may read it; otherwise the runs queued for workers do not keep every point's alive."""
    text = tiny()
    if expect:
        text = text.replace("replications 2", "replications 2\n        expect { events > threshold }")
    prep = planning.prepare(dsl.loads(text, "tiny.scn"), text)
    chunk = planning.Planner(prep).next_chunk()
    assert chunk.todo and all((r.resolved is not None) == expect for r in chunk.todo)


def test_a_new_sweep_asks_the_store_nothing_while_planning(tmp_path, capsys, monkeypatch):
    """A sweep the store has just begun plans without asking which runs are stored
    (nothing is, but what it stores itself); its rerun asks, and skips every run."""
    p = tmp_path / "tiny.scn"
    p.write_text(tiny())
    args = ["sweep", str(p), "--out", str(tmp_path / "out"), "--no-progress", "--no-table"]
    asked = []
    real = ResultStore.stored_status
    monkeypatch.setattr(ResultStore, "stored_status",
                        lambda self, sid, ids: asked.append(len(ids)) or real(self, sid, ids))
    assert main(args) == 0
    assert asked == [] and "12 run now: 12 ok" in capsys.readouterr().out
    assert main(args) == 0
    assert sum(asked) == 12 and "12 already done, 0 run now" in capsys.readouterr().out
