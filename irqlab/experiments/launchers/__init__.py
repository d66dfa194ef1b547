"""Launchers: where batches run. One interface (:class:`~.base.Launcher`), two
implementations: :class:`~.inline.InlineLauncher` (this process) and
:class:`~.ray.RayLauncher` (embedded local Ray or an existing cluster)."""

from irqlab.experiments.launchers.base import Launcher
from irqlab.experiments.launchers.inline import InlineLauncher

__all__ = ["Launcher", "InlineLauncher", "RayLauncher", "make_launcher"]


def __getattr__(name: str):
    if name == "RayLauncher":
        from irqlab.experiments.launchers.ray import RayLauncher

        return RayLauncher
    raise AttributeError(name)


def make_launcher(kind: str, *, address: str | None = None, workers: int | None = None,
                  max_retries: int = 3, run_fn=None) -> Launcher:
    """``inline`` or ``ray`` (embedded when ``address`` is None, else that cluster)."""
    if kind == "inline":
        return InlineLauncher(run_fn)
    if kind == "ray":
        from irqlab.experiments.launchers.ray import RayLauncher

        return RayLauncher(address, workers, max_retries=max_retries, run_fn=run_fn)
    raise ValueError(f"unknown launcher {kind!r}")
