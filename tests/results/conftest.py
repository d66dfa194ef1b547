"""Fixtures for the results tests: a small store written through ResultStore."""

from __future__ import annotations

import pytest

from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info


@pytest.fixture
def written(tmp_path):
    """An output directory (tmp_path/res: files the tests write go beside it) with one
    finished sweep of 12 runs (run r000004 failed)."""
    tmp_path = tmp_path / "res"
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(6), make_result(6, fail=(4,), series=True))
        store.write_batch("s1", run_infos(6, start=6), make_result(6, seed=1, series=True))
        store.finish_sweep("s1", "2024-01-01T01:00:00+00:00", "done")
    return tmp_path
