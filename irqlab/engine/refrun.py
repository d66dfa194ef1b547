"""Run a batch with the reference interpreter, one lane after the other."""

from __future__ import annotations

from typing import Sequence

from irqlab.engine.context import PluginFailure
from irqlab.engine.program import Lane, Program
from irqlab.engine.reference import LaneSim
from irqlab.engine.rng import lane_keys
from irqlab.engine.stats import Stats, finish_batch, series_arrays
from irqlab.engine.trace import Trace
from irqlab.engine.result import BatchResult


def run_reference(program: Program, lanes: Sequence[Lane], trace_lanes: tuple[int, ...] = ()) -> BatchResult:
    """Every lane of ``lanes`` with :class:`~irqlab.engine.reference.LaneSim`."""
    params = program.lane_params(lanes)
    keys = lane_keys([(ln.seed, tuple(ln.spawn_key)) for ln in lanes])
    parts, status, error, traces, samples = [], [], [], {}, []
    for i in range(len(lanes)):
        one = {k: v[i : i + 1] for k, v in params.items()}
        trace = Trace() if i in trace_lanes else None
        sim = LaneSim(program, one, keys[i], trace)
        try:
            parts.append(sim.run())
            status.append("ok")
            error.append(None)
            samples.append(sim.samples)
        except PluginFailure as e:
            parts.append(Stats.zeros(1, program))
            status.append("failed")
            error.append(str(e))
            samples.append([])
        if trace is not None:
            traces[i] = trace
    stats = Stats.concat(parts) if parts else Stats.zeros(0, program)
    return finish_batch(program, stats, params, status, error, traces, series_arrays(program, samples))

