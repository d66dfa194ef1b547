"""Studies: every sweep of a file run one after the other and joined in one table;
the embedded default job is one."""

from __future__ import annotations

import math
import re
import sqlite3
from importlib import resources

import pytest

from irqlab.cli.main import main
from irqlab.dsl import loads
from irqlab.errors import ScenarioError
from irqlab.experiments import study
from irqlab.experiments.driver import RunRow

STUDY = """\
param svc = 5us

scenario base {
    machine { irqchip split }
    vcpu 0 { L1 linux { policy lower_then_eoi } }
    device d { gsi 20; vector 0x61; trigger level; arrival poisson rate 20kHz; serviced_by L1 after svc }
    run { duration 2ms; replications 2 }
}

# the first member
scenario a extends base {
    mitigation qemu_eoi_throttle {}
    sweep { qemu_eoi_throttle.threshold = [10, 100] }
}

# the second member, with a storm-like single arrival
scenario b extends base {
    device d { arrival once at 0 }
    mitigation qemu_eoi_throttle {}
    sweep { qemu_eoi_throttle.threshold = [10, 100] }
}
"""


def default_text() -> str:
    return resources.files("irqlab").joinpath("data/default.scn").read_text(encoding="utf-8")


def test_each_member_stands_alone_as_its_main_scenario():
    """A member's text is the prelude plus its own lines, and lowers to that member."""
    ms = study.members(STUDY, "s.scn")
    assert [m.name for m in ms] == ["a", "b"]
    for m in ms:
        assert loads(m.text, "s.scn").name == m.name
        assert "param svc = 5us" in m.text and "scenario base" in m.text
    assert "# the second member" in ms[1].text and "scenario a " not in ms[1].text


def test_members_know_their_side():
    """A member whose devices all raise once answers the storm side; the others name
    their recurring devices."""
    a, b = study.members(STUDY, "s.scn")
    assert (a.episode, a.devices) == (False, ("d",))
    assert (b.episode, b.devices) == (True, ())


def test_a_file_without_a_sweep_is_an_error():
    """--all on a file with no sweep says so, located."""
    with pytest.raises(ScenarioError, match="no scenario in this file has a sweep"):
        study.members(STUDY.replace("sweep { qemu_eoi_throttle.threshold = [10, 100] }",
                                    "run { replications 1 }"), "s.scn")


def test_pareto_front_keeps_only_undominated_points():
    """A point is on the front unless another is as good everywhere and better somewhere."""
    pts = [(1.0, 5.0), (2.0, 2.0), (3.0, 2.0), (5.0, 1.0), (math.nan, 0.0)]
    assert study.pareto_front(pts, [False, False]) == [True, True, False, True, False]
    assert study.pareto_front([(1.0, 1.0), (1.0, 2.0)], [False, True]) == [False, True]


def _row(point, params, **metrics):
    return RunRow(point, 0, "ok", params, metrics)


def test_tradeoff_joins_the_sides_of_one_setting_in_one_row():
    """Members sweeping the same paths are joined per value: one row has both sides."""
    a, b = study.members(STUDY, "s.scn")
    path = "mitigation.qemu_eoi_throttle.threshold"
    dev = [_row(0, {path: 10}, sim_time_ns=1e6, **{"device.d.latency_p99_ns": 1e6, "device.d.serviced": 5}),
           _row(1, {path: 100}, sim_time_ns=1e6, **{"device.d.latency_p99_ns": 2e4, "device.d.serviced": 20})]
    storm = [_row(0, {path: 10}, time_to_l2_progress_ns=9e4, l2_fraction=0.99),
             _row(1, {path: 100}, time_to_l2_progress_ns=math.nan, l2_fraction=0.0)]
    sides = [study.Side(a, (path,), {}, dev, True), study.Side(b, (path,), {}, storm, True)]
    header, rows, n = study.tradeoff_table(sides)
    assert header == ["mitigation", "threshold", "d p99", "d per s", "storm: L2 runs after",
                      "L2 share", "front"]
    assert rows == [["qemu_eoi_throttle", "10", "1ms", "5,000", "90us", "0.990", "*"],
                    ["qemu_eoi_throttle", "100", "20us", "20,000", "never", "0.000", "*"]]


def test_study_runs_every_member_and_prints_one_table(tmp_path, capsys):
    """sweep --all stores one sweep per member, prints the joined table, writes the plot
    and says how long it took."""
    f = tmp_path / "s.scn"
    f.write_text(STUDY)
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--all", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    con = sqlite3.connect(out / "results.db")
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sweeps ORDER BY started_at")]
    finally:
        con.close()
    assert names == ["a", "b"]
    assert re.search(r"^mitigation +threshold +d p99 +d per s +storm: progress after +front$", text, re.M)
    assert text.rstrip().splitlines()[-1].startswith("took ")
    assert "s CPU" in text.rstrip().splitlines()[-1]
    assert (out / "tradeoff.png").stat().st_size > 10_000


def test_the_default_job_weighs_both_sides_for_each_mitigation():
    """The embedded default job: a storm and a well-behaved device for each of the seed's
    three mitigations, over the same settings."""
    ms = study.members(default_text(), "<default>")
    sides = {(m.episode, next(iter(loads(m.text, "<d>").mitigations)).name) for m in ms}
    assert sides == {(e, mit) for e in (True, False)
                     for mit in ("qemu_eoi_throttle", "kvm_eoi_delay", "preemption_timer_throttle")}
    for storm, device in zip(ms[0::2], ms[1::2]):
        s, d = loads(storm.text, "<d>"), loads(device.text, "<d>")
        assert s.sweep == d.sweep


def test_the_default_job_dry_run_lists_every_member(capsys):
    """irqlab sweep --dry-run with no file plans the six member sweeps."""
    assert main(["sweep", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in ("storm_qemu", "device_qemu", "storm_kvm", "device_kvm", "storm_pt", "device_pt"):
        assert f"({name}): 8 points x" in out


def _run_ids(out, sweep_name):
    con = sqlite3.connect(out / "results.db")
    try:
        return [r[0] for r in con.execute(
            "SELECT run_id FROM runs JOIN sweeps USING (sweep_id) WHERE sweeps.name = ? "
            "ORDER BY point, replication", (sweep_name,))]
    finally:
        con.close()


@pytest.mark.slow
def test_a_study_rerun_resumes_every_member(tmp_path, capsys):
    """The same study into the same --out runs nothing again and prints the same table."""
    f = tmp_path / "s.scn"
    f.write_text(STUDY)
    out = tmp_path / "out"
    args = ["sweep", str(f), "--all", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    second = capsys.readouterr().out
    assert second.count("0 run now") == 2

    def table(text):
        return text[text.index("mitigation "):text.index("plot:")]

    assert table(first) == table(second)


@pytest.mark.slow
def test_a_member_run_reproduces_from_the_database(tmp_path, capsys):
    """A member's run reproduces bit for bit: its stored text has that member as its main."""
    f = tmp_path / "s.scn"
    f.write_text(STUDY)
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--all", "--out", str(out), "--no-progress", "--no-table"]) == 0
    capsys.readouterr()
    for name in ("a", "b"):
        run_id = _run_ids(out, name)[-1]
        assert main(["reproduce", str(out), run_id]) == 0
        assert "bit-identical" in capsys.readouterr().out


def test_a_bad_option_for_one_member_stops_the_study_before_anything_runs(tmp_path, capsys):
    """A --set that only the second member cannot take is an error before any member runs."""
    f = tmp_path / "s.scn"
    second = STUDY.index("# the second member")
    f.write_text(STUDY[:second] + "scenario b extends base {\n    sweep { svc = [1us, 2us] }\n}\n")
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--all", "--out", str(out), "--no-progress",
                 "--set", "qemu_eoi_throttle.delay=2ms"]) == 2
    assert "no parameter 'qemu_eoi_throttle.delay'" in capsys.readouterr().err
    assert not (out / "results.db").exists()
