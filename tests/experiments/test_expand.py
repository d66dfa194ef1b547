"""Sweep expansion: grid, zip, concat, samples, derived values and constraints."""

from __future__ import annotations

import pytest

from irqlab import ir
from irqlab.errors import ScenarioError
from irqlab.experiments.expand import count_points, expand
from ir_scenarios import axis, q, small

TH = "mitigation.qemu_eoi_throttle.threshold"
DL = "mitigation.qemu_eoi_throttle.delay"


def _pts(root, **kw):
    s = small()
    sw = ir.Sweep(root=root, **kw)
    return expand(sw, s)


def _vals(points, path):
    return [p[path].value if isinstance(p[path], ir.Quantity) else p[path] for p in points]


def test_no_sweep_is_one_point():
    """A scenario without a sweep expands to one empty point."""
    assert expand(None, small()) == [{}]


def test_grid_is_the_product_with_the_first_axis_outermost():
    """A grid of 2 x 3 values gives 6 points in row-major order."""
    pts = _pts(ir.Grid(items=(axis("qemu_eoi_throttle.threshold", 10, 100),
                              axis("qemu_eoi_throttle.delay", q(1e-3, "s"), q(2e-3, "s"), q(3e-3, "s")))))
    assert [(p[TH].value, p[DL].value) for p in pts] == \
        [(10, 1e-3), (10, 2e-3), (10, 3e-3), (100, 1e-3), (100, 2e-3), (100, 3e-3)]


def test_paths_are_canonical():
    """Shorthand and bare-parameter paths come out canonical."""
    pts = _pts(ir.Grid(items=(axis("rate", q(1e3, "Hz")), axis("threshold", 5))))
    assert set(pts[0]) == {"param.rate", TH}


def test_zip_pairs_values():
    """zip takes the i-th value of every axis."""
    pts = _pts(ir.Zip(items=(axis(TH, 10, 20, 30), axis(DL, q(1, "s"), q(2, "s"), q(3, "s")))))
    assert [(p[TH].value, p[DL].value) for p in pts] == [(10, 1), (20, 2), (30, 3)]


def test_zip_of_unequal_lengths_is_an_error():
    """Zipped axes of different lengths are a ScenarioError."""
    with pytest.raises(ScenarioError, match="different lengths"):
        _pts(ir.Zip(items=(axis(TH, 10, 20), axis(DL, q(1, "s")))))


def test_concat_appends_parts_with_different_paths():
    """concat lists the points of each part, one part after the other."""
    pts = _pts(ir.Concat(items=(ir.Grid(items=(axis(TH, 1, 2),)), ir.Grid(items=(axis(DL, q(1, "s")),)))))
    assert pts == [{TH: q(1)}, {TH: q(2)}, {DL: q(1, "s")}]


def test_a_path_swept_twice_in_a_grid_is_an_error():
    """The same path in two axes of one grid is a ScenarioError."""
    with pytest.raises(ScenarioError, match="swept twice"):
        _pts(ir.Grid(items=(axis(TH, 1, 2), axis("qemu_eoi_throttle.threshold", 3))))


def test_an_unknown_path_is_an_error_with_a_hint():
    """A misspelt path is a ScenarioError with a did-you-mean."""
    with pytest.raises(ScenarioError) as e:
        _pts(ir.Grid(items=(axis("qemu_eoi_throttle.treshold", 1),)))
    assert "threshold" in (e.value.diagnostics[0].hint or "")


def test_random_sample_is_seeded_and_in_range():
    """A random sample is reproducible from its seed and stays in [low, high]."""
    node = ir.Sample(method="random", n=50, seed=3,
                     dims=(ir.Dist(DL, q(1e-3, "s"), q(1e-2, "s"), log=True),
                           ir.Dist(TH, q(10), q(20), integer=True)))
    a, b = _pts(node), _pts(node)
    assert a == b
    d = _vals(a, DL)
    assert all(1e-3 <= x <= 1e-2 for x in d)
    assert all(float(t).is_integer() and 10 <= t <= 20 for t in _vals(a, TH))
    assert len({t for t in _vals(a, TH)}) > 5
    other = _pts(ir.Sample(method="random", n=50, seed=4, dims=node.dims))
    assert other != a


def test_lhs_hits_every_stratum_once():
    """A Latin hypercube of n points puts exactly one point in each of n strata per dimension."""
    n = 20
    node = ir.Sample(method="lhs", n=n, seed=1, dims=(ir.Dist(DL, q(0, "s"), q(1, "s")),
                                                     ir.Dist("param.rate", q(0, "Hz"), q(1000, "Hz"))))
    pts = _pts(node)
    assert sorted(int(x * n) for x in _vals(pts, DL)) == list(range(n))
    assert sorted(int(x / 1000 * n) for x in _vals(pts, "param.rate")) == list(range(n))


def test_choice_dimension_draws_from_the_choices():
    """A choice dimension only yields its choices."""
    node = ir.Sample(method="random", n=30, seed=0, dims=(ir.Dist("machine.irqchip", choices=("kernel", "split")),))
    vals = set(_vals(_pts(node), "machine.irqchip"))
    assert vals == {"kernel", "split"}


def test_derived_values_are_computed_per_point():
    """A derived path gets its expression's value at each point (seeing the point's values)."""
    expr = ir.Binary(op="*", left=ir.Num(value=q(10)), right=ir.Name(name="qemu_eoi_throttle.delay"))
    pts = _pts(ir.Grid(items=(axis(DL, q(1e-3, "s"), q(2e-3, "s")),)),
               derived=(ir.Derived("run.duration", expr),))
    assert [round(p["run.duration"].value, 9) for p in pts] == [0.01, 0.02]


def test_constraints_filter_points():
    """Only points where every constraint is true are kept."""
    cond = ir.Binary(op="<", left=ir.Name(name="threshold"), right=ir.Num(value=q(25)))
    root = ir.Grid(items=(axis(TH, 10, 20, 30, 40),))
    pts = _pts(root, constraints=(cond,))
    assert _vals(pts, TH) == [10, 20]
    assert count_points(ir.Sweep(root=root, constraints=(cond,)), small()) == 2


def test_constraints_see_named_parameters_that_depend_on_the_point():
    """A constraint on a value derived from a swept parameter sees it at the point."""
    s = small()
    cond = ir.Binary(op=">", left=ir.Name(name="device.nic.arrival.period"), right=ir.Num(value=q(2e-4, "s")))
    sw = ir.Sweep(root=ir.Grid(items=(axis("rate", q(1e3, "Hz"), q(1e4, "Hz")),)), constraints=(cond,))
    pts = expand(sw, s)
    assert [p["param.rate"].value for p in pts] == [1e3]


def test_a_constraint_that_is_not_a_truth_value_is_an_error():
    """A constraint evaluating to a number is a ScenarioError."""
    with pytest.raises(ScenarioError, match="true or false"):
        _pts(ir.Grid(items=(axis(TH, 1),)), constraints=(ir.Name(name="threshold"),))
