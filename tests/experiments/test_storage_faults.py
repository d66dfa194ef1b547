"""Storage failures: a full disk is a clear error (exit 2) that loses nothing and leaves no
sweep 'running'; a sweep whose writer died is noticed and marked by the next writer."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from irqlab.cli.main import main
from irqlab.results.store import ResultStore
from scn_texts import tiny

sys.path.insert(0, str(Path(__file__).parents[2]))
from tests.results.results_helpers import make_result, run_infos, sweep_info  # noqa: E402


def _status(db: Path) -> tuple[list[tuple], int]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        return (con.execute("SELECT status FROM sweeps").fetchall(),
                con.execute("SELECT count(*) FROM runs").fetchone()[0])


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs mounted for the test (skipped where mounting is not allowed)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_the_resume_completes_after_space_is_freed(
        small_tmpfs, tmp_path, capsys):
    """On a 2 MiB tmpfs: the sweep stops with exit 2 and a disk-full message (no internal
    error), the sweep is marked 'error'; a resume while still full does the same; after the
    tmpfs grows the resume completes with every planned run once and verify is clean."""
    scn = tmp_path / "full.scn"
    scn.write_text(tiny(replications=400))  # 2400 runs: several MiB of results
    out = small_tmpfs / "out"
    cmd = ["sweep", str(scn), "--out", str(out), "--launcher", "inline", "--max-lanes", "64",
           "--no-progress", "--no-table"]
    for _ in range(2):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "cannot write the results in" in err and "internal error" not in err
        assert ("No space left on device" in err) or ("database or disk is full" in err)
        status, stored = _status(out / "results.db")
        assert status == [("error",)] and 0 < stored < 2400
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_tmpfs)], check=True)
    assert main(cmd) == 0
    assert f"{stored} already done, {2400 - stored} run now" in capsys.readouterr().out
    assert _status(out / "results.db") == ([("done",)], 2400)
    assert main(["verify", str(out)]) == 0


def test_a_sweep_left_running_by_a_dead_writer_is_marked_killed(tmp_path):
    """A sweep row still 'running' when the next writer opens the directory (its writer was
    SIGKILLed) is marked 'killed'."""
    store = ResultStore(tmp_path)
    store.begin_sweep(sweep_info())
    store.write_batch("s1", run_infos(2), make_result(2))
    store.close()  # no finish_sweep: what a SIGKILL leaves
    with ResultStore(tmp_path) as again:
        assert again.abandoned == ["s1"]
    assert _status(tmp_path / "results.db") == ([("killed",)], 2)


def test_a_shared_database_marks_only_sweeps_whose_writer_process_is_gone(tmp_path):
    """With --db elsewhere, a running sweep is marked only if its writer's pid is gone on
    this host; one whose writer is alive is left running."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with ResultStore(tmp_path / "a", url) as store:
        store.begin_sweep(sweep_info("alive"))
        store.begin_sweep(sweep_info("dead"))
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        host = store.t["sweeps"]
        with store.engine.begin() as conn:
            import socket

            conn.execute(host.update().where(host.c.sweep_id == "dead")
                         .values(writer=f"{socket.gethostname()}:{gone.pid}"))
    with ResultStore(tmp_path / "b", url) as other:
        assert other.abandoned == ["dead"]
    with closing(sqlite3.connect(tmp_path / "shared.db")) as con:
        assert dict(con.execute("SELECT sweep_id, status FROM sweeps")) == \
            {"alive": "running", "dead": "killed"}


def test_an_error_inside_the_sweep_leaves_it_marked(tmp_path, capsys, monkeypatch):
    """An unexpected exception during a sweep (here from storing a batch) marks the sweep
    'error', not 'running'."""
    import irqlab.results.store as store_mod

    def boom(*a, **k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_mod.shards, "write_temp", boom)
    scn = tmp_path / "t.scn"
    scn.write_text(tiny(thresholds="10"))
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--no-progress", "--no-table",
                 "--launcher", "inline"]) == 2
    assert "Input/output error" in capsys.readouterr().err
    assert _status(out / "results.db") == ([("error",)], 0)


def test_a_storage_error_while_a_sweep_begins_leaves_it_marked(tmp_path, capsys, monkeypatch):
    """A storage error after the sweep's row says 'running' but before its runs start (here
    the Parquet copy of the row, on a resume) marks it 'error', not 'running'."""
    import irqlab.results.store as store_mod

    scn = tmp_path / "t.scn"
    scn.write_text(tiny(thresholds="10"))
    out = tmp_path / "out"
    cmd = ["sweep", str(scn), "--out", str(out), "--no-progress", "--no-table", "--launcher", "inline"]
    assert main(cmd) == 0

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.ResultStore, "_write_sweep_parquet", boom)
    assert main(cmd) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert _status(out / "results.db")[0] == [("error",)]


def test_runs_tells_of_a_sweep_whose_writer_was_killed(tmp_path, capsys):
    """irqlab runs (read-only) warns of a sweep marked running whose writer process is gone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store = ResultStore(tmp_path)
    store.begin_sweep(sweep_info())
    sw = store.t["sweeps"]
    import socket

    with store.engine.begin() as conn:
        conn.execute(sw.update().values(writer=f"{socket.gethostname()}:{gone.pid}"))
    store.close()
    assert main(["runs", str(tmp_path)]) == 0
    assert "sweep s1 is marked running but its process" in capsys.readouterr().err
