"""The language refuses what the engine cannot model about idle vCPUs and destinations,
with the place of the mistake (irqlab check finds it before any run)."""

from __future__ import annotations

import pytest

from irqlab.dsl import loads
from irqlab.errors import ScenarioError

BASE = """scenario s {
    machine { irqchip kernel; vcpus 2; idle on }
    vcpu all { L1 linux { policy lower_then_eoi } }
    device nic { msi; vector 0x41; dest 0; serviced_by L1 after 2us; work 5us; arrival once at 0 }
}
"""


def error_of(text: str) -> tuple[str, int, int]:
    with pytest.raises(ScenarioError) as info:
        loads(text, "t.scn")
    d = info.value.diagnostics[0]
    return d.message, d.span.line, d.span.col


def test_the_base_file_is_valid():
    """Idle vCPUs with a physical destination and work lower without error."""
    assert loads(BASE, "t.scn").machine.idle is True


def test_idle_on_a_nested_guest_points_at_the_idle_field():
    """machine.idle with L2 is refused at the 'idle' value."""
    text = BASE.replace("vcpu all { L1 linux { policy lower_then_eoi } }",
                        "vcpu all { L1 kvm { policy lower_then_eoi }; L2 linux {} }").replace(
        "serviced_by L1", "serviced_by L2")
    msg, line, col = error_of(text)
    assert "single-level guest" in msg and (line, col) == (2, text.splitlines()[1].index("idle on") + 6)


def test_a_logical_destination_matching_no_vcpu_points_at_dest():
    """A logical mask with no vCPU's bit is refused at its dest value."""
    msg, line, _ = error_of(BASE.replace("dest 0;", "dest 0x10; dest_mode logical;"))
    assert "matches no vCPU of 2" in msg and line == 4


def test_work_on_beyond_the_vcpus_is_refused():
    """work_on names an existing vCPU."""
    msg, _, _ = error_of(BASE.replace("work 5us;", "work 5us; work_on 5;"))
    assert "work_on vCPU 5 does not exist" in msg
