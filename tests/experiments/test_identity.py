"""Run and sweep identity, and seeds."""

from __future__ import annotations

from irqlab import ir
from irqlab.errors import Span
from irqlab.experiments import identity


def _rid(**kw):
    args = dict(sweep="s", params={"a": 1.0}, point=0, seed=1, spawn_key=(0,))
    args.update(kw)
    return identity.run_id(**args)


def test_canonical_form_ignores_spans_and_spelling():
    """Two IR values that differ only in span and written spelling hash the same."""
    a = ir.Axis("x", (ir.Quantity(0.01, "s", "10ms"),), span=Span("a.scn", 1, 1))
    b = ir.Axis("x", (ir.Quantity(0.01, "s", "0.01s"),), span=Span("b.scn", 9, 9))
    assert identity.digest(a) == identity.digest(b)


def test_canonical_form_sees_every_value():
    """A different value, unit or field gives a different hash."""
    base = identity.digest(ir.Quantity(0.01, "s"))
    assert identity.digest(ir.Quantity(0.02, "s")) != base
    assert identity.digest(ir.Quantity(0.01, "Hz")) != base


def test_run_id_is_stable_and_depends_on_every_input():
    """The same inputs give the same id; changing any one of them changes it."""
    assert _rid() == _rid()
    variants = [dict(sweep="t"), dict(params={"a": 2.0}), dict(point=1),
                dict(seed=2), dict(spawn_key=(1,)), dict(plugins={"policy.x": "2"})]
    ids = {_rid(**v) for v in variants}
    assert _rid() not in ids and len(ids) == len(variants)


def test_run_id_depends_on_the_irqlab_version():
    """A new irqlab version gives new run ids (its results may differ)."""
    assert _rid(version="0.1.0") != _rid(version="0.2.0")


def test_sweep_id_depends_on_text_overrides_axes_and_seed():
    """sweep_id changes with the scenario text, --set, --grid and the base seed only."""
    base = identity.sweep_id("t", {}, [], 0)
    assert identity.sweep_id("t", {}, [], 0) == base
    others = {identity.sweep_id("u", {}, [], 0), identity.sweep_id("t", {"a": "1"}, [], 0),
              identity.sweep_id("t", {}, [("a", ["1", "2"])], 0), identity.sweep_id("t", {}, [], 1)}
    assert base not in others and len(others) == 4


def test_replication_seed_is_the_same_at_every_point():
    """Replication r uses (base seed, spawn key (r,)) whatever the point: common random numbers."""
    assert identity.lane_seed(42, 3) == (42, (3,))


def test_plugin_uses_finds_every_plugin_of_a_scenario():
    """plugin_uses walks devices, levels and mitigations."""
    sc = ir.Scenario("s", devices=(ir.Device("d", arrival=ir.PluginUse("arrival", "poisson")),),
                     mitigations=(ir.PluginUse("mitigation", "qemu_eoi_throttle"),))
    uses = identity.plugin_uses(sc)
    assert {("arrival", "poisson"), ("mitigation", "qemu_eoi_throttle"), ("device", "generic")} <= uses
