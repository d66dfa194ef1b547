"""The language of guest actions: `at TIME [every PERIOD] { ioapic ...; msi ... }`."""

from __future__ import annotations

import pytest

from irqlab import ir
from irqlab.cli.main import main
from irqlab.dsl import load_all
from irqlab.resolve import paths, resolve

SMP = """scenario s {
    machine { irqchip kernel; vcpus 2 }
    vcpu all { L1 linux {} }
    device nic { gsi 21; vector 0x41; trigger level; serviced_by L1 after 2us; arrival periodic period 100us }
    device net { msi; vector 0x60; serviced_by L1 after 1us; arrival periodic period 50us }
    ACTIONS
    run { duration 300us }
}
"""


def smp(actions: str) -> str:
    return SMP.replace("    ACTIONS", actions)


def test_at_lowers_to_an_action_with_its_writes_in_order(files):
    """`at` gives an Action: its time, period and writes (fields not named keep their value)."""
    p = files.write("t.scn", smp("    at 3us every 20us { ioapic 21 mask; ioapic 21 dest 1 unmask; msi net dest 1 }"))
    (a,) = load_all(str(p))["s"].actions
    assert a.at == ir.Quantity(3e-6, "s", "3us") and a.every.value == pytest.approx(20e-6)
    assert [(w.target, w.gsi, w.device, w.dest, w.mask) for w in a.writes] == [
        ("ioapic", 21, "", None, True), ("ioapic", 21, "", 1, False), ("msi", -1, "net", 1, None)]


def test_action_times_are_sweepable_paths(files):
    """action.<k>.at and action.<k>.every are parameters: listed, and overridable by --set."""
    p = files.write("t.scn", smp("    at 3us { ioapic 21 dest 1 }\n    at 9us { ioapic 21 dest 0 }"))
    s = load_all(str(p))["s"]
    assert {"action.0.at", "action.0.every", "action.1.at", "action.1.every"} <= set(paths(s))
    assert resolve(s, {"action.1.at": "12us"}).actions[1].at.value == pytest.approx(12e-6)


def test_a_child_scenario_inherits_its_bases_actions(files):
    """`extends` keeps the base's actions; the child's come after them."""
    p = files.write("t.scn", smp("    at 3us { ioapic 21 dest 1 }") +
                    "scenario c extends s {\n    at 9us { ioapic 21 dest 0 }\n}\n")
    acts = load_all(str(p))["c"].actions
    assert [a.writes[0].dest for a in acts] == [1, 0]


@pytest.mark.parametrize("action, fragment, col, hint", [
    ("at 3us { ioapc 21 dest 1 }", "unknown write 'ioapc'", 14, "did you mean 'ioapic'?"),
    ("at 3us { ioapic 21 dst 1 }", "unexpected 'dst' in ioapic write", 24, "did you mean 'dest'?"),
    ("at 3us { ioapic 21 }", "ioapic write changes nothing", 14, None),
    ("at 3 { ioapic 21 dest 1 }", "at takes a time", 8, "write a unit, e.g. 3us"),
    ("at 3us { ioapic x dest 1 }", "must be a number written out", 21, None),
    ("at 3us evry 1us { ioapic 21 dest 1 }", "optionally 'every PERIOD'", 12, None),
    ("at 3us", "at needs a block of writes", 5, None),
    ("at 3us every -1us { ioapic 21 dest 1 }", "every must be at least 0; got -1us", 19, None),
])
def test_a_bad_action_is_reported_at_its_place(files, action, fragment, col, hint):
    """Each mistake in an `at` statement is one error at the offending word."""
    d = files.find(smp("    " + action), fragment)
    assert files.at(d) == f"t.scn:6:{col}"
    if hint:
        assert hint in (d.hint or "")


@pytest.mark.parametrize("action, message", [
    ("at 3us { ioapic 22 dest 1 }", "error: no device uses gsi 22"),
    ("at 3us { ioapic 21 dest 5 }", "error: dest 5: the machine has 2 vCPU(s)"),
    ("at 3us { msi nic dest 1 }", "error: no MSI device 'nic'"),
])
def test_an_action_the_machine_cannot_do_is_a_located_error(tmp_path, capsys, action, message):
    """Checks against the compiled machine (pins, vCPUs, MSI devices) give file:line:col, status 2."""
    p = tmp_path / "t.scn"
    p.write_text(smp("    " + action))
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{p}:6:14: {message}") and "^" in err and "Traceback" not in err


def test_route_changes_in_a_nested_guest_are_refused(tmp_path, capsys):
    """A nested scenario with an `at` action is rejected with a reason (FORWARD binds devices)."""
    p = tmp_path / "t.scn"
    p.write_text("scenario n {\n    vcpu 0 { L1 hyperv {}; L2 windows {} }\n"
                 "    device uhci { gsi 23; vector 0x50; trigger level; serviced_by L2 after 20us; arrival once at 0 }\n"
                 "    at 1us { ioapic 23 mask }\n}\n")
    assert main(["run", str(p)]) == 2
    assert "route changes are modelled for single-level guests" in capsys.readouterr().err


@pytest.mark.parametrize("write, message", [
    ("ioapic 99 dest 1", "t.scn:6:14: error: no device uses gsi 99"),
    ("ioapic 21 dest 7", "t.scn:6:14: error: dest 7: the machine has 2 vCPU(s)"),
])
def test_check_reports_what_only_the_engine_can_find(files, capsys, write, message):
    """`irqlab check` compiles each scenario at its own values: a write to an unused pin or a
    destination beyond the vCPUs is a located error with its caret, exit 2 (not only at run)."""
    p = files.write("t.scn", smp(f"    at 3us {{ {write} }}"))
    assert main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(str(p.parent / message)) and "^" in err, err


def test_a_bad_action_time_does_not_also_make_its_metrics_unknown(files, capsys):
    """A bad `at` time is the one error shown: the expectations on line_dead_ns that presume
    the action are not reported as unknown metrics."""
    p = files.write("t.scn", smp("    at -3us { ioapic 21 dest 1 }\n    expect { line_dead_ns == 0 }"))
    assert main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert "at must be at least 0" in err and "unknown metric" not in err, err
