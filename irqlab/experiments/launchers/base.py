"""The launcher interface: batches in, :class:`~irqlab.experiments.worker.TaskOutput` s out.

A launcher runs tasks somewhere (this process, local Ray, a Ray cluster) and
reports them as they finish. The driver owns ordering, batching, storage and
progress; a launcher owns only execution::

    launcher.start()
    handle = launcher.put_program(program)         # once per Program.key
    launcher.submit(task_id, handle, lanes)        # as many as launcher.slots
    for task_id, outcome in launcher.wait(0.2): ...  # TaskOutput, or an exception
    launcher.cancel(); launcher.close()

``outcome`` is an exception only when the task itself was lost (a Ray worker
died more than ``max_retries`` times, the cluster went away); the driver
records that task's runs as failed.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence


class Launcher:
    """Base class: see the module docstring."""

    name = "?"
    #: tasks worth keeping in flight at once (the driver never submits more): one per
    #: worker; batches last seconds, and the driver hands a freed worker its next batch
    #: before it writes the finished one, so a queue of tasks would only be cut on
    #: older measurements
    slots = 1
    #: parallel workers, for batch sizing and the benchmark
    workers = 1
    #: whether tasks run while the driver does something else (then it plans ahead meanwhile)
    background = False

    def __init__(self, run_fn: Callable | None = None) -> None:
        self.run_fn = run_fn

    def start(self) -> None:
        """Acquire resources (start or connect to Ray). Idempotent."""

    def put_program(self, program: Any) -> Any:
        """A handle for ``program`` that :meth:`submit` accepts (shipped once)."""
        return program

    def submit(self, task_id: int, program: Any, lanes: Sequence[Any]) -> None:
        raise NotImplementedError

    def wait(self, timeout: float | None) -> list[tuple[int, Any]]:
        """Tasks finished since the last call, waiting up to ``timeout`` s for one."""
        raise NotImplementedError

    @property
    def inflight(self) -> int:
        raise NotImplementedError

    def cancel(self) -> None:
        """Forget every task not yet reported (Ctrl-C, --fail-fast)."""

    def close(self) -> None:
        """Release resources (stop an embedded Ray). Idempotent."""

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> "Launcher":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
