"""Semantic errors: each is reported at its exact place with a useful message."""

from __future__ import annotations

from tests.dsl.conftest import GOOD


def with_device(body: str) -> str:
    return GOOD.replace("    device uhci {", body + "\n    device uhci {")


def test_unknown_plugin_has_did_you_mean(files):
    """A misspelt mitigation is reported at its name with the right spelling."""
    d = files.find(with_device("    mitigation qemu_eoi_throtle {}"), "unknown mitigation")
    assert files.at(d) == "t.scn:7:16"
    assert d.hint == "did you mean 'qemu_eoi_throttle'?"


def test_unknown_plugin_parameter_has_did_you_mean(files):
    """A misspelt plugin parameter is reported at the parameter."""
    d = files.find(with_device("    mitigation qemu_eoi_throttle { treshold 10 }"), "has no parameter")
    assert files.at(d) == "t.scn:7:36"
    assert d.message == "mitigation 'qemu_eoi_throttle' has no parameter 'treshold'"
    assert d.hint == "did you mean 'threshold'?"


def test_unknown_field_has_did_you_mean(files):
    """A misspelt device field names the block and suggests the field."""
    d = files.find(GOOD.replace("vector 0x50", "vectr 0x50"), "unknown device field")
    assert files.at(d) == "t.scn:9:9"
    assert d.hint == "did you mean 'vector'?"


def test_missing_required_device_fields(files):
    """A device without vector and arrival lists both, at the device."""
    src = GOOD.replace("        vector 0x50\n", "").replace("        arrival once at 0\n", "")
    d = files.find(src, "is missing")
    assert files.at(d) == "t.scn:7:5"
    assert "vector" in d.message and "arrival" in d.message


def test_missing_required_plugin_parameter(files):
    """poisson without its rate is an error at the arrival."""
    d = files.find(GOOD.replace("arrival once at 0", "arrival poisson"), "needs parameter 'rate'")
    assert files.at(d) == "t.scn:12:9"


def test_duplicate_device(files):
    """A device defined twice in one scenario points at the second with the first's place."""
    d = files.find(with_device("    device uhci { gsi 1 }"), "defined twice")
    assert files.at(d) == "t.scn:8:12"
    assert "first at" in d.message and "t.scn:7:12" in d.message


def test_duplicate_field(files):
    """A field given twice in one block is an error at the second."""
    d = files.find(GOOD.replace("trigger level", "trigger level; trigger edge"), "given twice")
    assert files.at(d) == "t.scn:10:24"


def test_duplicate_param(files):
    """Two params with one name in a scenario."""
    d = files.find(GOOD.replace("scenario s {", "scenario s {\n    param a = 1\n    param a = 2"),
                   "defined twice")
    assert files.at(d) == "t.scn:3:11"


def test_vector_outside_range(files):
    """Vectors below 0x10 are invalid (the LAPIC ignores 0-15)."""
    d = files.find(GOOD.replace("vector 0x50", "vector 0x0F"), "outside")
    assert files.at(d) == "t.scn:9:16"
    assert d.message == "vector 0x0F is outside 0x10-0xFF"


def test_a_negative_hex_field_is_shown_as_written(files):
    """A negative value of a hex field (vector, tpr) is shown as -1, not as '0x-1'."""
    d = files.find(GOOD.replace("vector 0x50", "vector -1"), "outside")
    assert d.message == "vector -1 is outside 0x10-0xFF"


def test_vector_above_range(files):
    """Vectors above 0xFF are invalid."""
    d = files.find(GOOD.replace("vector 0x50", "vector 256"), "outside")
    assert files.at(d) == "t.scn:9:16"


def test_shared_vector_conflicting_triggers(files):
    """Two devices on one vector, one edge and one level."""
    src = with_device("    device nic { gsi 11; vector 0x50; trigger edge; serviced_by L2 after 1us; "
                      "arrival once at 0 }")
    d = files.find(src, "conflicting trigger modes")
    assert files.at(d) == "t.scn:11:17"  # the later device's trigger
    assert "nic and uhci share vector 0x50" in d.message


def test_shared_vector_needs_same_serviced_by(files):
    """Devices sharing a vector must be serviced by one level."""
    src = with_device("    device nic { gsi 11; vector 0x50; trigger level; serviced_by L1 after 1us; "
                      "arrival once at 0 }")
    d = files.find(src, "serviced by different levels")
    assert files.at(d) == "t.scn:12:21"


def test_gsi_beyond_pins(files):
    """gsi 24 does not exist on a 24-pin IOAPIC."""
    d = files.find(GOOD.replace("gsi 23", "gsi 24"), "beyond the IOAPIC")
    assert files.at(d) == "t.scn:8:13"
    assert d.message == "gsi 24 is beyond the IOAPIC's 24 pins (0-23)"


def test_level_triggered_msi(files):
    """An MSI is edge-triggered."""
    d = files.find(GOOD.replace("gsi 23", "msi"), "MSI cannot be level-triggered")
    assert files.at(d) == "t.scn:10:17"


def test_msi_with_gsi(files):
    """A device cannot be both an MSI and an IOAPIC pin."""
    d = files.find(GOOD.replace("gsi 23", "gsi 23; msi"), "an MSI has no gsi")
    assert files.at(d) == "t.scn:8:9"


def test_wrong_unit_dimension(files):
    """A time where a frequency is expected names both."""
    d = files.find(GOOD.replace("irqchip split", "tsc 2.5us"), "takes a frequency")
    assert files.at(d) == "t.scn:2:19"
    assert d.message == "tsc takes a frequency such as 50kHz, not the time 2.5us"


def test_number_without_unit_for_time(files):
    """A bare number for a time asks for a unit."""
    d = files.find(GOOD.replace("after 20us", "after 20"), "takes a time")
    assert files.at(d) == "t.scn:11:30"
    assert d.hint == "write a unit, e.g. 20us"


def test_unknown_unit(files):
    """An unknown unit suggests the closest one."""
    d = files.find(GOOD.replace("after 20us", "after 20usec"), "unknown unit")
    assert files.at(d) == "t.scn:11:30"


def test_sweep_path_does_not_exist(files):
    """Sweeping a mitigation the scenario does not have."""
    src = GOOD.replace("\n}\n", "\n    sweep { grid { qemu_eoi_throttle.threshold = [1, 2] } }\n}\n")
    d = files.find(src, "no parameter 'qemu_eoi_throttle.threshold'")
    assert files.at(d) == "t.scn:14:20"


def test_sweep_path_typo_has_hint(files):
    """A misspelt sweep path suggests the real one."""
    src = GOOD.replace("\n}\n", "\n    mitigation qemu_eoi_throttle {}\n"
                       "    sweep { grid { qemu_eoi_throttle.treshold = [1, 2] } }\n}\n")
    d = files.find(src, "no parameter")
    assert files.at(d) == "t.scn:15:20"
    assert "qemu_eoi_throttle.threshold" in (d.hint or "")


def test_sweep_value_out_of_range(files):
    """An axis value below a plugin parameter's minimum."""
    src = GOOD.replace("\n}\n", "\n    mitigation qemu_eoi_throttle {}\n"
                       "    sweep { grid { qemu_eoi_throttle.threshold = [0, 2] } }\n}\n")
    d = files.find(src, "must be at least 1")
    assert files.at(d) == "t.scn:15:51"


def test_include_cycle(files):
    """a.scn includes b.scn which includes a.scn."""
    files.write("b.scn", 'include "a.scn"\n')
    ds = files.errors('include "b.scn"\n' + GOOD, name="a.scn")
    d = next(x for x in ds if "include cycle" in x.message)
    assert files.at(d) == "b.scn:1:1"
    assert d.message == "include cycle: a.scn -> b.scn -> a.scn"


def test_import_cycle(files):
    """A file that imports itself."""
    d = files.find('import "t.scn"\n' + GOOD, "import cycle")
    assert files.at(d) == "t.scn:1:1"


def test_missing_import_file(files):
    """An import of a file that does not exist points at the file name."""
    d = files.find('import "nope.scn"\n' + GOOD, "cannot read")
    assert files.at(d) == "t.scn:1:8"


def test_unsatisfiable_constraint(files):
    """A constraint that no grid point satisfies is an error at the constraint."""
    src = GOOD.replace("\n}\n", "\n    mitigation qemu_eoi_throttle {}\n    sweep {\n"
                       "        grid { qemu_eoi_throttle.threshold = [10, 100] }\n"
                       "        where qemu_eoi_throttle.threshold > 1000\n    }\n}\n")
    d = files.find(src, "no point of the sweep satisfies")
    assert files.at(d) == "t.scn:17:15"


def test_plugin_param_below_minimum(files):
    """threshold 0 is below qemu_eoi_throttle's minimum of 1."""
    d = files.find(with_device("    mitigation qemu_eoi_throttle { threshold 0 }"), "at least 1")
    assert files.at(d) == "t.scn:7:46"
    assert d.message == "threshold must be at least 1; got 0"


def test_plugin_int_param_must_be_whole(files):
    """An int parameter given 2.5."""
    d = files.find(with_device("    mitigation qemu_eoi_throttle { threshold 2.5 }"), "whole number")
    assert files.at(d) == "t.scn:7:46"


def test_choice_value_unknown(files):
    """A misspelt irqchip mode."""
    d = files.find(GOOD.replace("irqchip split", "irqchip splt"), "cannot be 'splt'")
    assert files.at(d) == "t.scn:2:23"
    assert d.hint == "did you mean 'split'?"


def test_plugin_check_message_mitigation(files):
    """qemu_eoi_throttle's own check rejects the in-kernel irqchip, at the mitigation."""
    src = with_device("    mitigation qemu_eoi_throttle {}").replace("irqchip split", "irqchip kernel")
    d = files.find(src, "needs irqchip split")
    assert files.at(d) == "t.scn:7:5"


def test_plugin_check_message_policy_per_device(files):
    """directed_eoi's check runs for the device it handles, at the policy: a LAPIC that does not
    advertise Directed EOI (LVR bit 24) does not let the guest set SPIV bit 12."""
    src = GOOD.replace("eoi_before_lower", "directed_eoi")
    d = files.find(src, "directed_eoi needs a LAPIC that advertises Directed EOI")
    assert files.at(d) == "t.scn:4:21"
    assert d.hint == "for device uhci"


def test_dest_vcpu_must_exist(files):
    """A device sent to vCPU 1 of a one-vCPU machine."""
    d = files.find(GOOD.replace("trigger level", "trigger level; dest 1"), "does not exist")
    assert files.at(d) == "t.scn:10:29"
    assert d.message == "dest vCPU 1 does not exist (the machine has vCPU 0)"


def test_serviced_by_above_receiving_level(files):
    """L0 cannot service a device whose interrupts arrive at L1."""
    d = files.find(GOOD.replace("serviced_by L2", "serviced_by L0"), "serviced_by L0")
    assert files.at(d) == "t.scn:11:21"
    assert "L1 or L2" in d.message


def test_serviced_by_missing_level(files):
    """serviced_by L2 on a vCPU without L2."""
    d = files.find(GOOD.replace("        L2 windows {}\n", ""), "has no level L2")
    assert files.at(d) == "t.scn:10:21"


def test_levels_must_be_contiguous(files):
    """L2 without L1."""
    src = GOOD.replace("        L1 hyperv { policy eoi_before_lower }\n", "        L0 kvm {}\n")
    d = files.find(src, "L2 needs L1")
    assert files.at(d) == "t.scn:5:9"


def test_only_l2_is_an_error_not_a_crash(files):
    """A vCPU with only L2 (found by the mutation test) is a located error."""
    d = files.find(GOOD.replace("        L1 hyperv { policy eoi_before_lower }\n", ""), "L2 needs L1")
    assert files.at(d) == "t.scn:4:9"


def test_levels_identical_on_every_vcpu(files):
    """vCPU 1 with a different stack than vCPU 0."""
    src = GOOD.replace("    device uhci {", "    vcpu 1 { L1 linux {} }\n    device uhci {")
    d = files.find(src, "has levels L0, L1 but vcpu 0 has")
    assert files.at(d) == "t.scn:7:5"


def test_policy_only_on_receiving_level(files):
    """A policy on L2 is an error: interrupts arrive at L1."""
    d = files.find(GOOD.replace("L2 windows {}", "L2 windows { policy lower_then_eoi }"),
                   "only the receiving level")
    assert files.at(d) == "t.scn:5:22"


def test_suppress_eoi_broadcast_needs_split_and_x2apic(files):
    """Directed EOI is advertised only with x2APIC; the in-kernel IOAPIC is allowed (it honours SPIV
    bit 12: review item I)."""
    src = GOOD.replace("irqchip split", "irqchip kernel; x2apic off; suppress_eoi_broadcast quirk")
    d = files.find(src, "suppress_eoi_broadcast quirk needs")
    assert files.at(d) == "t.scn:2:66"
    assert d.message == "suppress_eoi_broadcast quirk needs x2apic on"


def test_machine_vcpus_disagrees_with_blocks(files):
    """machine.vcpus 2 with one numbered vcpu block."""
    d = files.find(GOOD.replace("irqchip split", "irqchip split; vcpus 2"), "vcpu block(s) are given")
    assert files.at(d) == "t.scn:2:36"


def test_unknown_name_in_value(files):
    """A name that is no parameter, where a number is expected."""
    d = files.find(GOOD.replace("after 20us", "after svc"), "unknown name 'svc'")
    assert files.at(d) == "t.scn:11:30"


def test_expression_dimension_clash(files):
    """A param expression adding a time and a frequency is an error at the expression."""
    src = GOOD.replace("scenario s {", "scenario s {\n    param svc = 20us + 1kHz").replace(
        "after 20us", "after svc")
    d = files.find(src, "cannot combine")
    assert files.at(d) == "t.scn:2:17"


def test_param_cycle(files):
    """Two params defined by each other."""
    src = GOOD.replace("scenario s {", "scenario s {\n    param a = b * 2\n    param b = a + 1").replace(
        "after 20us", "after a * 1us")
    d = files.find(src, "depends on itself")
    assert "a -> b -> a" in d.message or "b -> a -> b" in d.message


def test_unknown_scenario_in_extends(files):
    """extends of a scenario that does not exist suggests the real one."""
    d = files.find(GOOD + "scenario t extends ss {}\n", "unknown scenario 'ss'")
    assert files.at(d) == "t.scn:15:20"
    assert d.hint == "did you mean 's'?"


def test_statement_outside_scenario(files):
    """A device at the top of a file."""
    d = files.find("device x {}\n" + GOOD, "belongs inside a scenario block")
    assert files.at(d) == "t.scn:1:1"


def test_no_scenario_in_file(files):
    """A file of only params."""
    d = files.find("param a = 1\n", "no scenario in this file")
    assert files.at(d) == "t.scn:1:1"


def test_no_vcpu(files):
    """A scenario without vcpu blocks."""
    d = files.find("scenario s {\n    run { duration 1ms }\n}\n", "has no vcpu")
    assert files.at(d) == "t.scn:1:1"


def test_independent_errors_reported_together(files):
    """Three unrelated mistakes are all reported, in source order."""
    src = GOOD.replace("irqchip split", "irqchip splt").replace("vector 0x50", "vector 0x05").replace(
        "after 20us", "after 20Hz")
    ds = files.errors(src)
    assert [files.at(d) for d in ds] == ["t.scn:2:23", "t.scn:9:16", "t.scn:11:30"]


def test_sample_bound_out_of_range(files):
    """A sample range whose low bound is below the parameter's minimum is a located error."""
    src = GOOD.replace("\n}\n", "\n    mitigation qemu_eoi_throttle {}\n"
                       "    sweep { random 4 { qemu_eoi_throttle.threshold in 0 .. 10 } }\n}\n")
    d = files.find(src, "must be at least 1")
    assert files.at(d) == "t.scn:15:55"
