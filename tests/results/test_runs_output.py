"""`irqlab runs`: a table that reads well, exact machine formats."""

from __future__ import annotations

import dataclasses

from irqlab.cli.main import main
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info


def test_runs_shows_wall_s_readably_and_each_seed(tmp_path, capsys):
    """`runs` prints wall_s to 3 significant digits and each run's seed with its spawn key;
    csv keeps the exact value."""
    runs = [dataclasses.replace(r, wall_s=0.04391891533333592) for r in run_infos(4)]
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", runs, make_result(4))
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "│ 0.0439 " in out and "0.04391891533333592" not in out
    assert "1003 [1, 1]" in out  # seed 1003, spawn key (1, 1)
    assert main(["runs", str(tmp_path), "-f", "csv"]) == 0
    assert "0.04391891533333592" in capsys.readouterr().out
