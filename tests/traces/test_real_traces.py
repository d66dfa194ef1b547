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


# The loop each real trace holds, as the storm detector reads it (checked by hand against the
# source): the seed's founding loop, kAFL's timer interrupt at one RIP, the nested guest's
# VMREAD pair, and the three kvm_entry records of the SMM excerpt.
LOOPS = {
    "seed-2019-storm.txt": 13,
    "kafl-44-external-interrupt.txt": ("kvm_entry", "kvm_exit EXTERNAL_INTERRUPT"),
    "kvm-dr6-nested-2025.txt": ("kvm_entry", "kvm_exit VMREAD"),
    "kvm-nvmx-rsm-triple-fault-2023.txt": ("kvm_entry",),
}


def test_every_kept_trace_has_its_loop_stated():
    """Each real trace has an expected loop in LOOPS (a new file needs one)."""
    assert sorted(LOOPS) == [p.name for p in REAL]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_a_real_trace_imports_without_errors_and_has_its_loop(path):
    """The importer reads every line of a real trace and the storm detector finds its loop."""
    stats, errors, summary = ReadStats(), [], Summary()
    for rec in read_records([str(path)], stats, errors.append):
        summary.add(rec)
    assert errors == [] and stats.skipped == 0 and stats.records > 0
    loops = [lp for lp in summary.loops().values() if lp is not None]
    assert len(loops) == 1
    want = LOOPS[path.name]
    assert (len(loops[0].keys) if isinstance(want, int) else loops[0].keys) == want


def test_wrapped_records_of_a_mail_are_joined():
    """The SMM excerpt's records wrapped over three lines read as one record each."""
    stats, errors = ReadStats(), []
    recs = list(read_records([str(DATA / "kvm-nvmx-rsm-triple-fault-2023.txt")], stats, errors.append))
    assert [r["event"] for r in recs][-2:] == ["kvm_nested_vmenter", "kvm_nested_vmexit_inject"]
    assert recs[-2]["nested_rip"] == 0 and recs[-2]["tdp"] is False
    assert recs[-1]["reason"] == "TRIPLE_FAULT" and recs[-1]["error_code"] == 0
