"""Built-in executor backends."""

from __future__ import annotations

from irqlab.plugins.api import Backend


class Lockstep(Backend):
    """The vectorized NumPy executor: all lanes advance in lockstep, one event per
    lane per step, over arrays shaped ``[lanes, ...]``."""

    name = "numpy"
    version = "1.0"

    def run(self, program, lanes, *, trace_lanes=()):
        from irqlab.engine.lockstep import run_lockstep

        return run_lockstep(program, lanes, tuple(trace_lanes))


class Reference(Backend):
    """The reference interpreter: one lane, one event at a time, plain Python.
    The statement of the semantics that the lockstep executor is tested against."""

    name = "reference"
    version = "1.0"

    def run(self, program, lanes, *, trace_lanes=()):
        from irqlab.engine.refrun import run_reference

        return run_reference(program, lanes, tuple(trace_lanes))


class Auto(Backend):
    """The default: the reference interpreter for a handful of lanes (its per-event cost is
    lower than one lockstep step's), the lockstep executor from 5 lanes on. Both give
    bit-identical results, so the choice only changes the speed."""

    name = "auto"
    version = "1.0"
    small = 4

    def run(self, program, lanes, *, trace_lanes=()):
        backend = Reference() if len(lanes) <= self.small else Lockstep()
        return backend.run(program, lanes, trace_lanes=trace_lanes)
