"""Integer parameters come back as integers: in SQL, in Parquet and in the catalog."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from irqlab.results.query import run_query
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info


def test_integer_parameter_is_stored_as_an_integer(written):
    """threshold (10, 100, 1000) is BIGINT/int64 and reads back as int; delay stays a float."""
    rows = run_query(str(written), "SELECT threshold, delay FROM sweep_1 ORDER BY run_id").rows
    assert {type(t) for t, _ in rows} == {int} and {type(d) for _, d in rows} == {float}
    types = dict(run_query(str(written), "SELECT path, type FROM sweep_columns "
                                         "WHERE role = 'param'").rows)
    assert types == {"mitigation.qemu_eoi_throttle.threshold": "int",
                     "mitigation.qemu_eoi_throttle.delay": "float"}
    files = sorted((written / "parquet" / "runs").rglob("*.parquet"))
    assert str(pq.read_schema(files[0]).field("threshold").type) == "int64"


def test_a_non_integer_value_for_an_integer_column_is_refused(tmp_path):
    """A later batch may not put 2.5 into a column that holds integers."""
    import dataclasses

    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(2), make_result(2))
        bad = [dataclasses.replace(r, params={**r.params,
                                              "mitigation.qemu_eoi_throttle.threshold": 2.5})
               for r in run_infos(2, start=2)]
        with pytest.raises(ValueError, match="was an integer in earlier runs"):
            store.write_batch("s1", bad, make_result(2))
