"""The shipped examples and the embedded default scenario."""

from __future__ import annotations

from importlib import resources

import pytest

from tests.dsl.conftest import EXAMPLES, ROOT
from irqlab.cli.main import main
from irqlab.dsl import load, loads
from irqlab.resolve import resolve


def test_check_all_examples(capsys):
    """'irqlab check examples/*.scn' passes."""
    assert main(["check", *map(str, EXAMPLES)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_has_a_source_header(path):
    """Each example starts with a comment that says what it models and its sources."""
    head = path.read_text(encoding="utf-8").split("\n\n")[0]
    assert head.startswith("# ") and "Sources:" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_resolves(path):
    """Every example resolves with no expression left outside its sweep."""
    resolve(load(path))


def test_default_is_self_contained_copy_of_sweep_founding():
    """irqlab/data/default.scn has no import and lowers to sweep_founding.scn's IR."""
    text = resources.files("irqlab").joinpath("data/default.scn").read_text(encoding="utf-8")
    assert "import" not in [ln.split()[0] for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert loads(text, "<default>") == load(ROOT / "examples" / "sweep_founding.scn")


def test_founding_case_as_specified():
    """The founding case has the machine, levels, device and run the issue describes."""
    s = load(ROOT / "examples" / "founding_case.scn")
    m = s.machine
    assert (m.irqchip, m.apicv, m.x2apic, m.suppress_eoi_broadcast, m.preemption_timer_rate) == \
        ("split", True, True, "quirk", 5)
    assert m.tsc.value == 2.5e9
    lv = s.vcpus[0].levels
    assert [(x.level, x.name) for x in lv] == [("L0", ""), ("L1", "hyperv"), ("L2", "windows")]
    assert lv[1].policy.name == "eoi_before_lower"
    d = s.devices[0]
    assert (d.name, d.gsi, d.vector, d.trigger, d.serviced_by) == ("uhci", 23, 0x50, "level", "L2")
    assert d.service.value == pytest.approx(20e-6) and d.arrival.name == "once"
    assert s.mitigations == () and s.run.replications == 4 and s.run.duration.value == pytest.approx(0.1)
    assert all(a.value.unit == "cycles" for a in s.costs)
