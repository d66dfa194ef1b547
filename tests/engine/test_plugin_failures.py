"""A plugin that raises fails the runs it raises in, and only those."""

from __future__ import annotations

import json

import numpy as np
import pytest

from irqlab import engine
from irqlab.plugins.api import Mitigation, Param
from irqlab.plugins.registry import registry
from tests.engine.scenarios import founding, ms, use


class Fragile(Mitigation):
    """Raises on the immediate-exit hook when its parameter `fail` is 1."""

    name = "fragile_test_mitigation"
    version = "0"
    params = (Param("fail", "int", 0, "1 makes it raise"),)
    hooks = frozenset({"immediate_exit"})

    def on_immediate_exit(self, ctx, ev):
        if (ctx.param("fail", ev.lanes) == 1).any():
            raise RuntimeError("boom")


@pytest.fixture(scope="module")
def prog():
    registry().add_class(Fragile)
    return engine.compile(founding(duration=ms(0.3), mitigations=[use("mitigation", "fragile_test_mitigation")]))


@pytest.mark.parametrize("backend", ["numpy", "auto"])  # auto: lockstep, the plugin has no kernel hooks
def test_raising_plugin_fails_only_its_lanes(prog, backend):
    """Lanes where the plugin raises are 'failed' with an error naming it; the others are
    identical to running them alone."""
    fails = [i % 3 == 1 for i in range(9)]
    lanes = []
    for i, f in enumerate(fails):
        p = dict(prog.params)
        p["mitigation.fragile_test_mitigation.fail"] = int(f)
        lanes.append(engine.Lane(0, (i,), p))
    r = engine.run(prog, lanes, backend=backend)
    for i, f in enumerate(fails):
        if f:
            assert r.status[i] == "failed"
            assert "fragile_test_mitigation" in r.error[i] and "boom" in r.error[i]
        else:
            assert r.status[i] == "ok"
            alone = engine.run(prog, [lanes[i]], backend=backend)
            assert json.dumps(alone.lane(0), sort_keys=True) == json.dumps(r.lane(i), sort_keys=True)
    assert np.isnan(r.metrics["l1_time_ns"][1])
