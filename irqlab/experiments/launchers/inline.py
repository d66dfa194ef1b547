"""The inline launcher: batches run in this process, one at a time, no Ray.

The default for small sweeps (nothing to start, nothing to pickle) and the
reference the Ray launcher is tested against.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

from irqlab.experiments.launchers.base import Launcher
from irqlab.experiments.worker import execute


class InlineLauncher(Launcher):
    """Runs each submitted batch when :meth:`wait` is called, in submission order."""

    name = "inline"
    slots = 1
    workers = 1

    def __init__(self, run_fn=None) -> None:
        super().__init__(run_fn)
        self._queue: deque[tuple[int, Any, Sequence[Any]]] = deque()

    def submit(self, task_id: int, program: Any, lanes: Sequence[Any]) -> None:
        self._queue.append((task_id, program, lanes))

    def wait(self, timeout: float | None) -> list[tuple[int, Any]]:
        if not self._queue:
            return []
        task_id, program, lanes = self._queue.popleft()
        return [(task_id, execute(program, lanes, self.run_fn))]

    @property
    def inflight(self) -> int:
        return len(self._queue)

    def cancel(self) -> None:
        self._queue.clear()

    def describe(self) -> str:
        return "inline (this process)"
