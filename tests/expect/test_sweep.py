"""Expectations inside a sweep: pass/fail per run, stored as columns in SQL and Parquet."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from irqlab.cli.main import main

FOUNDING = Path(__file__).resolve().parents[2] / "examples" / "founding_case.scn"

SWEEP = f'''import "{FOUNDING}"

scenario sw extends founding_case {{
    mitigation qemu_eoi_throttle {{ delay 10ms }}
    run {{ duration 2ms }}
    sweep {{
        qemu_eoi_throttle.threshold = [10, 10000]
        replications 2
        expect {{
            devices.uhci.serviced == 1
            time_to_l2_progress_ns < threshold * 10us
        }}
    }}
}}
'''


def run_sweep(tmp_path: Path) -> Path:
    f = tmp_path / "sw.scn"
    f.write_text(SWEEP)
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--launcher", "inline"]) == 0
    return tmp_path / "out"


def test_each_run_records_each_expectation_and_a_pass_column(tmp_path, capsys):
    """expect_1, expect_2 and expect_pass per run, in the sweep's view (SQL) and its Parquet rows."""
    out = run_sweep(tmp_path)
    con = sqlite3.connect(out / "results.db")
    rows = con.execute("SELECT threshold, expect_1, expect_2, expect_pass FROM sweep_sw "
                       "ORDER BY threshold, replication").fetchall()
    assert rows == [(10, 1, 1, 1), (10, 1, 1, 1), (10000, 0, 0, 0), (10000, 0, 0, 0)]
    desc = dict(con.execute("SELECT column_name, description FROM sweep_columns "
                            "WHERE column_name LIKE 'expect%'").fetchall())
    assert desc["expect_pass"] == "every expectation of the sweep's expect block held in this run"
    import pyarrow.dataset as ds

    t = ds.dataset(out / "parquet" / "runs", format="parquet", partitioning="hive").to_table()
    assert t.schema.field("expect_pass").type == "bool"
    assert sorted(t.column("expect_pass").to_pylist()) == [False, False, True, True]


def test_a_run_with_expectation_columns_still_reproduces(tmp_path, capsys):
    """irqlab reproduce recomputes the expectation columns: the run reproduces bit for bit."""
    out = run_sweep(tmp_path)
    con = sqlite3.connect(out / "results.db")
    for (rid,) in con.execute("SELECT run_id FROM sweep_sw").fetchall():
        assert main(["reproduce", str(out / "results.db"), rid]) == 0
    assert "NOT reproduced" not in capsys.readouterr().out
