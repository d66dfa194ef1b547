"""irqlab.resolve: paths, shorthands, expressions with units, overrides, checks."""

from __future__ import annotations

import os

import pytest

from irqlab import ir
from irqlab.errors import ScenarioError, Span
from irqlab.ir import Arg, Binary, Call, Name, Num, PluginUse, Quantity as Q
from irqlab.resolve import canonical_path, evaluate, parse_quantity, paths, resolve

F = "t.scn"


def sp(line: int, col: int = 1) -> Span:
    return Span(F, line, col, line, col + 1)


def base(**over) -> ir.Scenario:
    """A founding-case-like scenario, built by hand, with a named parameter."""
    costs = tuple(Arg(n, q, sp(40 + i)) for i, (n, (q, _)) in enumerate(ir.COSTS.items()))
    vcpu = ir.Vcpu(0, (ir.LevelSpec("L0"),
                       ir.LevelSpec("L1", "hyperv", PluginUse("policy", "eoi_before_lower",
                                                              (Arg("body", Q(2000, "cycles"), sp(5)),), sp(5))),
                       ir.LevelSpec("L2", "windows")), sp(4))
    dev = ir.Device("uhci", vector=0x50, gsi=23, trigger="level", serviced_by="L2",
                    service=Q(20e-6, "s", "20us"),
                    arrival=PluginUse("arrival", "once", (Arg("at", Q(0.0, "s"), sp(8)),), sp(8)),
                    model=PluginUse("device", "generic", (), sp(7)), span=sp(7),
                    field_spans=(("vector", sp(9)), ("gsi", sp(10)), ("trigger", sp(11))))
    mit = PluginUse("mitigation", "qemu_eoi_throttle",
                    (Arg("threshold", Q(10000), sp(20)),
                     Arg("delay", Binary(span=sp(21, 11), op="*", left=Name(span=sp(21, 11), name="d"),
                                         right=Num(value=Q(2))), sp(21))), sp(19))
    params = (ir.ParamDef("d", Q(5e-3, "s", "5ms"), sp(2)),
              ir.ParamDef("rate", Binary(op="/", left=Num(value=Q(1)), right=Name(name="d")), sp(3)))
    kw = dict(name="fc", machine=ir.Machine(span=sp(1), field_spans=(("irqchip", sp(1, 5)),)),
              costs=costs, vcpus=(vcpu,), devices=(dev,), mitigations=(mit,),
              run=ir.RunSpec(duration=Q(0.1, "s")), params=params, span=Span(F, 1, 1))
    kw.update(over)
    return ir.Scenario(**kw)


def test_paths_cover_every_section_with_kinds():
    """paths() lists machine, costs, device, plugin, vcpu policy, run and param paths with kinds."""
    p = paths(base())
    assert p["machine.irqchip"].kind == "choice" and p["machine.irqchip"].choices == ("kernel", "split")
    assert p["costs.vmexit"].kind == "time"
    assert p["device.uhci.vector"].kind == "number" and p["device.uhci.vector"].integer
    assert p["device.uhci.arrival.at"].kind == "time"
    assert p["mitigation.qemu_eoi_throttle.threshold"].min == 1
    assert p["vcpu.0.L1.policy.body"].kind == "time"
    assert p["run.duration"].kind == "time"
    assert p["param.rate"].kind == "frequency"  # an expression, evaluated for its kind
    assert p["device.uhci.vector"].span == sp(9)


def test_canonical_path_accepts_shorthands():
    """A plugin-relative suffix, a device suffix, a bare field and a bare param name all resolve."""
    s = base()
    assert canonical_path(s, "qemu_eoi_throttle.threshold") == "mitigation.qemu_eoi_throttle.threshold"
    assert canonical_path(s, "uhci.vector") == "device.uhci.vector"
    assert canonical_path(s, "tsc") == "machine.tsc"
    assert canonical_path(s, "rate") == "param.rate"
    assert canonical_path(s, "run.duration") == "run.duration"


def test_canonical_path_unknown_has_hint_and_span():
    """An unknown path is an error at the given span with a did-you-mean."""
    with pytest.raises(ScenarioError) as e:
        canonical_path(base(), "qemu_eoi_throttle.treshold", sp(30, 3))
    assert e.value.span == sp(30, 3)
    assert "no parameter 'qemu_eoi_throttle.treshold'" in e.value.message
    assert "qemu_eoi_throttle.threshold" in (e.value.diagnostics[0].hint or "")


def test_canonical_path_ambiguous_lists_candidates():
    """A suffix shared by two paths is an error naming both."""
    s = base()
    two = s.mitigations + (PluginUse("mitigation", "kvm_eoi_delay", (Arg("threshold", Q(10000)),)),)
    with pytest.raises(ScenarioError, match="ambiguous.*kvm_eoi_delay.threshold.*qemu_eoi_throttle.threshold"):
        canonical_path(ir.Scenario("x", mitigations=two), "threshold")


def test_quantity_literals():
    """Units convert to base units and keep their spelling; hex and underscores work."""
    assert parse_quantity("10us") == Q(1e-5, "s") and parse_quantity("10us").text == "10us"
    assert parse_quantity("2.5GHz") == Q(2.5e9, "Hz")
    assert parse_quantity("50khz") == Q(5e4, "Hz")
    assert parse_quantity("1000 cycles") == Q(1000, "cycles")
    assert parse_quantity("0x50") == Q(80)
    assert parse_quantity("10_000") == Q(10000)
    assert parse_quantity("3µs") == Q(3e-6, "s")
    with pytest.raises(ValueError, match="unknown unit 'xs'"):
        parse_quantity("10xs")


def test_evaluate_units_follow_physics():
    """time*number is a time, 1/time a frequency, time*frequency a number; cycles mix via the TSC."""
    env = {"machine.tsc": Q(2e9, "Hz"), "t": Q(1e-5, "s")}
    assert evaluate(Binary(op="*", left=Name(name="t"), right=Num(value=Q(2))), env) == Q(2e-5, "s")
    got = evaluate(Binary(op="/", left=Num(value=Q(1)), right=Name(name="t")), env)
    assert got.unit == "Hz" and got.value == pytest.approx(1e5)
    assert evaluate(Binary(op="*", left=Name(name="t"), right=Num(value=Q(5e4, "Hz"))), env) == Q(0.5)
    got = evaluate(Binary(op="+", left=Num(value=Q(2000, "cycles")), right=Num(value=Q(1e-6, "s"))), env)
    assert got.unit == "s" and got.value == pytest.approx(2e-6)
    assert evaluate(Call(func="max", args=(Num(value=Q(1e-3, "s")), Name(name="t"))), env) == Q(1e-3, "s")


def test_evaluate_dimension_clash_is_located():
    """Adding a time and a frequency is an error at the operator's span."""
    e = Binary(span=sp(12, 7), op="+", left=Num(value=Q(1e-6, "s")), right=Num(value=Q(1e3, "Hz")))
    with pytest.raises(ScenarioError, match="a time and a frequency") as ex:
        evaluate(e, {})
    assert ex.value.span == sp(12, 7)


def test_evaluate_unknown_name_and_division_by_zero():
    """An unknown name gets a did-you-mean; division by zero is located."""
    with pytest.raises(ScenarioError, match="unknown name 'rat'") as ex:
        evaluate(Name(span=sp(3, 4), name="rat"), {"rate": Q(1)})
    assert ex.value.span == sp(3, 4) and "rate" in ex.value.diagnostics[0].hint
    with pytest.raises(ScenarioError, match="division by zero"):
        evaluate(Binary(span=sp(1), op="/", left=Num(value=Q(1)), right=Num(value=Q(0))), {})


def test_evaluate_words_compare_with_choices():
    """An unknown bare name compared with a word is a word: irqchip == split."""
    env = {"machine.irqchip": "split"}
    assert evaluate(Binary(op="==", left=Name(name="machine.irqchip"), right=Name(name="split")), env) is True
    assert evaluate(Call(func="if", args=(Binary(op="<", left=Num(value=Q(1)), right=Num(value=Q(2))),
                                          Num(value=Q(3)), Num(value=Q(4)))), {}) == Q(3)


def test_resolve_leaves_no_expression_and_keeps_sweep():
    """Params and values are evaluated; the sweep block is kept."""
    sweep = ir.Sweep(root=ir.Grid(items=(ir.Axis("qemu_eoi_throttle.threshold", (Q(10), Q(100)), sp(50)),)))
    r = resolve(base(sweep=sweep))
    assert r.mitigations[0].get("delay") == Q(0.01, "s")
    assert r.params[1].value == Q(200, "Hz")
    assert r.sweep == sweep
    assert not _has_expr(r)


def _has_expr(obj) -> bool:
    if isinstance(obj, ir.Expr):
        return True
    if isinstance(obj, tuple):
        return any(_has_expr(x) for x in obj)
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, (Q, ir.Sweep)):
        return any(_has_expr(getattr(obj, f)) for f in obj.__dataclass_fields__ if f != "source")
    return False


def test_resolve_overrides_from_text_and_values():
    """Overrides accept text (10ms, 0x51, kernel) and Quantity/bool/int values, by shorthand."""
    r = resolve(base(mitigations=()), {"uhci.vector": "0x51", "machine.irqchip": "kernel",
                                       "run.duration": "10ms", "apicv": False, "d": Q(1e-3, "s")})
    assert r.devices[0].vector == 0x51 and isinstance(r.devices[0].vector, int)
    assert r.machine.irqchip == "kernel" and r.machine.apicv is False
    assert r.run.duration == Q(0.01, "s")
    assert r.params[1].value == Q(1000, "Hz")  # rate = 1 / d follows the override


def test_resolve_override_expression_text():
    """Override text that is an expression is evaluated with the scenario's params."""
    pytest.importorskip("irqlab.dsl.syntax")
    r = resolve(base(), {"mitigation.qemu_eoi_throttle.delay": "3 * d"})
    assert r.mitigations[0].get("delay") == Q(0.015, "s")


def test_override_out_of_range_points_at_sweep_axis():
    """A point's out-of-range value is reported at the sweep axis that sets it."""
    sweep = ir.Sweep(root=ir.Grid(items=(ir.Axis("qemu_eoi_throttle.threshold", (Q(0),), sp(50, 5)),)))
    with pytest.raises(ScenarioError) as e:
        resolve(base(sweep=sweep), {"mitigation.qemu_eoi_throttle.threshold": Q(0)})
    assert e.value.span == sp(50, 5)
    assert "threshold" in e.value.message and "at least 1" in e.value.message


def test_override_wrong_dimension_and_choice():
    """A time for a number, and a misspelt choice, are errors at the value's place."""
    with pytest.raises(ScenarioError) as e:
        resolve(base(), {"uhci.vector": "10us", "machine.irqchip": "splt"})
    msgs = [d.message for d in e.value.diagnostics]
    assert any("vector takes a whole number, not the time 10us" in m for m in msgs)
    assert any("irqchip cannot be 'splt'" in m for m in msgs)
    assert {d.span for d in e.value.diagnostics} == {sp(9), sp(1, 5)}


def test_override_integer_param_must_be_whole():
    """An int plugin parameter set to 2.5 is an error."""
    with pytest.raises(ScenarioError, match="must be a whole number"):
        resolve(base(), {"qemu_eoi_throttle.threshold": 2.5})


def test_override_rechecks_cross_rules():
    """Switching to irqchip kernel under qemu_eoi_throttle fails the plugin's own check."""
    with pytest.raises(ScenarioError, match="qemu_eoi_throttle lives in QEMU's userspace IOAPIC") as e:
        resolve(base(), {"machine.irqchip": "kernel"})
    assert e.value.span == sp(19)


def test_param_cycle_is_an_error():
    """Two params that depend on each other are reported with the cycle."""
    params = (ir.ParamDef("a", Name(span=sp(2, 9), name="b"), sp(2)),
              ir.ParamDef("b", Name(span=sp(3, 9), name="a"), sp(3)))
    with pytest.raises(ScenarioError, match="depends on itself: a -> b -> a"):
        resolve(base(params=params, mitigations=()))


def test_param_override_keeps_its_kind():
    """A frequency param cannot be overridden with a time."""
    params = (ir.ParamDef("r", Q(5e4, "Hz"), sp(2)),)
    with pytest.raises(ScenarioError, match="r is the frequency 50kHz") as e:
        resolve(base(params=params, mitigations=()), {"r": "1ms"})
    assert e.value.span == sp(2)


def test_file_param_becomes_absolute(tmp_path):
    """A relative file parameter resolves against the scenario file's directory."""
    f = str(tmp_path / "s.scn")
    arr = PluginUse("arrival", "trace", (Arg("file", "t.txt", Span(f, 3, 1)), Arg("offset", Q(0.0, "s"))),
                    Span(f, 3, 1))
    s = base(mitigations=())
    s = ir.Scenario(**{**s.__dict__, "devices": (ir.Device(**{**s.devices[0].__dict__, "arrival": arr}),),
                       "span": Span(f, 1, 1)})
    (tmp_path / "other.txt").write_text("1ms\n")
    r = resolve(s, {"device.uhci.arrival.file": "other.txt"})
    assert r.devices[0].arrival.get("file") == os.path.join(str(tmp_path), "other.txt")


def test_unknown_override_path():
    """An override of a path that does not exist names it."""
    with pytest.raises(ScenarioError, match="no parameter 'machine.irqchp'"):
        resolve(base(), {"machine.irqchp": "split"})
