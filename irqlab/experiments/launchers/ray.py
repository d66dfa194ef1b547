"""The Ray launcher: batches as Ray tasks, on this machine or on a cluster.

Two modes behind one class:

* **embedded** (``address=None``): :func:`init_embedded` starts a private Ray
  on this machine's cores (workers at normal priority); :meth:`close` stops it. A
  ``RAY_ADDRESS`` in the environment is ignored here: the driver only picks
  this mode when no cluster address was given.
* **cluster** (``address="host:port"``, from ``--address`` or ``RAY_ADDRESS``):
  connects to a running cluster (``ray start --head`` ...); :meth:`close` only
  disconnects. Every node must have the same irqlab (and plugin) versions
  installed; the launcher checks irqlab's version on one worker at start.

What is shipped: the compiled :class:`~irqlab.engine.program.Program`, put
once per ``Program.key`` into the object store with ``ray.put`` and passed to
every task of that key by reference, plus each task's list of lanes. The
driver has already compiled every point to validate it, so compiling again
on the workers would only repeat work; and a worker then needs neither the
scenario file nor the DSL.

Failure handling: a task whose worker process dies (OOM killer, node lost)
is retried by Ray up to ``max_retries`` times; after that its outcome is the
exception, and the driver records the batch's runs as failed. Exceptions
raised by the engine are caught on the worker (see :mod:`..worker`), so Ray
never retries a deterministic bug.

A lost cluster is not a failed run: on a cluster, :meth:`RayLauncher.wait`
checks (at most every :data:`HEALTH_EVERY_S` s, and whenever a task comes back
as an exception) that the head still accepts connections; when it does not,
it raises a ScenarioError (exit 2) instead of reporting
the tasks, so the driver marks the sweep and a later run (inline or on
another cluster) runs exactly what was not stored. Ray itself would only
stop the process 60 s later, with exit status 1.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from irqlab.experiments.launchers.base import Launcher
from irqlab.experiments.worker import execute


HEALTH_EVERY_S = 2.0


class RayLauncher(Launcher):
    """Runs batches as Ray tasks (embedded local Ray, or an existing cluster)."""

    name = "ray"
    background = True

    def __init__(self, address: str | None = None, workers: int | None = None, *,
                 max_retries: int = 3, run_fn=None, quiet: bool = True) -> None:
        super().__init__(run_fn)
        self.address = address
        self.requested_workers = workers
        self.max_retries = max_retries
        self.quiet = quiet
        self._owned = False
        self._started = False
        self._remote = None
        self._pending: dict[Any, int] = {}
        self.workers = workers or 1
        self.slots = self.workers
        self.lost = False
        self._checked = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._started:
            return
        import ray

        level = logging.ERROR if self.quiet else logging.INFO
        if ray.is_initialized():
            if self.address:
                self._check_same_cluster()
        elif self.address:
            probe_address(self.address)
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=level)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise _cluster_error(self.address, e) from None
            self._owned = True
        else:
            init_embedded(self.requested_workers or os.cpu_count() or 1, quiet=self.quiet)
            self._owned = True
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        self.workers = min(self.requested_workers, cpus) if self.requested_workers else cpus
        self.slots = self.workers
        self._remote = ray.remote(num_cpus=1, max_retries=self.max_retries,
                                  retry_exceptions=False)(execute)
        self._started = True
        if self.address:
            self._check_versions()

    def _check_same_cluster(self) -> None:
        import ray

        from irqlab.errors import ScenarioError

        current = ray.get_runtime_context().gcs_address
        want = self.address.replace("ray://", "")
        if want not in ("auto",) and want.split(":")[-1] != current.split(":")[-1]:
            raise ScenarioError(f"this process is already connected to Ray at {current}, "
                                f"not {self.address}")

    def _check_versions(self) -> None:
        import ray

        from irqlab import __version__

        remote = ray.remote(num_cpus=1)(_worker_versions)
        theirs = ray.get(remote.remote())
        if theirs["irqlab"] != __version__:
            from irqlab.errors import ScenarioError

            self.close()
            raise ScenarioError(
                f"the Ray cluster's workers run irqlab {theirs['irqlab']} (python "
                f"{theirs['python']}, on {theirs['host']}), this driver irqlab {__version__}",
                hint="install the same irqlab version on every node of the cluster")

    def close(self) -> None:
        if not self._started:
            return
        import ray

        self._pending.clear()
        if self._owned and ray.is_initialized() and not self.lost:
            ray.shutdown()
        self._started = False
        self._owned = False

    def _head(self) -> tuple[str, int] | None:
        """``(host, port)`` of the cluster's GCS, or None when not on a cluster."""
        if not self.address:
            return None
        hostport = self.address.removeprefix("ray://")
        if hostport in ("auto", "local") or ":" not in hostport:
            import ray

            hostport = ray.get_runtime_context().gcs_address
        host, _, port = hostport.rpartition(":")
        return (host.strip("[]"), int(port)) if port.isdigit() else None

    def check_cluster(self, force: bool = False) -> None:
        """Raise a ScenarioError if the cluster's head has stopped accepting connections (three
        attempts over about two seconds); checked at most every HEALTH_EVERY_S s."""
        import socket
        import time

        head = self._head()
        now = time.monotonic()
        if head is None or (not force and now - self._checked < HEALTH_EVERY_S):
            return
        self._checked = now
        why = ""
        for attempt in range(3):
            try:
                socket.create_connection(head, timeout=1.0).close()
                return
            except OSError as e:
                why = e.strerror or type(e).__name__
                time.sleep(0.5)
        self.lost = True
        from irqlab.errors import ScenarioError

        raise ScenarioError(
            f"lost the Ray cluster at {self.address}: its head no longer accepts connections "
            f"at {head[0]}:{head[1]} ({why}); {len(self._pending)} batch(es) in flight were "
            "dropped, every batch finished before is stored",
            hint="run the same command again to finish the sweep, inline (--launcher inline) "
                 "or with --address of a running cluster")

    # ------------------------------------------------------------------ tasks

    def put_program(self, program: Any) -> Any:
        import ray

        return ray.put(program)

    def submit(self, task_id: int, program: Any, lanes: Sequence[Any]) -> None:
        ref = self._remote.remote(program, list(lanes), self.run_fn, 1)  # num_cpus=1: one kernel thread
        self._pending[ref] = task_id

    def wait(self, timeout: float | None) -> list[tuple[int, Any]]:
        import ray

        if not self._pending:
            return []
        self.check_cluster()
        refs = list(self._pending)
        try:
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            if not ready:
                return []
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        except Exception:  # noqa: BLE001 - Ray's own failure: a lost cluster, or re-raised
            self.check_cluster(force=True)
            raise
        out = []
        for ref in ready:
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as e:
                outcome = e
            out.append((self._pending[ref], outcome))
        if any(isinstance(o, BaseException) for _, o in out):
            self.check_cluster(force=True)  # a task lost with the cluster is not a failed run
        for ref in ready:
            self._pending.pop(ref)
        return out

    @property
    def inflight(self) -> int:
        return len(self._pending)

    def cancel(self) -> None:
        import ray

        if self.lost:
            self._pending.clear()
            return
        for ref in list(self._pending):
            try:
                ray.cancel(ref, force=self._owned)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        self._pending.clear()

    def describe(self) -> str:
        if self.address:
            return f"ray cluster at {self.address} ({self.workers} CPUs)"
        return f"ray (embedded, {self.workers} workers)"


def init_embedded(workers: int, *, quiet: bool = True) -> None:
    """Start the embedded Ray: ``workers`` CPUs on this machine, no dashboard, workers
    at normal priority.

    Ray runs its workers at nice 15 by default (``worker_niceness``) so that
    its own processes stay responsive; for irqlab's embedded Ray the workers
    *are* the user's job (the inline launcher runs at normal priority too), and
    at nice 15 any other busy process on the machine would starve them.
    """
    import ray

    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR if quiet else logging.INFO,
             _system_config={"worker_niceness": 0})


def _worker_versions() -> dict[str, str]:
    import platform
    import socket

    from irqlab import __version__

    return {"irqlab": __version__, "python": platform.python_version(), "host": socket.gethostname()}


PROBE_TIMEOUT_S = 5.0


def probe_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, with a ScenarioError, if nothing accepts TCP connections at ``address``.

    ``ray.init`` retries an unreachable head for minutes before it gives up; one
    connection attempt tells the common cases (a wrong port, a stopped cluster)
    in at most ``timeout`` seconds. ``auto``, ``local`` and an address without a
    port are left to Ray.
    """
    import socket

    hostport = address.removeprefix("ray://")
    if hostport in ("auto", "local") or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        if isinstance(e, TimeoutError) or why == "timed out":
            why = f"no answer within {timeout:g} s"
        from irqlab.errors import ScenarioError

        raise ScenarioError(f"cannot connect to the Ray cluster at {address}: nothing accepts "
                            f"connections at {host}:{port} ({why})",
                            hint="is the cluster running (ray status --address ...), and is this "
                            "the head's port (6379 unless 'ray start --head' had --port)?"
                            ) from None


def _cluster_error(address: str, e: BaseException) -> Exception:
    from irqlab.errors import ScenarioError

    auth = os.environ.get("RAY_AUTH_MODE", "")
    hint = ("is the cluster running (ray status --address ...)? If it was started with "
            "RAY_AUTH_MODE=token, set RAY_AUTH_MODE=token here too, with its token in "
            "RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token"
            if auth.lower() != "token" else
            "is the cluster running, and is this the cluster's token (RAY_AUTH_TOKEN, "
            "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)?")
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return ScenarioError(f"cannot connect to the Ray cluster at {address}: {first}", hint=hint)
