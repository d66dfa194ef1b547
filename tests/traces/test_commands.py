"""The commands: traces import / summary, compare, calibrate; good input and bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from irqlab.cli.main import main

DATA = Path(__file__).parent.parent / "data" / "traces"
SEED = str(DATA / "seed-2019-storm.txt")
KAFL = str(DATA / "kafl-44-external-interrupt.txt")
CASE = "examples/founding_case.scn"
SEED_LOOP = ["kvm_exit VMRESUME", "kvm_entry", "kvm_exit PREEMPTION_TIMER",
             "kvm_nested_vmexit PREEMPTION_TIMER", "kvm_nested_vmexit_inject EXTERNAL_INTERRUPT vec 80",
             "kvm_entry", "kvm_exit EOI_INDUCED", "kvm_eoi vec 80",
             "kvm_userspace_exit KVM_EXIT_IOAPIC_EOI", "kvm_set_irq gsi 23 level 1",
             "kvm_msi_set_irq vec 80", "kvm_apic_accept_irq vec 80", "kvm_entry"]


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _loop_lines(out: str) -> list[str]:
    lines = out.split("loop on ", 1)[1].splitlines()[1:]
    return [" ".join(ln.split()[1:]).split("  rip")[0].split(" rip 0x")[0] for ln in lines
            if ln.strip()[:1].isdigit()]


def test_import_writes_one_row_per_record_with_typed_columns(capsys, tmp_path):
    """traces import writes the seed's 33 records to Parquet with typed fields."""
    import pyarrow.parquet as pq

    out = tmp_path / "seed.parquet"
    rc, stdout, _ = _run(capsys, "traces", "import", SEED, "-o", out)
    t = pq.read_table(out)
    assert rc == 0 and t.num_rows == 33 and "33 records" in stdout
    rows = [r for r in t.to_pylist() if r["event"] == "kvm_exit" and r["reason"] == "EOI_INDUCED"]
    assert rows[0]["rip"] == 0xFFFFF80006A17E1A and rows[0]["info1"] == 0x50


def test_import_reports_malformed_lines_and_keeps_the_rest(capsys, tmp_path):
    """A malformed line is reported as FILE:LINE and skipped; the import still succeeds."""
    src = tmp_path / "t.txt"
    src.write_text("kvm_entry: vcpu 0\ngarbage line here\nkvm_entry: vcpu 0\n")
    rc, stdout, err = _run(capsys, "traces", "import", src, "-o", tmp_path / "o.parquet")
    assert rc == 0 and f"{src}:2:1: error: not a trace record" in err
    assert "2 records" in stdout and "1 malformed line skipped" in stdout


@pytest.mark.parametrize("content", [None, b"", b"\x00\x01\x02binary", b"nothing\nof use\n"])
def test_import_of_no_trace_is_a_user_error(capsys, tmp_path, content):
    """Missing, empty, binary and all-malformed inputs exit 2 and write nothing."""
    src = tmp_path / "in.txt"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "o.parquet"
    rc, _, err = _run(capsys, "traces", "import", src, "-o", out)
    assert rc == 2 and "error" in err and "Traceback" not in err
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_import_of_a_directory_is_a_user_error(capsys, tmp_path):
    """A directory given as FILE is refused with exit status 2."""
    rc, _, err = _run(capsys, "traces", "import", tmp_path, "-o", tmp_path / "o.parquet")
    assert rc == 2 and "is a directory" in err


def test_summary_finds_the_seeds_loop_in_its_own_excerpt(capsys):
    """The storm detector finds the founding loop (13 records) in the seed's excerpts."""
    rc, out, _ = _run(capsys, "traces", "summary", SEED)
    assert rc == 0 and "13 records a pass" in out
    assert _loop_lines(out) == SEED_LOOP
    assert "rip 0xfffff80006a17e1a" in out and "KVM_EXIT_IOAPIC_EOI 2" in out


def test_summary_counts_exits_vectors_and_rates(capsys):
    """Exits per vCPU, per-vector counts and a period with jitter from a timed trace."""
    rc, out, _ = _run(capsys, "traces", "summary", KAFL)
    assert rc == 0 and "vCPU 0: EXTERNAL_INTERRUPT 4" in out
    assert "period 4 ms" in out and "rates per second" in out
    assert "KVM_EXIT_INTR 1" in out


def test_summary_reads_an_imported_parquet_as_its_source(capsys, tmp_path):
    """summary of the imported Parquet prints what summary of the text prints (but the name)."""
    out = tmp_path / "seed.parquet"
    _run(capsys, "traces", "import", SEED, "-o", out)
    _, a, _ = _run(capsys, "traces", "summary", SEED)
    _, b, _ = _run(capsys, "traces", "summary", out)
    assert a.splitlines()[1:] == b.splitlines()[1:]


def test_summary_of_a_fifo_is_refused(capsys, tmp_path):
    """summary refuses a FIFO instead of blocking on it."""
    import os

    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    rc, _, err = _run(capsys, "traces", "summary", fifo)
    assert rc == 2 and "not a regular file" in err


def test_compare_matches_the_seed_with_the_founding_case(capsys):
    """compare matches the seed excerpt against founding_case.scn record by record."""
    rc, out, _ = _run(capsys, "compare", CASE, SEED)
    assert rc == 0 and "the loops match record by record (13 records a pass)" in out


def test_compare_notes_fields_that_differ_in_matching_records(capsys):
    """The seed's accept_irq says edge where the model says level: noted, still a match."""
    rc, out, _ = _run(capsys, "compare", CASE, SEED)
    assert rc == 0 and ("step 12: same record, other fields: trace 'apicid 0 vec 80 (Fixed|edge)', "
                        "model 'apicid 0 vec 80 (Fixed|level)'") in out
    assert out.count("same record, other fields") == 1  # RIPs and the rest agree


def test_compare_reports_the_first_difference(capsys):
    """A trace whose loop is not the scenario's: exit 1 and the first differing step."""
    rc, out, _ = _run(capsys, "compare", CASE, KAFL)
    assert rc == 1 and "the loops differ: first at trace step" in out


def test_compare_with_a_scenario_in_error_is_a_located_user_error(capsys, tmp_path):
    """A scenario with an error is reported at its line, exit 2."""
    bad = tmp_path / "bad.scn"
    bad.write_text(Path(CASE).read_text().replace("vector 0x50", "vector 0x50 0x60"))
    rc, _, err = _run(capsys, "compare", bad, SEED)
    assert rc == 2 and f"{bad}:" in err and "error" in err


def test_calibrate_needs_timestamps(capsys):
    """Calibrating to an untimed excerpt says why it cannot, exit 2."""
    rc, _, err = _run(capsys, "calibrate", CASE, SEED, "--fit", "costs.vmexit")
    assert rc == 2 and "no timestamps" in err


def test_calibrate_rejects_an_unknown_cost(capsys):
    """--fit with a misspelt cost names it and suggests the right one."""
    rc, _, err = _run(capsys, "calibrate", CASE, KAFL, "--fit", "costs.vmexti")
    assert rc == 2 and "no cost 'costs.vmexti'" in err and "vmexit" in err


def test_calibrate_refuses_a_trace_whose_loop_is_not_the_models(capsys):
    """Fitting costs to a loop the model does not have is refused, not guessed."""
    rc, _, err = _run(capsys, "calibrate", CASE, KAFL, "--fit", "costs.vmexit")
    assert rc == 2 and "does not match the trace's" in err


TRUE_COSTS = {"vmexit": 1300, "vmentry": 900, "nested_exit": 6000, "nested_entry": 5200,
              "userspace_exit": 5000, "eoi": 420, "ioapic": 650, "handler": 2500, "resume": 700}


def _irqlab_trace(capsys, tmp_path, *extra) -> Path:
    sets = [a for c, v in TRUE_COSTS.items() for a in ("--set", f"costs.{c}={v}cycles")]
    out = tmp_path / "scenario.txt"
    rc, stdout, _ = _run(capsys, "trace", CASE, "--set", "run.duration=1ms", *sets, *extra)
    assert rc == 0
    out.write_text(stdout)
    return out


def _fitted(out: str) -> dict[str, tuple[float, str]]:
    block = out.split("costs {", 1)[1].split("}", 1)[0]
    got = {}
    for ln in block.strip().splitlines():
        name, value, _, _, note = ln.split(None, 4)
        got[name] = (float(value), note)
    return got


@pytest.mark.slow
@pytest.mark.parametrize("form", ["text", "perfetto"])
def test_round_trip_calibration_gives_back_the_scenarios_costs(capsys, tmp_path, form):
    """A trace irqlab writes, imported and calibrated from the default costs, gives back the
    costs within 1%; mmio, which no step of the loop depends on, is said to be undetermined."""
    text = _irqlab_trace(capsys, tmp_path, "--perfetto", tmp_path / "t.json")
    trace = text if form == "text" else tmp_path / "t.json"
    rc, out, _ = _run(capsys, "compare", CASE, trace)
    assert rc == 0
    rc, out, _ = _run(capsys, "calibrate", CASE, trace)
    got = _fitted(out)
    assert rc == 0
    for name, true in TRUE_COSTS.items():
        assert abs(got[name][0] - true) <= 0.01 * true, (name, got[name], true)
    assert got["mmio"] == (1500.0, "not determined by the trace: no step of its loop depends on it (kept)")
    if form == "text":  # the printed block, pasted into a scenario, reproduces the trace's steps
        block = out[out.index("costs {"):out.index("}", out.index("costs {")) + 1]
        (tmp_path / "founding_case.scn").write_text(Path(CASE).read_text())
        machine = tmp_path / "machine.scn"
        machine.write_text(f'import "founding_case.scn"\nscenario machine extends founding_case {{\n{block}\n}}\n')
        rc, out, _ = _run(capsys, "compare", machine, trace)
        ratios = [float(ln.split()[-1]) for ln in out.splitlines()
                  if ln.strip()[:1].isdigit() and ln.split()[-1] != "-"]
        assert rc == 0 and len(ratios) == 9 and all(abs(r - 1) <= 0.01 for r in ratios)


def test_perfetto_json_round_trips_the_records(capsys, tmp_path):
    """irqlab's Perfetto JSON imports to the same events and times as its trace-cmd text."""
    import pyarrow.parquet as pq

    text = _irqlab_trace(capsys, tmp_path, "--perfetto", tmp_path / "t.json")
    _run(capsys, "traces", "import", text, "-o", tmp_path / "a.parquet")
    _run(capsys, "traces", "import", tmp_path / "t.json", "-o", tmp_path / "b.parquet")
    a = pq.read_table(tmp_path / "a.parquet").to_pylist()
    b = pq.read_table(tmp_path / "b.parquet").to_pylist()
    key = lambda r: (r["ts_ns"], r["event"], r["raw"], r["vcpu"])  # noqa: E731
    assert len(a) == len(b) > 100
    assert sorted(map(key, a), key=str) == sorted(map(key, b), key=str)
    assert json.loads((tmp_path / "t.json").read_text())["otherData"]["generator"] == "irqlab"


def test_summary_finds_one_loop_per_vcpu_in_interleaved_threads(capsys, tmp_path):
    """Two vCPU threads interleaved in one perf script: each gets its own loop."""
    seed = [ln for ln in Path(SEED).read_text().splitlines() if ln.startswith("kvm_")][19:32]
    lines = []
    for i in range(3 * len(seed)):
        for v, shift in ((0, 0), (1, 5)):
            rec = seed[(i + shift) % len(seed)]
            lines.append(f"CPU {v}/KVM {4010 + v} [00{v}] {1 + i * 1e-6:.6f}: kvm:{rec}")
    f = tmp_path / "perf.txt"
    f.write_text("\n".join(lines) + "\n")
    rc, out, _ = _run(capsys, "traces", "summary", f)
    assert rc == 0 and "loop on vCPU 0: 13 records a pass" in out
    assert "loop on vCPU 1: 13 records a pass" in out


def test_summary_of_a_file_without_records_is_a_user_error(capsys, tmp_path):
    """A text with no record (only prose) exits 2 and says so."""
    f = tmp_path / "t.txt"
    f.write_text("hello\nworld\n")
    rc, _, err = _run(capsys, "traces", "summary", f)
    assert rc == 2 and "no trace records" in err and f"{f}:1:1: error" in err


def test_import_into_a_missing_directory_is_a_user_error(capsys, tmp_path):
    """-o into a directory that does not exist exits 2 before reading anything."""
    rc, _, err = _run(capsys, "traces", "import", SEED, "-o", tmp_path / "no" / "o.parquet")
    assert rc == 2 and "no directory" in err


def test_calibrate_with_a_scenario_in_error_is_a_located_user_error(capsys, tmp_path):
    """calibrate reports a broken scenario at its line, exit 2."""
    bad = tmp_path / "bad.scn"
    bad.write_text(Path(CASE).read_text().replace("vmexit 1000 cycles", "vmexit 1000 parsecs"))
    rc, _, err = _run(capsys, "calibrate", bad, KAFL)
    assert rc == 2 and f"{bad}:" in err


@pytest.mark.parametrize("value,message", [("foo", "--duration: 'foo' is not a number"),
                                           ("3GHz", "--duration takes a positive time"),
                                           ("0ms", "--duration takes a positive time")])
def test_a_bad_duration_is_named_as_the_option_at_fault(capsys, value, message):
    """--duration that is not a positive time is reported as the option's error."""
    rc, _, err = _run(capsys, "compare", CASE, SEED, "--duration", value)
    assert rc == 2 and message in err and "founding_case.scn:" not in err


def test_import_of_several_files_keeps_each_records_file(capsys, tmp_path):
    """Several FILEs go into one table; each row names the file it came from."""
    import pyarrow.parquet as pq

    out = tmp_path / "all.parquet"
    rc, _, _ = _run(capsys, "traces", "import", SEED, KAFL, "-o", out)
    files = pq.read_table(out, columns=["file"]).column("file").to_pylist()
    assert rc == 0 and (files.count(SEED), files.count(KAFL)) == (33, 10)


@pytest.mark.parametrize("text,message", [
    ('{"traceEvents": [', "not valid JSON"),
    ('{"displayTimeUnit": "ns"}', "no 'traceEvents' list"),
])
def test_a_json_file_that_is_not_a_trace_is_a_user_error(capsys, tmp_path, text, message):
    """Broken JSON, or JSON without traceEvents, exits 2 with what is wrong."""
    f = tmp_path / "t.json"
    f.write_text(text)
    rc, _, err = _run(capsys, "traces", "import", f, "-o", tmp_path / "o.parquet")
    assert rc == 2 and message in err


def test_a_bad_instant_event_in_json_is_skipped_and_reported(capsys, tmp_path):
    """An instant event without its text is reported by index and the others are kept."""
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"traceEvents": [
        {"ph": "i", "cat": "event", "name": "kvm_entry", "ts": 1.0, "tid": 10, "args": {"text": "vcpu 0"}},
        {"ph": "i", "cat": "event", "name": "kvm_exit", "ts": 2.0, "tid": 10, "args": {}},
        {"ph": "i", "cat": "event", "name": "kvm_entry", "ts": 3.0, "tid": 10, "args": {"text": "vcpu 0"}},
    ]}))
    rc, out, err = _run(capsys, "traces", "import", f, "-o", tmp_path / "o.parquet")
    assert rc == 0 and "traceEvents[1]" in err and "2 records" in out


def test_a_failed_write_leaves_no_partial_output(capsys, tmp_path, monkeypatch):
    """A disk that fills during the import is a user error; no half-written file stays."""
    from irqlab.traces.table import TraceWriter

    def full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TraceWriter, "flush", full)
    out = tmp_path / "o.parquet"
    rc, _, err = _run(capsys, "traces", "import", SEED, "-o", out)
    assert rc == 2 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_a_timed_trace_without_exits_is_not_called_untimed(capsys, tmp_path):
    """Timestamps are noticed on any record, not only on exits and EOIs."""
    f = tmp_path / "t.txt"
    f.write_text("[000] 1.000001: kvm_set_irq: gsi 23 level 1 source 0\n"
                 "[000] 1.000002: kvm_set_irq: gsi 23 level 0 source 0\n")
    rc, out, _ = _run(capsys, "traces", "summary", f)
    assert rc == 0 and "no timestamps" not in out.splitlines()[0]


@pytest.mark.slow
def test_a_trace_of_exits_only_compares_and_calibrates_in_combination(capsys, tmp_path):
    """A trace of kvm_exit/kvm_entry only is compared with the model's exits and entries;
    the costs it cannot separate are given as the sums it determines."""
    trace = _irqlab_trace(capsys, tmp_path, "-e", "kvm_exit,kvm_entry")
    rc, out, _ = _run(capsys, "compare", CASE, trace)
    assert rc == 0 and "the loops match record by record (6 records a pass)" in out
    rc, out, _ = _run(capsys, "calibrate", CASE, trace)
    got = _fitted(out)
    assert rc == 0 and got["vmentry"][0] == pytest.approx(900, rel=0.01)
    assert got["nested_entry"] == (4500.0, got["nested_entry"][1]) and "only together" in got["nested_entry"][1]
    assert "vmexit + nested_entry = 6500" in out and "vmexit + nested_exit = 7300" in out
    assert "vmexit + userspace_exit + eoi + ioapic = 7370" in out
