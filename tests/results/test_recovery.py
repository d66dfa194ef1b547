"""Opening a results directory never loses what is there: foreign files stay, lost shards
are noticed and their runs run again, the writer lock follows no link."""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from irqlab.cli.main import main
from irqlab.errors import ScenarioError
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))
from scn_texts import tiny  # noqa: E402


def _parquet_files(out: Path) -> set[str]:
    return {str(p.relative_to(out / "parquet")) for p in (out / "parquet").rglob("part-*.parquet")}


def test_a_new_database_leaves_the_shards_of_another_in_place(tmp_path):
    """Two sweeps, results.db moved away, a third sweep into the same directory: every shard
    of the first two is still there, and reported as unknown."""
    with ResultStore(tmp_path) as store:
        for sid in ("s1", "s2"):
            store.begin_sweep(sweep_info(sid))
            store.write_batch(sid, run_infos(4, prefix=sid), make_result(4))
            store.finish_sweep(sid, "2024-01-01T01:00:00+00:00", "done")
    before = _parquet_files(tmp_path)
    assert len(before) == 2
    os.replace(tmp_path / "results.db", tmp_path / "elsewhere.db")
    with ResultStore(tmp_path) as store:
        assert sorted(store.recovered["unknown"]) == sorted(before)
        store.begin_sweep(sweep_info("s3"))
        store.write_batch("s3", run_infos(4, prefix="s3"), make_result(4))
    assert before < _parquet_files(tmp_path)


def test_sweep_into_a_directory_with_another_databases_shards_keeps_them(tmp_path, capsys):
    """irqlab sweep with --db pointing elsewhere keeps the first database's shards and warns."""
    scn = tmp_path / "tiny.scn"
    scn.write_text(tiny(thresholds="10"))
    out = tmp_path / "out"
    assert main(["sweep", str(scn), "--out", str(out), "--no-progress", "--no-table"]) == 0
    first = _parquet_files(out)
    assert main(["sweep", str(scn), "--out", str(out), "--no-progress", "--no-table",
                 "--db", f"sqlite:///{tmp_path / 'other.db'}"]) == 0
    assert first <= _parquet_files(out)
    assert "this database does not list" in capsys.readouterr().err


def _sweep(scn: Path, out: Path) -> list[str]:
    return ["sweep", str(scn), "--out", str(out), "--no-progress", "--no-table",
            "--launcher", "inline", "--max-lanes", "2"]


def _runs_per_group(out: Path) -> dict[str, list[str]]:
    with closing(sqlite3.connect(out / "results.db")) as db:
        rows = db.execute("SELECT shard, run_id FROM runs").fetchall()
    groups: dict[str, list[str]] = {}
    for g, rid in rows:
        groups.setdefault(g, []).append(rid)
    return groups


def test_resume_reruns_exactly_the_runs_of_a_missing_and_a_truncated_shard(tmp_path, capsys):
    """Delete one shard and truncate another: the rerun notices both, runs exactly their runs
    again, and pyarrow reads the whole dataset with every planned run once."""
    import pyarrow.dataset as ds

    scn = tmp_path / "tiny.scn"
    scn.write_text(tiny())
    out = tmp_path / "out"
    assert main(_sweep(scn, out)) == 0
    groups = _runs_per_group(out)
    g1, g2 = sorted(groups)[:2]
    f1 = next((out / "parquet" / "runs").rglob(f"{g1}.parquet"))
    f2 = next((out / "parquet" / "runs").rglob(f"{g2}.parquet"))
    f1.unlink()
    with open(f2, "r+b") as f:
        f.truncate(f2.stat().st_size // 2)
    capsys.readouterr()
    assert main(_sweep(scn, out)) == 0
    cap = capsys.readouterr()
    lost = len(groups[g1]) + len(groups[g2])
    assert f"{12 - lost} already done, {lost} run now" in cap.out
    assert "is missing" in cap.err and "damaged" in cap.err
    ids = ds.dataset(out / "parquet" / "runs", partitioning="hive").to_table()["run_id"].to_pylist()
    assert sorted(ids) == sorted(r for rs in groups.values() for r in rs)
    assert len(list((out / "quarantine").rglob("*.parquet"))) == 1  # the truncated one, kept


def test_the_writer_lock_does_not_follow_a_symlink(tmp_path):
    """A symlink at .irqlab-writer.lock is refused; the file it points to is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".irqlab-writer.lock").symlink_to(victim)
    with pytest.raises(ScenarioError, match="symbolic link"):
        ResultStore(out)
    assert victim.read_text() == "precious"


def test_the_writer_lock_is_not_truncated(tmp_path):
    """Taking the lock keeps an existing lock file's content (it is opened without O_TRUNC)."""
    (tmp_path / ".irqlab-writer.lock").write_text("keep")
    with ResultStore(tmp_path):
        pass
    assert (tmp_path / ".irqlab-writer.lock").read_text() == "keep"


def test_the_already_stored_check_is_repeated_inside_the_transaction(tmp_path, monkeypatch):
    """A run another writer commits between a batch's check and its transaction is not
    inserted twice: the batch decides again and stores only the others."""
    import irqlab.results.store as store_mod

    real = store_mod.shards.write_temp
    calls = []

    def racing(root, rel, table):
        if not calls:  # another writer commits run r000000 while the temps are written
            with closing(sqlite3.connect(tmp_path / "results.db", timeout=30)) as other:
                other.execute("INSERT INTO runs(run_id, sweep_id, status, shard) "
                              "VALUES ('r000000', 's1', 'ok', 'elsewhere')")
                other.commit()
        calls.append(rel)
        return real(root, rel, table)

    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        monkeypatch.setattr(store_mod.shards, "write_temp", racing)
        store.write_batch("s1", run_infos(3), make_result(3))
    with closing(sqlite3.connect(tmp_path / "results.db")) as db:
        rows = db.execute("SELECT run_id, shard FROM runs ORDER BY run_id").fetchall()
    assert [r for r, _ in rows] == ["r000000", "r000001", "r000002"]
    assert rows[0][1] == "elsewhere"
    assert not [p for p in (tmp_path / "parquet").rglob(".*") if p.is_file()]
