"""The ``irqlab sweep`` command: options, dry run, errors, the table, rerun()."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from irqlab.cli.main import main
from irqlab.experiments import rerun
from scn_texts import tiny


@pytest.fixture
def scn(tmp_path):
    path = tmp_path / "tiny.scn"
    path.write_text(tiny())
    return path


def _db(out, sql):
    con = sqlite3.connect(out / "results.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_dry_run_counts_and_runs_nothing(scn, tmp_path, capsys):
    """--dry-run prints points x replications and the first runs, and writes nothing."""
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "6 points x 2 replications = 12 runs" in text
    assert text.count(" run ") == 5 and "... 7 more" in text
    assert not out.exists()


def test_grid_multiplies_the_sweep_and_set_fixes_a_value(scn, tmp_path, capsys):
    """--grid adds an axis (x2 runs); --set applies to every run and is stored with it."""
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--grid", "run.duration=1ms,2ms",
                 "--set", "machine.apicv=off", "--no-progress"]) == 0
    assert _db(out, "SELECT count(*) FROM runs WHERE status = 'ok'") == [(24,)]
    params = [json.loads(p) for (p,) in _db(out, "SELECT params FROM runs")]
    assert {p["run.duration"] for p in params} == {0.001, 0.002}
    assert {p["machine.apicv"] for p in params} == {False}
    table = capsys.readouterr().out
    assert "threshold" in table and "duration" in table and "apicv" not in table.split("\n\n")[-1]


def test_the_table_has_one_row_per_point_with_its_replications(scn, tmp_path, capsys):
    """The final table shows each threshold x rate once, with 2/2 runs."""
    assert main(["sweep", str(scn), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("threshold"))
    rows = lines[head + 2:-1]
    assert len(rows) == 6 and all(" 2/2 " in r for r in rows)
    assert lines[-1].startswith("took ")


def test_the_same_command_again_resumes_with_nothing_to_do(scn, tmp_path, capsys):
    """A second identical sweep into the same --out runs no run and prints the full table."""
    args = ["sweep", str(scn), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "12 already done, 0 run now" in out
    assert out.count(" 2/2 ") == 6
    assert _db(tmp_path / "out", "SELECT count(*) FROM runs") == [(12,)]


def test_a_set_on_a_swept_path_is_a_located_error(scn, tmp_path, capsys):
    """--set of a path the sweep varies exits 2 pointing at the axis, with its source line."""
    assert main(["sweep", str(scn), "--set", "threshold=5", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{scn}:12:13:" in err and "is swept by the scenario" in err
    assert "qemu_eoi_throttle.threshold = [10, 100, 1000]" in err and "^" in err


def test_a_misspelt_grid_path_is_an_error_with_a_hint(scn, capsys):
    """--grid with an unknown path exits 2 with a did-you-mean, no traceback."""
    assert main(["sweep", str(scn), "--grid", "treshold=5,6", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--grid treshold" in err and "did you mean 'threshold'" in err
    assert "Traceback" not in err


def test_invalid_points_are_failed_rows_and_fail_fast_exits_3(scn, tmp_path, capsys):
    """A --grid value out of range fails its runs; with --fail-fast the exit status is 3."""
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--grid", "qemu_eoi_throttle.delay=1ms,-1ms",
                 "--no-progress"]) == 0
    assert _db(out, "SELECT status, count(*) FROM runs GROUP BY status") == [("failed", 12), ("ok", 12)]
    (err,) = _db(out, "SELECT DISTINCT error FROM runs WHERE status = 'failed'")[0]
    assert "delay" in err
    out2 = tmp_path / "out2"
    assert main(["sweep", str(scn), "--out", str(out2), "--grid", "qemu_eoi_throttle.delay=-1ms",
                 "--fail-fast", "--no-progress"]) == 3


def test_rerun_reproduces_a_stored_run(scn, tmp_path):
    """rerun() from a stored run's scenario, params, seed and spawn key gives its metrics."""
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--no-progress", "--no-table"]) == 0
    text, file = _db(out, "SELECT scenario_text, scenario_file FROM sweeps")[0]
    rows = _db(out, "SELECT params, seed, spawn_key, events, wall_s FROM runs "
                    "WHERE point = 3 AND replication = 1")
    params, seed, key, events, _ = rows[0]
    res = rerun(text, file, json.loads(params), seed, key)
    assert res.status == ["ok"] and int(res.metrics["events"][0]) == events


def test_replications_draw_different_streams(scn, tmp_path):
    """Two replications of one point see different Poisson arrivals."""
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--no-progress", "--no-table"]) == 0
    per_point = _db(out, "SELECT point, count(DISTINCT events) FROM runs GROUP BY point")
    assert all(n == 2 for _, n in per_point)


def test_a_second_writer_on_the_same_output_is_a_clear_error(scn, tmp_path, capsys):
    """While a store holds --out, another sweep into it exits 2 saying so (no traceback)."""
    from irqlab.results.store import ResultStore

    out = tmp_path / "out"
    with ResultStore(out):
        assert main(["sweep", str(scn), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "another irqlab process is writing results" in err and "Traceback" not in err


def test_a_launcher_that_cannot_start_is_an_error_and_the_sweep_is_not_marked_done(
        scn, tmp_path, capsys, monkeypatch):
    """If the launcher fails to start (e.g. no cluster at --address): exit 2 with its
    message, and the sweep is recorded with status error, not done."""
    from irqlab.errors import ScenarioError
    from irqlab.experiments import driver
    from irqlab.experiments.launchers import InlineLauncher

    class Unreachable(InlineLauncher):
        def start(self):
            raise ScenarioError("cannot connect to the Ray cluster at 10.0.0.1:6379: refused")

    monkeypatch.setattr(driver, "make_launcher", lambda *a, **k: Unreachable())
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--no-progress"]) == 2
    assert "cannot connect to the Ray cluster" in capsys.readouterr().err
    assert _db(out, "SELECT status FROM sweeps") == [("error",)]


def test_provenance_records_the_scenarios_git_commit_and_dirty_flag(tmp_path, capsys):
    """A scenario in a git repository: its HEAD commit is recorded, and whether the tree is dirty."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    scn = repo / "tiny.scn"
    scn.write_text(tiny(thresholds="10"))

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    git("add", "tiny.scn")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "scenario")
    head = git("rev-parse", "HEAD")
    assert main(["sweep", str(scn), "--out", str(tmp_path / "clean"), "--no-progress", "--no-table"]) == 0
    (repo / "notes.txt").write_text("uncommitted\n")
    assert main(["sweep", str(scn), "--out", str(tmp_path / "dirty"), "--no-progress", "--no-table"]) == 0
    assert _db(tmp_path / "clean", "SELECT git_commit, git_dirty FROM sweeps") == [(head, 0)]
    assert _db(tmp_path / "dirty", "SELECT git_commit, git_dirty FROM sweeps") == [(head, 1)]
