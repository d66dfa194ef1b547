"""A sweep's ``expect`` block, checked on every run: the ``expect_<k>`` and
``expect_pass`` columns stored with each batch (see :func:`irqlab.expect.columns`)."""

from __future__ import annotations

from typing import Any, Sequence


def add_columns(prep: Any, runs: Sequence[Any], result: Any) -> None:
    """Add the sweep's expectation columns to ``result.extra`` (lanes in ``runs`` order).

    ``prep`` is the sweep's :class:`~irqlab.experiments.plan.Prepared`; a name in an
    expectation that is not a metric reads the run's point (resolved once per point,
    only if some expectation needs it)."""
    from irqlab.expect import LazyValues, ScenarioValues, columns

    sweep = prep.sweep
    if sweep is None or not sweep.expect:
        return
    per_point: dict[int, LazyValues] = {}

    def values_for(i: int) -> LazyValues:
        point = runs[i].point
        if point not in per_point:
            per_point[point] = LazyValues(lambda p=point: ScenarioValues(
                prep.scenario, {**prep.overrides, **prep.points[p]}))
        return per_point[point]

    result.extra.update(columns(sweep.expect, result.flat_columns(), result.status, prep.base, values_for))


def add_rerun_columns(scenario: Any, resolved: Any, result: Any) -> None:
    """The same columns for a stored run run again (``irqlab reproduce``): ``resolved`` is
    the run's scenario at its point."""
    from irqlab.expect import LazyValues, ScenarioValues, columns

    sweep = scenario.sweep
    if sweep is None or not sweep.expect:
        return
    values = LazyValues(lambda: ScenarioValues(resolved))
    result.extra.update(columns(sweep.expect, result.flat_columns(), result.status, resolved,
                                lambda i: values))
