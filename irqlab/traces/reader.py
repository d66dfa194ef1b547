"""Reading trace files: text (trace-cmd report, perf script, excerpts), irqlab's
Perfetto JSON, and imported Parquet, as a stream of record dicts.

A record is a dict with the columns of :mod:`irqlab.traces.schema` (absent
fields left out). Reading is bounded: only regular files are read, text in
chunks of :data:`CHUNK` bytes with lines of at most :data:`MAX_LINE` bytes, and
a JSON file of at most :data:`MAX_JSON` bytes. A malformed line is reported to
``on_error`` as a :class:`~irqlab.errors.Diagnostic` (``FILE:LINE:COL: error``)
and skipped; :class:`ReadStats` counts lines, records, skips and lost events.
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from irqlab.errors import Diagnostic, ScenarioError, Span
from irqlab.traces.fields import FieldError, parse_fields
from irqlab.traces.lines import LineError, Parts, continuation, parse_line

CHUNK = 1 << 20
MAX_LINE = 1 << 16
MAX_JSON = 256 << 20
FIELD_CACHE = 1 << 16  # parsed fields kept by (event, text): a storm repeats the same few texts
_FIELDS: dict[tuple[str, str], dict] = {}
_TASK_VCPU: dict[str, int | None] = {}
_VCPU_TASK = re.compile(r"CPU (\d+)/KVM|^vCPU (\d+)$")


@dataclass
class ReadStats:
    """What a read saw: lines read, records kept, malformed lines skipped, events lost
    (``[LOST N EVENTS]``), and records per event name."""

    lines: int = 0
    records: int = 0
    skipped: int = 0
    lost: int = 0
    events: Counter = field(default_factory=Counter)


ErrorSink = Callable[[Diagnostic], None]


def check_file(path: str) -> str:
    """The kind of ``path`` (``'text'``, ``'json'`` or ``'parquet'``); a ScenarioError for
    anything that is not a non-empty regular file holding one of them."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ScenarioError(f"cannot read '{path}': no such file") from None
    except OSError as e:
        raise ScenarioError(f"cannot read '{path}': {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ScenarioError(f"cannot read '{path}': it is a directory, not a trace file")
    if not stat.S_ISREG(st.st_mode):
        raise ScenarioError(f"cannot read '{path}': not a regular file (a FIFO, device or socket); "
                            "irqlab reads trace files only")
    if st.st_size == 0:
        raise ScenarioError(f"cannot read '{path}': the file is empty")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as e:
        raise ScenarioError(f"cannot read '{path}': {e.strerror}") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head[:10].endswith(b"tracing") or head.startswith(b"\x17\x08D"):
        raise ScenarioError(f"cannot read '{path}': a trace-cmd .dat file, not a report",
                            hint=f"convert it first: trace-cmd report -i {path} > trace.txt")
    if b"\0" in head:
        raise ScenarioError(f"cannot read '{path}': a binary file, not trace text",
                            hint="irqlab reads `trace-cmd report` or `perf script` text, "
                                 "irqlab's Perfetto JSON, or a Parquet file it imported")
    if re.match(rb"\s*(?:\{|\[\s*[{\]])", head):  # an object, or an array of objects
        return "json"
    return "text"


def vcpu_of_task(task: str | None) -> int | None:
    """The vCPU index in a QEMU vCPU thread's name (``CPU 3/KVM``, ``vCPU 3``), or None."""
    if not task:
        return None
    if task not in _TASK_VCPU:
        if len(_TASK_VCPU) >= FIELD_CACHE:
            _TASK_VCPU.clear()
        m = _VCPU_TASK.search(task)
        _TASK_VCPU[task] = int(m.group(1) or m.group(2)) if m else None
    return _TASK_VCPU[task]


def make_record(file: str, line: int, segment: int, event: str, rest: str, ts_ns, cpu, task, pid
                ) -> dict:
    """A record dict from the parts of one record; raises FieldError for a known event whose
    fields cannot be read."""
    rec = {"file": file, "line": line, "segment": segment, "ts_ns": ts_ns, "cpu": cpu,
           "task": task, "pid": pid, "stream": pid if pid is not None else (cpu if cpu is not None else 0),
           "event": event, "raw": rest}
    fields = _FIELDS.get((event, rest))
    if fields is None:
        if len(_FIELDS) >= FIELD_CACHE:
            _FIELDS.clear()
        fields = _FIELDS[(event, rest)] = parse_fields(event, rest)
    rec.update(fields)
    if rec.get("vcpu") is None:
        v = vcpu_of_task(task)
        if v is not None:
            rec["vcpu"] = v
    return rec


def _text_lines(path: str) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of each line, read in chunks; text None for an over-long line."""
    n = 0
    tail = b""
    skipping = False
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            parts = (tail + chunk).split(b"\n")
            tail = parts.pop()
            for p in parts:
                n += 1
                if skipping:
                    skipping = False
                    yield n, None
                elif len(p) > MAX_LINE:
                    yield n, None
                else:
                    yield n, p.decode("utf-8", "replace").rstrip("\r")
            if len(tail) > MAX_LINE:
                tail = b""
                skipping = True
        if tail or skipping:
            n += 1
            yield n, None if skipping or len(tail) > MAX_LINE else tail.decode("utf-8", "replace").rstrip("\r")


def read_text(path: str, stats: ReadStats, on_error: ErrorSink) -> Iterator[dict]:
    """Records of a trace text (see :mod:`irqlab.traces.lines`); malformed lines skipped.

    A record is held until the next line shows whether it continues on it (a wrapped line)."""
    segment = 0
    fresh = True  # no record yet in the current segment
    pending: tuple[int, str, Parts] | None = None  # (line number, text, parts) of the last record

    def emit(n: int, text: str, parts: Parts):
        try:
            return make_record(path, n, segment, parts.event, parts.rest, parts.ts_ns, parts.cpu,
                               parts.task, parts.pid)
        except FieldError as e:
            stats.skipped += 1
            col = text.find(parts.rest[:20]) + 1 if parts.rest else len(text)
            on_error(Diagnostic(str(e), Span(path, n, max(col, 1), n, len(text) + 1), text))
            return None

    for n, text in _text_lines(path):
        stats.lines += 1
        parts, error = None, None
        if text is not None:
            try:
                parts = parse_line(text)
            except LineError as e:
                error = e
        if pending is not None and text is not None and (parts is None or parts.ts_ns is None):
            more = continuation(text)  # only a line that is not a timed record can continue one
            if more is not None:
                pn, ptext, pparts = pending
                pending = (pn, ptext, pparts._replace(rest=f"{pparts.rest} {more}".strip()))
                continue
        if pending is not None:
            rec = emit(*pending)
            pending = None
            if rec is not None:
                fresh = False
                stats.records += 1
                stats.events[rec["event"]] += 1
                yield rec
        if text is None:
            stats.skipped += 1
            on_error(Diagnostic(f"line longer than {MAX_LINE} bytes", Span(path, n, 1)))
            continue
        if error is not None:
            stats.skipped += 1
            on_error(Diagnostic(str(error), Span(path, n, error.col, n, len(text) + 1), text))
            continue
        if parts.event is None:
            stats.lost += parts.lost
            if parts.brk and not fresh:
                segment += 1
                fresh = True
            continue
        pending = (n, text, parts)
    if pending is not None:
        rec = emit(*pending)
        if rec is not None:
            stats.records += 1
            stats.events[rec["event"]] += 1
            yield rec


def read_json(path: str, stats: ReadStats, on_error: ErrorSink) -> Iterator[dict]:
    """Records of a Chrome/Perfetto JSON trace as ``irqlab trace --perfetto`` writes it:
    instant events (``ph: i``, ``cat: event``) with the record's text in ``args.text``."""
    import json

    if os.stat(path).st_size > MAX_JSON:
        raise ScenarioError(f"cannot read '{path}': a JSON trace larger than {MAX_JSON >> 20} MiB",
                            hint="import the trace-cmd report text instead: it is read in chunks")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (ValueError, UnicodeDecodeError) as e:
        raise ScenarioError(f"cannot read '{path}': not valid JSON ({e})") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise ScenarioError(f"cannot read '{path}': no 'traceEvents' list: not a Chrome/Perfetto trace")
    names = {}
    for ev in events:
        if isinstance(ev, dict) and ev.get("ph") == "M" and ev.get("name") == "thread_name":
            names[ev.get("tid")] = (ev.get("args") or {}).get("name")
    for i, ev in enumerate(events):
        stats.lines += 1
        if not isinstance(ev, dict) or ev.get("ph") != "i" or ev.get("cat") != "event":
            continue
        name, ts, text = ev.get("name"), ev.get("ts"), (ev.get("args") or {}).get("text")
        if not isinstance(name, str) or not isinstance(ts, (int, float)) or not isinstance(text, str):
            stats.skipped += 1
            on_error(Diagnostic(f"{path}: traceEvents[{i}]: an instant event needs a name, "
                                "a numeric ts and args.text"))
            continue
        tid = ev.get("tid")
        try:
            rec = make_record(path, i + 1, 0, name, text, round(ts * 1000), None, names.get(tid),
                              tid if isinstance(tid, int) else None)
        except FieldError as e:
            stats.skipped += 1
            on_error(Diagnostic(f"{path}: traceEvents[{i}]: {e}"))
            continue
        stats.records += 1
        stats.events[name] += 1
        yield rec


def read_parquet(path: str, stats: ReadStats) -> Iterator[dict]:
    """Records of a Parquet file written by ``irqlab traces import``."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ScenarioError(f"cannot read '{path}': not a readable Parquet file ({e})") from None
    if "event" not in pf.schema_arrow.names or "stream" not in pf.schema_arrow.names:
        raise ScenarioError(f"cannot read '{path}': a Parquet file, but not an imported trace "
                            "(no 'event'/'stream' columns)")
    for batch in pf.iter_batches(batch_size=65536):
        for rec in batch.to_pylist():
            stats.lines += 1
            stats.records += 1
            stats.events[rec["event"]] += 1
            yield {k: v for k, v in rec.items() if v is not None}


def read_records(paths: Iterable[str], stats: ReadStats, on_error: ErrorSink) -> Iterator[dict]:
    """Records of every file in ``paths``, in order. Every file is checked first, so a
    missing or unreadable one is reported before anything is read."""
    paths = list(paths)
    kinds = [check_file(p) for p in paths]
    for path, kind in zip(paths, kinds):
        if kind == "parquet":
            yield from read_parquet(path, stats)
        elif kind == "json":
            yield from read_json(path, stats, on_error)
        else:
            yield from read_text(path, stats, on_error)
