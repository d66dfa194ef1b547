"""Reading trace files: line forms, malformed lines, files that are not traces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from irqlab.errors import ScenarioError
from irqlab.traces.lines import LineError, parse_line
from irqlab.traces.reader import MAX_LINE, ReadStats, read_records

DATA = Path(__file__).parent.parent / "data" / "traces"
SEED = DATA / "seed-2019-storm.txt"


def _read(path) -> tuple[list[dict], ReadStats, list]:
    stats, errors = ReadStats(), []
    recs = list(read_records([str(path)], stats, errors.append))
    return recs, stats, errors


@pytest.mark.parametrize("line,ts,cpu,task,pid", [
    ("       CPU 0/KVM-4010  [002]     0.000003400: kvm_exit:   reason HLT rip 0x1 info 0 0",
     3400, 2, "CPU 0/KVM", 4010),
    (" qemu-system-x86-10500 [000] d..1  3136.493003: kvm_exit: reason HLT rip 0x1 info 0 0",
     3136493003000, 0, "qemu-system-x86", 10500),
    (" qemu-system-x86-10500 [000] d..2. 3136.493003: kvm_exit: reason HLT rip 0x1 info 0 0",
     3136493003000, 0, "qemu-system-x86", 10500),
    ("[003] 12.000000001: kvm_exit: reason HLT rip 0x1 info 0 0", 12000000001, 3, None, None),
    ("[003] 12000000001: kvm_exit: reason HLT rip 0x1 info 0 0", 12000000001, 3, None, None),
    ("CPU 0/KVM  4010/4011 [002]  1234.567890:  kvm:kvm_exit: reason HLT rip 0x1 info 0 0",
     1234567890000, 2, "CPU 0/KVM", 4011),
    ("qemu-kvm 4010 [002] 1234.567890: 1 kvm:kvm_exit: reason HLT rip 0x1 info 0 0",
     1234567890000, 2, "qemu-kvm", 4010),
    ("kvm_exit: reason HLT rip 0x1 info 0 0", None, None, None, None),
    ("> > kvm_exit: reason HLT rip 0x1 info 0 0", None, None, None, None),
    (">  CPU 0/KVM-4010  [002] 1.5: kvm_exit: reason HLT rip 0x1 info 0 0",
     1500000000, 2, "CPU 0/KVM", 4010),
])
def test_every_line_form_gives_the_same_record(line, ts, cpu, task, pid):
    """trace-cmd (with/without flags, task, ns), perf script, bare and quoted lines all read."""
    p = parse_line(line)
    assert (p.event, p.ts_ns, p.cpu, p.task, p.pid) == ("kvm_exit", ts, cpu, task, pid)
    assert p.rest.startswith("reason HLT")


def test_a_line_that_is_no_record_is_an_error():
    """Prose is not silently taken for a record."""
    with pytest.raises(LineError):
        parse_line("the guest then hangs forever")


def test_the_seed_excerpt_reads_whole():
    """The seed's 33 records read, in four excerpts (segments), with no error."""
    recs, stats, errors = _read(SEED)
    assert (len(recs), stats.skipped, errors) == (33, 0, [])
    assert sorted({r["segment"] for r in recs}) == [0, 1, 2, 3]


def test_the_seed_quoted_in_a_mail_reads_the_same(tmp_path):
    """The seed with '> ' quote marks gives the same records as the seed itself."""
    quoted = tmp_path / "mail.txt"
    quoted.write_text("".join("> " + ln for ln in SEED.read_text().splitlines(True)))
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("file", "raw")} for r in rs]  # noqa: E731
    assert strip(_read(quoted)[0]) == strip(_read(SEED)[0])


def test_a_malformed_line_is_reported_and_skipped(tmp_path):
    """A bad line gives FILE:LINE:COL: error and the lines after it still read."""
    f = tmp_path / "t.txt"
    f.write_text("kvm_entry: vcpu 0\nthis is not a record\nkvm_eoi: apicid 0\nkvm_entry: vcpu 0\n")
    recs, stats, errors = _read(f)
    assert [r["event"] for r in recs] == ["kvm_entry", "kvm_entry"]
    assert stats.skipped == 2
    assert errors[0].format().startswith(f"{f}:2:1: error: not a trace record")
    assert errors[1].format().startswith(f"{f}:3:")
    assert "no 'vector' field" in errors[1].message


def test_an_over_long_line_is_skipped_not_read_whole(tmp_path):
    """A line longer than MAX_LINE is one error; the reader does not hold it."""
    f = tmp_path / "t.txt"
    f.write_text("kvm_entry: vcpu 0\n" + "x" * (3 * MAX_LINE) + "\nkvm_entry: vcpu 1\n")
    recs, stats, errors = _read(f)
    assert [r["vcpu"] for r in recs] == [0, 1] and stats.skipped == 1
    assert "longer than" in errors[0].message


def test_lost_events_are_counted_and_break_the_segment(tmp_path):
    """trace-cmd's [LOST N EVENTS] is counted and no loop spans it."""
    f = tmp_path / "t.txt"
    f.write_text("[000] 1.0: kvm_entry: vcpu 0\nCPU:0 [LOST 42 EVENTS]\n[000] 2.0: kvm_entry: vcpu 0\n")
    recs, stats, _ = _read(f)
    assert stats.lost == 42 and [r["segment"] for r in recs] == [0, 1]


@pytest.mark.parametrize("make,message", [
    (lambda d: str(d / "nope.txt"), "no such file"),
    (lambda d: str(d), "is a directory"),
    (lambda d: (d / "e.txt").write_text("") and None or str(d / "e.txt"), "the file is empty"),
    (lambda d: (d / "b.bin").write_bytes(b"\x7fELF\x00\x01") and None or str(d / "b.bin"),
     "a binary file"),
    (lambda d: (d / "t.dat").write_bytes(b"\x17\x08Dtracing6\x00") and None or str(d / "t.dat"),
     "a trace-cmd .dat file"),
    (lambda d: "/dev/zero", "not a regular file"),
])
def test_files_that_are_not_traces_are_refused(tmp_path, make, message):
    """Missing, directory, empty, binary, .dat and device files get a clear error."""
    with pytest.raises(ScenarioError, match=message):
        _read(make(tmp_path))


def test_a_fifo_is_refused_without_blocking(tmp_path):
    """A FIFO is refused before anything opens it (opening would block)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="not a regular file"):
        _read(fifo)


def test_one_space_indented_records_are_not_taken_for_wrapped_lines(tmp_path):
    """Records indented by one space (as the seed mail quoted them) stay separate records."""
    f = tmp_path / "t.txt"
    f.write_text("".join(" " + ln for ln in SEED.read_text().splitlines(True)))
    assert len(_read(f)[0]) == 33


def test_a_record_wrapped_in_a_quoted_mail_is_joined(tmp_path):
    """A kvm_exit whose info values the mail wrapped onto the next quoted line reads whole."""
    f = tmp_path / "t.txt"
    f.write_text(">   kvm_exit:             reason EXIT_NPF rip 0xffffffffffbbe119 info\n"
                 ">     200000006 1ab000\n"
                 ">   kvm_entry:            vcpu 0, rip 0x7ffbb280\n")
    recs, stats, errors = _read(f)
    assert errors == [] and [r["event"] for r in recs] == ["kvm_exit", "kvm_entry"]
    assert (recs[0]["info1"], recs[0]["info2"]) == (0x200000006, 0x1AB000)
