"""Sweeps: expansion, seeds and run identity, batching, launchers, resume, progress.

* :mod:`.expand`   -- a Sweep IR -> its points (grid, zip, concat, random/LHS, constraints, derived)
* :mod:`.identity` -- run_id, sweep_id, seeds (common random numbers)
* :mod:`.plan`     -- points -> validated runs -> batches of lanes
* :mod:`.launchers` -- inline and Ray, one interface
* :mod:`.driver`   -- the sweep itself: plan, launch, store, report
* :func:`rerun`    -- one stored run again (``irqlab reproduce``)

User documentation: ``docs/sweeps.md``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

__all__ = ["rerun", "to_overrides"]


def to_overrides(scenario: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """Stored parameter values (times in seconds, frequencies in Hz) -> ``resolve`` overrides."""
    from irqlab import resolve
    from irqlab.ir import Quantity

    infos = resolve.paths(scenario)
    out: dict[str, Any] = {}
    for path, value in params.items():
        if value is None:
            continue
        kind = infos[path].kind if path in infos else None
        if isinstance(value, bool) or isinstance(value, str):
            out[path] = value
        elif kind == "time":
            out[path] = Quantity(float(value), "s")
        elif kind == "frequency":
            out[path] = Quantity(float(value), "Hz")
        else:
            out[path] = Quantity(value, "")
    return out


def rerun(scenario_text: str, scenario_file: str | None, params: Mapping[str, Any], seed: int | str,
          spawn_key: Sequence[int] | str, *, trace: bool = False) -> Any:
    """Run one stored run again: parse, resolve with ``params``, compile, run one lane.

    ``seed`` may be decimal text and ``spawn_key`` a JSON list (as the store
    keeps them). Returns the engine's one-lane BatchResult.
    """
    from irqlab import dsl, engine, resolve
    from irqlab.engine.program import Lane

    if isinstance(spawn_key, str):
        spawn_key = json.loads(spawn_key)
    scenario = dsl.loads(scenario_text, scenario_file or "<scenario>")
    resolved = resolve.resolve(scenario, to_overrides(scenario, params))
    program = engine.compile(resolved)
    result = engine.run(program, [Lane(int(seed), tuple(int(k) for k in spawn_key), {})],
                        trace_lanes=(0,) if trace else ())
    from irqlab.experiments.expectations import add_rerun_columns

    add_rerun_columns(scenario, resolved, result)
    return result
