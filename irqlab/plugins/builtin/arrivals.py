"""Built-in arrival processes: when a device has new work.

All times are ``int64`` picoseconds; ``NEVER`` means no further arrival.
Random draws come from the device's own per-lane stream (``ctx.uniform``,
``ctx.exponential``), so a lane's arrivals never depend on other lanes.
"""

from __future__ import annotations

import numpy as np

from irqlab.errors import ScenarioError
from irqlab.engine import kernel_ids as K
from irqlab.plugins.api import NEVER, ArrivalProcess, Param


def _after(now: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """``now + gap`` that saturates at NEVER instead of overflowing."""
    gap = np.asarray(gap, dtype=np.int64)
    out = now + np.minimum(gap, NEVER - now)
    return np.where(now == NEVER, NEVER, out)


class Once(ArrivalProcess):
    """A single arrival at time ``at`` (the founding case's UHCI interrupt)."""

    name = "once"
    version = "1.0"
    kernel_kind = K.ARR_ONCE  # irqlab.engine.kernel runs it natively
    params = (Param("at", "time", 0.0, "when the device raises its interrupt", min=0),)

    def first(self, ctx, lanes):
        return ctx.param("at", lanes).astype(np.int64)

    def next(self, ctx, lanes, now):
        return np.full(len(lanes), NEVER, dtype=np.int64)


class Periodic(ArrivalProcess):
    """One arrival every ``period`` from ``start`` (``count`` arrivals, 0 = unbounded)."""

    name = "periodic"
    version = "1.0"
    kernel_kind = K.ARR_PERIODIC  # irqlab.engine.kernel runs it natively
    params = (
        Param("period", "time", doc="time between arrivals", min=1e-12),
        Param("start", "time", 0.0, "time of the first arrival", min=0),
        Param("count", "int", 0, "number of arrivals; 0 for no limit", min=0),
    )

    def init(self, ctx):
        ctx.state.alloc("n", (), np.int64, 0)

    def first(self, ctx, lanes):
        ctx.state["n"][lanes] = 1
        return ctx.param("start", lanes).astype(np.int64)

    def next(self, ctx, lanes, now):
        n = ctx.state["n"]
        count = ctx.param("count", lanes)
        done = (count > 0) & (n[lanes] >= count)
        n[lanes] += 1
        return np.where(done, NEVER, _after(now, ctx.param("period", lanes)))


class Poisson(ArrivalProcess):
    """Arrivals as a Poisson process of ``rate`` (exponential gaps), from ``start``."""

    name = "poisson"
    version = "1.0"
    kernel_kind = K.ARR_POISSON  # irqlab.engine.kernel runs it natively
    params = (
        Param("rate", "frequency", doc="mean arrivals per second", min=1e-9),
        Param("start", "time", 0.0, "the process starts here", min=0),
    )

    def first(self, ctx, lanes):
        return self.next(ctx, lanes, ctx.param("start", lanes).astype(np.int64))

    def next(self, ctx, lanes, now):
        mean_ps = 1e12 / ctx.param("rate", lanes)
        return _after(now, np.floor(ctx.exponential(lanes, mean_ps)))


class Bursty(ArrivalProcess):
    """On/off bursts: Poisson arrivals at ``rate`` during ``on`` periods separated by
    ``off`` periods of silence, from ``start``."""

    name = "bursty"
    version = "1.0"
    kernel_kind = K.ARR_BURSTY  # irqlab.engine.kernel runs it natively
    params = (
        Param("rate", "frequency", doc="mean arrivals per second within a burst", min=1e-9),
        Param("on", "time", doc="length of a burst", min=1e-12),
        Param("off", "time", doc="silence between bursts", min=0),
        Param("start", "time", 0.0, "the first burst starts here", min=0),
    )

    def init(self, ctx):
        ctx.state.alloc("burst_end", (), np.int64, 0)

    def first(self, ctx, lanes):
        start = ctx.param("start", lanes).astype(np.int64)
        ctx.state["burst_end"][lanes] = start + ctx.param("on", lanes)
        return self._draw(ctx, lanes, start)

    def next(self, ctx, lanes, now):
        return self._draw(ctx, lanes, now)

    def _draw(self, ctx, lanes, now):
        end = ctx.state["burst_end"]
        on, off = ctx.param("on", lanes), ctx.param("off", lanes)
        mean_ps = 1e12 / ctx.param("rate", lanes)
        t = _after(now, np.floor(ctx.exponential(lanes, mean_ps)))
        late = t >= end[lanes]
        # Memorylessness: an arrival past the burst's end restarts in the next burst.
        while late.any():
            sel = lanes[late]
            start = end[sel] + off[late]
            end[sel] = start + on[late]
            t[late] = _after(start, np.floor(ctx.exponential(sel, mean_ps[late])))
            late[late] = t[late] >= end[sel]
        return t


class TraceFile(ArrivalProcess):
    """Arrivals replayed from a file of timestamps, one per line (``# comments``
    allowed; a bare number is seconds, or give a unit: ``12.5us``), shifted by
    ``offset``."""

    name = "trace"
    version = "1.0"
    params = (
        Param("file", "file", doc="path of the timestamp file, relative to the scenario"),
        Param("offset", "time", 0.0, "added to every timestamp", min=0),
    )

    def init(self, ctx):
        self.times = load_timestamps(self.config["file"])
        ctx.state.alloc("i", (), np.int64, 0)

    def first(self, ctx, lanes):
        ctx.state["i"][lanes] = 0
        return self._at(ctx, lanes)

    def next(self, ctx, lanes, now):
        ctx.state["i"][lanes] += 1
        return self._at(ctx, lanes)

    def _at(self, ctx, lanes):
        i = ctx.state["i"][lanes]
        ok = i < len(self.times)
        t = np.full(len(lanes), NEVER, dtype=np.int64)
        if len(self.times):
            t[ok] = self.times[i[ok]] + ctx.param("offset", lanes)[ok]
        return t


_UNITS = {"ns": 10**3, "us": 10**6, "µs": 10**6, "ms": 10**9, "s": 10**12}


def load_timestamps(path: str) -> np.ndarray:
    """Sorted ``int64`` picosecond timestamps from a file; a ScenarioError on bad lines."""
    from decimal import Decimal, InvalidOperation

    out = []
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        raise ScenarioError(f"cannot read arrival trace '{path}': {e.strerror}") from None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        num, scale = line, _UNITS["s"]
        for unit in sorted(_UNITS, key=len, reverse=True):
            if line.endswith(unit) and line[: -len(unit)].strip():
                num, scale = line[: -len(unit)].strip(), _UNITS[unit]
                break
        try:
            value = Decimal(num) * scale
        except InvalidOperation:
            from irqlab.errors import Span
            raise ScenarioError(f"not a timestamp: '{line}'", Span(path, n, 1, n, len(raw) + 1),
                                source_line=raw) from None
        if value < 0:
            from irqlab.errors import Span
            raise ScenarioError("timestamps cannot be negative", Span(path, n, 1), source_line=raw)
        out.append(int(value))
    return np.sort(np.asarray(out, dtype=np.int64))
