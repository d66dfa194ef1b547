"""Built-in arrival processes: when a device has new work.

All times are ``int64`` picoseconds; ``NEVER`` means no further arrival.
Random draws come from the device's own per-lane stream (``ctx.uniform``,
``ctx.exponential``), so a lane's arrivals never depend on other lanes.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict

import numpy as np

from irqlab.engine import kernel_ids as K
from irqlab.errors import ScenarioError, Span
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
    kernel_kind = K.ARR_TRACE  # irqlab.engine.kernel runs it natively (its timestamps in the lane's state)
    params = (
        Param("file", "file", doc="path of the timestamp file, relative to the scenario",
              validate=lambda path, span: load_timestamps(path, span)),
        Param("offset", "time", 0.0, "added to every timestamp", min=0),
    )

    def init(self, ctx):
        self.times = self.kernel_times()
        ctx.state.alloc("i", (), np.int64, 0)

    def kernel_times(self) -> np.ndarray:
        """The file's timestamps (``int64[n]`` ps, sorted)."""
        return load_timestamps(self.config["file"])

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
            t[ok] = _after(self.times[i[ok]], ctx.param("offset", lanes)[ok])
        return t


# --------------------------------------------------------------------------- trace files

_UNITS = {"ns": 1e3, "us": 1e6, "µs": 1e6, "μs": 1e6, "ms": 1e9, "s": 1e12}
_LINE = re.compile(r"\s*([^\s#]+?)\s*(ns|us|µs|μs|ms|s)?\s*(?:#.*)?\Z")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
#: files at least this large are parsed by pyarrow's CSV reader when they hold only numbers
FAST_BYTES = 256 << 10
#: timestamps in picoseconds must stay below this (int64)
_LIMIT_PS = 2.0**63
_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_CACHE_SIZE = 4


def load_timestamps(path: str, span: Span | None = None) -> np.ndarray:
    """Sorted ``int64[n]`` picosecond timestamps from the trace file at ``path``.

    A line holds one timestamp: a decimal number of seconds, or a number and a
    unit (ns, us, ms, s); ``#`` starts a comment; blank lines are skipped.
    Each value is rounded to the nearest picosecond (exact for any value with
    at most picosecond digits below 2**53 ps, about 2.5 hours; beyond that,
    within float64 precision). A ScenarioError at ``span`` (the ``file``
    argument) if the file is missing, not a regular file or too large
    (:func:`irqlab.files.read_bytes`); at the first bad line
    (``FILE:LINE:COL``, with the line) for invalid UTF-8, a word, NaN or
    Infinity, a negative time, or a time beyond int64 picoseconds.

    Reading is cached per process by (path, inode, size, mtime), so checking a
    scenario and running its points read a file once; the returned array is
    shared and read-only.
    """
    from irqlab.files import read_bytes

    try:
        st = os.stat(path)
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    data = read_bytes(path, kind="trace", what="arrival trace", span=span)
    times = _fast_ps(data) if len(data) >= FAST_BYTES else None
    if times is None:
        times = _line_ps(data, path)
    del data
    times.sort()
    times.flags.writeable = False
    if key is not None:
        _CACHE[key] = times
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return times


def _valid(ps: np.ndarray) -> bool:
    return bool(np.all((ps >= 0) & (ps < _LIMIT_PS)))  # NaN compares false


def _fast_ps(data: bytes) -> np.ndarray | None:
    """``int64[n]`` picoseconds of a file of bare numbers of seconds, one per line,
    streamed through pyarrow's CSV reader block by block into one preallocated
    array; None when the file holds anything else or a value is invalid (the
    line-by-line reader then finds and reports the first bad line)."""
    if data.translate(None, b"0123456789.eE+-\r\n"):  # comments, units, words, blanks
        return None
    import pyarrow as pa
    import pyarrow.csv as pcsv

    out = np.empty(data.count(b"\n") + 1, dtype=np.int64)
    n = 0
    try:
        reader = pcsv.open_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(column_names=["t"], block_size=1 << 22),
            parse_options=pcsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                                            ignore_empty_lines=True),
            convert_options=pcsv.ConvertOptions(column_types={"t": pa.float64()}, null_values=[],
                                                strings_can_be_null=False))
        for batch in reader:
            col = batch.column(0)
            if col.null_count:
                return None
            ps = col.to_numpy(zero_copy_only=False) * 1e12
            np.rint(ps, out=ps)
            if not _valid(ps):
                return None
            out[n: n + len(ps)] = ps
            n += len(ps)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return out[:n]


def _line_ps(data: bytes, path: str) -> np.ndarray:
    """``int64[n]`` picoseconds, line by line; a ScenarioError at the first bad line."""
    from irqlab.files import decode_utf8

    text = decode_utf8(data, path, "arrival trace files")
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        body = raw.split("#", 1)[0]
        if not body.strip():
            continue
        m = _LINE.match(raw)
        num, unit = (m.group(1), m.group(2) or "s") if m else (body.strip(), "s")
        col = raw.find(num) + 1 if num else 1

        def bad(message: str, hint: str | None = None) -> ScenarioError:
            return ScenarioError(message, Span(path, n, col, n, col + max(len(num), 1)),
                                 source_line=raw, hint=hint)

        if m is None or not _NUMBER.match(num):
            word = num.lower().lstrip("+-")
            if word in ("nan", "inf", "infinity"):
                raise bad(f"not a finite timestamp: '{num}'")
            raise bad(f"not a timestamp: '{body.strip()}'",
                      hint="one number per line: seconds, or a number and a unit (ns, us, ms, s)")
        value = float(num) * _UNITS[unit]
        if value < 0:
            raise bad("timestamps cannot be negative")
        if not value < _LIMIT_PS:
            raise bad(f"timestamp {num}{'' if unit == 's' and not m.group(2) else unit} is beyond "
                      "the range of times the engine can hold",
                      hint=f"times are int64 picoseconds: at most {_LIMIT_PS / 1e12:.6g} s")
        out.append(value)
    return np.rint(np.asarray(out, dtype=np.float64)).astype(np.int64)
