"""Lowering: what the language means, as IR."""

from __future__ import annotations

import os

from tests.dsl.conftest import GOOD
from irqlab import ir
from irqlab.dsl import load, load_all, loads, lower, parse
from irqlab.ir import Name, Quantity as Q
from irqlab.resolve import resolve


def test_public_api_paths_agree(files):
    """loads, load and lower(parse()) give equal scenarios; source is the main file's text."""
    p = files.write("t.scn", GOOD)
    a, b, c = loads(GOOD, str(p)), load(p), lower(parse(GOOD, str(p)), str(p), GOOD)
    assert a == b == c
    assert b.source == GOOD and b.span.line == 1


def test_plugin_args_filled_in_declaration_order(files):
    """Every declared parameter is present, defaults filled, in declaration order, typed."""
    s = loads(GOOD.replace("arrival once at 0", "arrival periodic period 1ms count 3"))
    arr = s.devices[0].arrival
    assert [a.name for a in arr.args] == ["period", "start", "count"]
    assert arr.get("period") == Q(1e-3, "s") and arr.get("start") == Q(0.0, "s")
    assert arr.get("count") == Q(3.0, "")


def test_costs_hold_every_name(files):
    """costs has every ir.COSTS name, defaults filled, one override kept."""
    s = loads(GOOD.replace("machine { irqchip split }", "machine { irqchip split }\n"
                           "    costs { vmexit 900 cycles }"))
    assert [a.name for a in s.costs] == list(ir.COSTS)
    assert s.cost("vmexit") == Q(900, "cycles") and s.cost("eoi") == ir.COSTS["eoi"][0]


def test_l0_implied_and_default_policy(files):
    """L1 implies L0; a receiving level without a policy gets lower_then_eoi."""
    s = loads(GOOD.replace("L1 hyperv { policy eoi_before_lower }", "L1 hyperv {}"))
    levels = s.vcpus[0].levels
    assert [lv.level for lv in levels] == ["L0", "L1", "L2"]
    assert levels[1].policy.name == "lower_then_eoi" and levels[0].policy is None


def test_machine_vcpus_defaults_to_blocks(files):
    """machine.vcpus is the number of vcpu blocks."""
    src = GOOD.replace("    device uhci {", "    vcpu 1 { L1 hyperv {}\n L2 windows {} }\n    device uhci {")
    assert loads(src).machine.vcpus == 2


def test_vcpu_all_replicates(files):
    """'vcpu all' gives every one of machine.vcpus vCPUs the same levels."""
    s = loads(GOOD.replace("irqchip split", "irqchip split; vcpus 3").replace("vcpu 0 {", "vcpu all {"))
    assert [v.index for v in s.vcpus] == [0, 1, 2]
    assert s.vcpus[0].levels == s.vcpus[2].levels


def test_lowers_shorthands(files):
    """lowers after_eoi / before_eoi choose a policy; never keeps the line high."""
    s = loads(GOOD.replace("trigger level", "trigger level; lowers after_eoi"))
    assert s.devices[0].policy.name == "eoi_before_lower" and s.devices[0].lowers_line
    s = loads(GOOD.replace("trigger level", "trigger level; lowers before_eoi"))
    assert s.devices[0].policy.name == "lower_then_eoi"
    s = loads(GOOD.replace("trigger level", "trigger level; lowers never"))
    assert s.devices[0].policy is None and s.devices[0].lowers_line is False


def test_param_references_stay_expressions_until_resolve(files):
    """A value using a named param is an Expr after lowering and a Quantity after resolve."""
    src = GOOD.replace("scenario s {", "scenario s {\n    param svc = 20us").replace(
        "after 20us", "after 2 * svc")
    s = loads(src)
    assert isinstance(s.devices[0].service, ir.Binary)
    assert resolve(s).devices[0].service == Q(4e-5, "s")
    assert resolve(s, {"svc": "1us"}).devices[0].service == Q(2e-6, "s")


def test_constant_expressions_fold(files):
    """An expression without names is folded at lowering."""
    s = loads(GOOD.replace("after 20us", "after 10us * 2"))
    assert s.devices[0].service == Q(2e-5, "s")


def test_cost_default_follows_the_cost(files):
    """A policy body defaulting to costs.handler follows a sweep of costs.handler."""
    s = loads(GOOD)
    body = s.vcpus[0].level("L1").policy.get("body")
    assert body == Name(name="costs.handler")
    assert resolve(s, {"costs.handler": "3000 cycles"}).vcpus[0].level("L1").policy.get("body") == \
        Q(3000, "cycles")


def test_dotted_names_canonicalized(files):
    """A shorthand path in an expression is stored canonical."""
    src = GOOD.replace("after 20us", "after costs.vmexit * 0 + 20us")
    s = loads(src)
    names = []

    def walk(e):
        if isinstance(e, Name):
            names.append(e.name)
        for k in ("left", "right", "operand"):
            if hasattr(e, k):
                walk(getattr(e, k))

    walk(s.devices[0].service)
    assert "costs.vmexit" in names
    src = GOOD.replace("\n}\n", "\n    mitigation qemu_eoi_throttle { delay 1ms }\n"
                       "    run { duration qemu_eoi_throttle.delay * 10 }\n}\n")
    assert resolve(loads(src)).run.duration == Q(0.01, "s")


def test_file_param_absolute(files):
    """A trace file is made absolute, relative to the scenario file's directory."""
    p = files.write("t.scn", GOOD.replace("arrival once at 0", 'arrival trace file "arr.txt"'))
    assert load(p).devices[0].arrival.get("file") == os.path.join(str(files.root), "arr.txt")


def test_extends_merges_fields(files):
    """extends overrides one machine field and one plugin arg, keeping the rest."""
    src = GOOD + """scenario t extends s {
    machine { apicv off; suppress_eoi_broadcast quirk }
    mitigation qemu_eoi_throttle { delay 1ms }
    device uhci { serviced_by L2 after 5us }
    vcpu 0 { L1 { policy directed_eoi } }
}
"""
    all_ = load_all(files.write("t.scn", src))
    s, t = all_["s"], all_["t"]
    assert t.machine.irqchip == "split" and t.machine.apicv is False
    assert t.devices[0].vector == 0x50 and t.devices[0].service == Q(5e-6, "s")
    assert t.vcpus[0].level("L1").name == "hyperv" and t.vcpus[0].level("L1").policy.name == "directed_eoi"
    assert t.vcpus[0].level("L2") is not None
    assert s.mitigations == () and t.mitigations[0].get("threshold") == Q(10000)


def test_remove_device_and_mitigation(files):
    """remove drops an inherited device and mitigation."""
    src = GOOD.replace("\n}\n", "\n    mitigation qemu_eoi_throttle {}\n}\n") + """scenario t extends s {
    remove mitigation qemu_eoi_throttle
    remove device uhci
}
"""
    t = load_all(files.write("t.scn", src))["t"]
    assert t.devices == () and t.mitigations == ()


def test_import_and_include(files):
    """import makes another file's scenarios extendable; include splices statements."""
    files.write("base.scn", GOOD)
    files.write("costs.scn", "costs { vmexit 900 cycles }\n")
    p = files.write("t.scn", 'import "base.scn"\nscenario t extends s {\n    include "costs.scn"\n}\n')
    t = load(p)
    assert t.name == "t" and t.cost("vmexit") == Q(900, "cycles") and t.devices[0].name == "uhci"


def test_import_as_alias(files):
    """import ... as NAME names the file's main scenario."""
    files.write("base.scn", GOOD)
    t = load(files.write("t.scn", 'import "base.scn" as fc\nscenario t extends fc {}\n'))
    assert t.devices[0].name == "uhci"


def test_sweep_lowered_with_canonical_paths(files):
    """Axis, zip, sample, where and derive lower to ir.Sweep nodes with canonical paths."""
    src = GOOD.replace("\n}\n", """
    mitigation qemu_eoi_throttle {}
    sweep {
        zip {
            threshold = [10, 100]
            qemu_eoi_throttle.delay = [1ms, 10ms]
        }
        lhs 4 seed 7 { uhci.service in 1us .. 100us log }
        where threshold * 1us < 1s
        derive run.duration = 20 * qemu_eoi_throttle.delay
        replications 3
    }
}
""")
    sw = loads(src).sweep
    assert isinstance(sw.root, ir.Grid)
    z, smp = sw.root.items
    assert [a.path for a in z.items] == ["mitigation.qemu_eoi_throttle.threshold",
                                         "mitigation.qemu_eoi_throttle.delay"]
    assert smp.method == "lhs" and smp.n == 4 and smp.seed == 7 and smp.dims[0].log
    assert smp.dims[0].path == "device.uhci.service"
    assert sw.derived[0].path == "run.duration" and sw.replications == 3
    assert sw.constraints[0].left.left.name == "mitigation.qemu_eoi_throttle.threshold"


def test_spans_point_at_fields(files):
    """Device field spans point at where each value was written."""
    s = loads(GOOD, "t.scn")
    sp = ir.field_span(s.devices[0], "vector")
    assert (sp.line, sp.col) == (9, 16)
