"""Every real trace kept under tests/data/traces imports cleanly and has a loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqlab.traces.reader import ReadStats, read_records
from irqlab.traces.summary import Summary

DATA = Path(__file__).parent.parent / "data" / "traces"
REAL = sorted(p for p in DATA.glob("*.txt"))


def test_every_kept_trace_is_cited_in_the_readme():
    """Each trace file under tests/data/traces has its source in README.md."""
    readme = (DATA / "README.md").read_text()
    assert REAL and all(f"`{p.name}`" in readme for p in REAL)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_a_real_trace_imports_without_errors_and_has_a_loop(path):
    """The importer reads every line of a real trace and the storm detector finds a loop."""
    stats, errors, summary = ReadStats(), [], Summary()
    for rec in read_records([str(path)], stats, errors.append):
        summary.add(rec)
    assert errors == [] and stats.records > 0
    loops = [lp for lp in summary.loops().values() if lp is not None]
    assert loops and max(lp.covered for lp in loops) >= 2 * min(len(lp.keys) for lp in loops)
