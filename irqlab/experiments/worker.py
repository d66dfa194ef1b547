"""What a worker does with one batch: run the lanes, time it, hand the data back.

This is the only code that runs on a Ray worker. It never touches storage:
the driver is the only writer. An exception from the engine (a bug: a lane
whose plugin raises already comes back as a ``failed`` lane) is caught and
returned as text, so the driver can record the batch's runs as failed and
the sweep goes on.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass
class TaskOutput:
    """A batch's outcome: ``result`` (a BatchResult, lanes in input order) or
    ``error`` (the engine raised: a traceback), with the time ``engine.run`` took."""

    result: Any
    engine_s: float
    error: str | None = None
    host: str = ""
    pid: int = 0


def execute(program: Any, lanes: Sequence[Any], run_fn: Callable | None = None,
            threads: int | None = None) -> TaskOutput:
    """Run ``lanes`` of a compiled ``program`` with ``run_fn`` (default :func:`irqlab.engine.run`);
    ``threads``: the CPUs this worker holds, the most threads the per-lane kernel may use
    (None: every core). A sweep's Ray task holds one CPU: with a kernel thread per core in
    every worker, two workers on two cores would fight over them."""
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if run_fn is None:
        from irqlab import engine

        run_fn = engine.run
    t0 = time.perf_counter()
    try:
        result = run_fn(program, list(lanes))
        error = None
    except Exception as e:  # noqa: BLE001 - a bug in the engine must not stop the sweep
        result = None
        error = f"internal error in engine.run: {type(e).__name__}: {e}\n{traceback.format_exc()}"
    return TaskOutput(result, time.perf_counter() - t0, error, socket.gethostname(), os.getpid())
