"""What a kernel batch keeps per lane (benchmarks/bench_engine.py measures the bytes)."""

from __future__ import annotations

import numpy as np

from irqlab import engine
from irqlab.engine.stats import N_IDLE, idle_metrics
from irqlab.ir import Quantity
from tests.engine.scenarios import founding


def test_idle_metrics_without_idle_vcpus_share_one_zero():
    """The kernel's idle metrics of a program without idle vCPUs are one zero shared by every lane."""
    prog = engine.compile(founding(duration=Quantity(1e-5, "s")))
    lanes = [engine.Lane(1, (i,)) for i in range(3)]
    k = engine.run(prog, lanes, backend="kernel")
    ref = engine.run(prog, lanes, backend="numpy")
    for name in idle_metrics(np.zeros((1, N_IDLE), np.int64)):
        assert k.metrics[name].strides == (0,), name
        assert k.metrics[name].dtype == ref.metrics[name].dtype, name
        assert np.array_equal(k.metrics[name], ref.metrics[name]), name
