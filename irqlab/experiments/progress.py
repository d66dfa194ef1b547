"""Progress of a sweep: a live bar on a terminal, nothing otherwise.

The bar (on stderr, with rich) shows runs done / planned, lane-events per
second, the ETA and the failures so far. Runs already in the store when a
sweep resumes count as done from the start. When stderr is not a terminal
(CI, a pipe, a log file) the bar stays silent; the end-of-sweep summary is
printed by the command either way.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


class Progress:
    """The live bar. ``enabled=None``: on when stderr is a terminal."""

    def __init__(self, total: int, already: int = 0, enabled: bool | None = None) -> None:
        self.total = total
        self.done = already
        self.failed = 0
        self.events = 0
        self.t0 = time.perf_counter()
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def start(self, description: str = "sweep") -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs"),
            TextColumn("{task.fields[rate]} lane-events/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]}"),
            console=Console(stderr=True),
            transient=False,
            refresh_per_second=4,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=self.total, completed=self.done,
                                        rate="-", failed="")

    def phase(self, description: str) -> None:
        """Change the bar's label (``validating``, ``starting ray``, ``running`` ...)."""
        if self._bar is not None:
            self._bar.update(self._task, description=description)

    def advance(self, ok: int, failed: int, events: int) -> None:
        self.done += ok + failed
        self.failed += failed
        self.events += events
        if self._bar is not None:
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self._bar.update(self._task, completed=self.done, rate=_si(self.events / elapsed),
                             failed=f"[red]{self.failed} failed" if self.failed else "")

    def print(self, text: str) -> None:
        """A line above the bar (or on stderr when there is no bar and it matters)."""
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
