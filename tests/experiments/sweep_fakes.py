"""Fakes for the sweep tests: a program/run pair that behaves like the engine's
contract (lanes in order, failures as data) without simulating anything.

Registered with cloudpickle *by value*, so Ray workers (even on a cluster
started elsewhere) can run them without importing this test module.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from irqlab.engine.result import EXIT_REASONS, METRICS, USERSPACE_EXITS, BatchResult


@dataclass
class FakeProgram:
    """Stands in for a compiled Program: ``params`` are per-lane defaults."""

    key: str = "k"
    params: dict = field(default_factory=lambda: {"x": 1.0})
    sleep_per_lane: float = 0.0
    die_marker: str | None = None  # first call that finds no marker file kills its process
    raise_in_run: bool = False


def fake_run(program: FakeProgram, lanes) -> BatchResult:
    """Metrics depend only on (seed, spawn_key, params): ``events = 1000 + 10 * rep``,
    ``l2_fraction = x / 10``; a lane with ``fail`` != 0 fails."""
    if program.raise_in_run:
        raise RuntimeError("bug in the engine")
    if program.die_marker is not None and not os.path.exists(program.die_marker):
        with open(program.die_marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)
    if program.sleep_per_lane:
        time.sleep(program.sleep_per_lane * len(lanes))
    n = len(lanes)
    metrics = {}
    for name, (typ, _, _) in METRICS.items():
        metrics[name] = np.zeros(n, {"float": float, "int": np.int64, "bool": bool}[typ])
    status, error = [], []
    for i, ln in enumerate(lanes):
        p = {**program.params, **ln.params}
        rep = ln.spawn_key[0] if ln.spawn_key else 0
        rng = np.random.default_rng(np.random.SeedSequence(ln.seed, spawn_key=ln.spawn_key))
        metrics["events"][i] = 1000 + 10 * rep
        metrics["l2_fraction"][i] = p["x"] / 10
        metrics["time_to_l2_progress_ns"][i] = rng.random() * 1e6
        metrics["livelock"][i] = p["x"] > 5
        bad = p.get("fail", 0)
        status.append("failed" if bad else "ok")
        error.append(f"plugin raised at x={p['x']}" if bad else None)
    return BatchResult(n=n, status=status, error=error, metrics=metrics,
                       exits={r: np.zeros(n, np.int64) for r in EXIT_REASONS},
                       userspace_exits={r: np.zeros(n, np.int64) for r in USERSPACE_EXITS},
                       mitigation_activations={}, devices={})


def register_by_value() -> None:
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run_failing_where(program, lanes, path="mitigation.qemu_eoi_throttle.threshold", value=13):
    """The real engine, but lanes whose ``path`` equals ``value`` come back failed
    (as a lane whose plugin raised does)."""
    from irqlab import engine

    result = engine.run(program, lanes)
    vals = program.lane_params(lanes)[path]
    for i, v in enumerate(vals):
        if v == value:
            result.status[i] = "failed"
            result.error[i] = f"plugin raised: {path} = {value}"
    return result


def run_dying_once(program, lanes, marker=None):
    """The real engine, after killing the worker process the first time (per marker file)."""
    from irqlab import engine

    if marker is not None and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)
    return engine.run(program, lanes)
