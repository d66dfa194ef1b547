"""The trace renderings: trace-cmd report lines and the Perfetto JSON timeline."""

from __future__ import annotations

import json
import re

from irqlab.cli.main import main
from irqlab.engine.trace import format_report, to_perfetto
from tests.engine.helpers import run
from tests.engine.scenarios import founding, ms

LINE = re.compile(r"^ *(?P<comm>.+)-(?P<pid>\d+) +\[(?P<cpu>\d{3})\] +(?P<ts>\d+\.\d{9}): "
                  r"(?P<event>\w+): +(?P<text>.*)$")


def test_report_lines_look_like_trace_cmd():
    """Every line is 'comm-pid [cpu] seconds: event: fields', in time order."""
    r = run(founding(duration=ms(0.05)))
    lines = list(format_report(r.traces[0]))
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed) and len(lines) == r.lane(0)["events"]
    ts = [float(m["ts"]) for m in parsed]
    assert ts == sorted(ts)
    assert parsed[4]["comm"].strip() == "CPU 0/KVM" and parsed[4]["event"] == "kvm_exit"


def test_report_filters_events_by_name_and_prefix():
    """An event filter keeps the named events and prefixes ending in '*'."""
    r = run(founding(duration=ms(0.05)))
    only = {LINE.match(x)["event"] for x in format_report(r.traces[0], ["kvm_e*", "kvm_eoi"])}
    assert only == {"kvm_exit", "kvm_entry", "kvm_eoi"}


def test_perfetto_has_mode_spans_per_vcpu_and_counters():
    """The timeline: L0/L1/L2/userspace spans on the vCPU's track that cover the run, instant
    events for the records, counters for the line and the IRR."""
    s = founding(duration=ms(0.05))
    r = run(s)
    doc = to_perfetto(r.traces[0], 1)
    spans = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert {e["name"] for e in spans} == {"L0", "L1", "userspace"}
    assert abs(sum(e["dur"] for e in spans) - 50.0) < 1e-6  # us, the whole run
    counters = {e["name"] for e in doc["traceEvents"] if e["ph"] == "C"}
    assert {"gsi 23 line", "vCPU 0 IRR", "vCPU 0 ISR"} <= counters
    instants = [e for e in doc["traceEvents"] if e["ph"] == "i"]
    assert len(instants) == r.lane(0)["events"]
    json.dumps(doc)


def test_trace_command_writes_perfetto_and_prints_records(tmp_path, capsys):
    """`irqlab trace FILE --perfetto out.json` prints the records and writes the timeline."""
    out = tmp_path / "storm.json"
    rc = main(["trace", "examples/founding_case.scn", "--set", "run.duration=20us", "-e", "kvm_exit",
               "--perfetto", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "reason EOI_INDUCED" in text and "kvm_entry" not in text
    assert json.loads(out.read_text())["traceEvents"]


def test_run_json_has_the_metric_names_of_the_issue(capsys):
    """`irqlab run --json` gives every run with the documented metric names."""
    rc = main(["run", "examples/founding_case.scn", "--set", "run.duration=1ms", "-n", "2", "--json"])
    runs = json.loads(capsys.readouterr().out)["runs"]
    want = {"l2_time_ns", "l1_time_ns", "l0_time_ns", "userspace_time_ns", "l2_fraction",
            "time_to_l2_progress_ns", "livelock", "exits", "eoi_count", "interrupts_raised",
            "interrupts_delivered", "interrupts_coalesced", "mitigation_activations", "events", "truncated"}
    assert rc == 0 and len(runs) == 2 and want <= set(runs[0])
    dev = runs[0]["devices"]["uhci"]
    assert {"raised", "delivered", "coalesced", "latency_p50_ns", "latency_p99_ns", "latency_max_ns"} <= set(dev)


def test_bad_override_is_located_on_the_command_line(capsys, monkeypatch):
    """`--set` with a value of the wrong dimension: exit 2, the error points at the value on
    the command line, no traceback."""
    argv = ["run", "examples/founding_case.scn", "--set", "run.duration=5kHz"]
    monkeypatch.setattr("sys.argv", ["irqlab", *argv])
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("<command line>:1:58: error:") and "Traceback" not in err
    assert "irqlab run examples/founding_case.scn --set run.duration=5kHz" in err
