"""A sweep worker's kernel uses only the CPUs the worker holds."""

from __future__ import annotations

import pytest

from irqlab.experiments.worker import execute

numba = pytest.importorskip("numba")


def test_a_worker_holding_one_cpu_runs_the_kernel_on_one_thread():
    """execute(threads=1) runs the batch with one kernel thread (Ray tasks hold one CPU each)."""
    try:
        out = execute(None, [], run_fn=lambda program, lanes: numba.get_num_threads(), threads=1)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert out.error is None
    assert out.result == 1
