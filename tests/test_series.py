"""Time series: the language checks the field names; runs record them at each sample time."""

from __future__ import annotations

import pytest

from irqlab import engine
from irqlab.dsl import loads
from irqlab.errors import ScenarioError

SRC = """scenario s {
    vcpu 0 { L1 linux {} }
    device d { gsi 5; vector 0x40; trigger edge; serviced_by L1 after 1us; arrival periodic period 100us }
    run { duration 1ms; series every 200us fields [l1_time_ns, FIELD] }
}
"""


def test_unknown_series_field_is_located_with_a_suggestion():
    """A misspelt series field is an error at its column, with a did-you-mean."""
    with pytest.raises(ScenarioError) as e:
        loads(SRC.replace("FIELD", "eoi_cont"), "s.scn")
    d = e.value.diagnostics[0]
    assert (d.span.line, d.span.col) == (4, 64) and "eoi_count" in d.hint


@pytest.mark.parametrize("backend", ["numpy", "kernel", "reference"])
def test_series_samples_every_period(backend):
    """Samples at 0, 200us, ...: cumulative EOIs of a 10 kHz device, the same in every backend."""
    s = loads(SRC.replace("FIELD", "eoi_count"), "s.scn")
    r = engine.run(engine.compile(s), [engine.Lane(0), engine.Lane(1)], backend=backend)
    assert r.series["t_ns"][0].tolist() == [0.0, 200e3, 400e3, 600e3, 800e3]
    assert r.series["eoi_count"][1].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
