"""One line of a trace text -> the parts of one record.

Accepted, per line (the format may change from line to line):

* ``trace-cmd report`` and ftrace's ``trace`` file: ``TASK-PID [CPU] FLAGS? TS: EVENT: FIELDS``,
  with or without the irq-flags/latency column (``d..1``), with or without
  ``TASK-PID``, the timestamp in seconds (``123.456789`` or ns resolution
  ``123.456789012``) or in integer nanoseconds;
* ``perf script``: ``TASK PID[/TID] [CPU] TS: [PERIOD] kvm:EVENT: FIELDS``;
* a bare excerpt of the event columns only: ``EVENT: FIELDS``;
* any of these quoted in a mail: leading ``>`` markers are removed first;
* a record wrapped over several lines, as mail wraps long lines: a line indented
  by two or more columns that is not itself a record (not timed, and not
  starting with a ``kvm_`` or ``system:event`` name) continues the record before
  it (:func:`continuation`).

Lines that carry no record and are not errors: blank lines, ``...`` and lines
of ``#`` comments or trace-cmd headers (they end a segment, except comments),
and ``CPU:N [LOST K EVENTS]`` (counted as lost).
"""

from __future__ import annotations

import re
from typing import NamedTuple

_QUOTE = re.compile(r"^(?:[ \t]*>)+[ \t]?")
_TIMED = re.compile(
    r"^\s*(?:(?P<task>\S.*?)[- ](?P<pid>\d+)(?:/(?P<tid>\d+))?\s+)?"
    r"(?:\(\s*[-\d]+\)\s+)?"                       # trace-cmd -O tgid column
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?![\d.]+:)(?P<flags>[\w.]{2,8})\s+)?"    # irq-flags / latency column
    r"(?P<ts>\d+(?:\.\d+)?):\s+"
    r"(?:\d+\s+)?"                                  # perf's sample period
    r"(?:\w+:)?(?P<event>[A-Za-z_]\w*):(?:\s+(?P<rest>.*))?$")
_BARE = re.compile(r"^\s*(?:\w+:)?(?P<event>[a-z_][a-z0-9_]*):(?:\s+(?P<rest>.*))?$")
_LOST = re.compile(r"^\s*CPU:?\s*(\d+)\s*\[(?:\d+\s+)?LOST\s+(\d+)\s+EVENTS\]", re.I)
_HEADER = re.compile(r"^\s*(?:cpus=\d+|version\s*=|CPU\s+\d+\s+is\s+empty|#)", re.I)


class Parts(NamedTuple):
    """What one line says: a record (``event`` set), a segment break, or lost events."""

    event: str | None = None
    rest: str = ""
    ts_ns: int | None = None
    cpu: int | None = None
    task: str | None = None
    pid: int | None = None
    lost: int = 0
    brk: bool = False


BREAK = Parts(brk=True)
NOTHING = Parts()


class LineError(ValueError):
    """A line that is none of the accepted forms; ``col`` is the 1-based column at fault."""

    def __init__(self, message: str, col: int = 1):
        super().__init__(message)
        self.col = col


def ts_to_ns(text: str) -> int:
    """``'123.456789'`` (seconds) or ``'123456789'`` (nanoseconds) -> integer nanoseconds."""
    if "." not in text:
        return int(text)
    sec, frac = text.split(".", 1)
    frac = (frac + "000000000")[:9]
    return int(sec) * 1_000_000_000 + int(frac)


def parse_line(line: str) -> Parts:
    """The parts of one line (without its newline); raises :class:`LineError`."""
    m = _QUOTE.match(line) if ">" in line[:8] or line.lstrip().startswith(">") else None
    body = line[m.end():] if m else line
    stripped = body.strip()
    if not stripped or stripped in ("...", "[...]", "<snip>", "[snip]"):
        return BREAK
    if stripped.startswith("#"):
        return NOTHING
    t = _TIMED.match(body)
    if t:
        task, pid, tid, cpu, _, ts, event, rest = t.groups()
        pid = tid or pid
        return Parts(event, (rest or "").strip(), ts_to_ns(ts), int(cpu),
                     task.strip() if task else None, int(pid) if pid else None)
    b = _BARE.match(body)
    if b:
        return Parts(event=b.group("event"), rest=(b.group("rest") or "").strip())
    lost = _LOST.match(body)
    if lost:
        return Parts(lost=int(lost.group(2)), brk=True)
    if _HEADER.match(body):
        return BREAK
    col = (m.end() if m else 0) + len(body) - len(body.lstrip()) + 1
    if "[" in stripped and ":" in stripped:
        raise LineError("not a trace record: expected 'TASK-PID [CPU] TIMESTAMP: EVENT: FIELDS'", col)
    raise LineError("not a trace record: expected 'EVENT: FIELDS' or a trace-cmd report line", col)


_EVENT_LIKE = re.compile(r"^(?:kvm\w*|\w+:\w+):")


def continuation(line: str) -> str | None:
    """The text of ``line`` if it can continue the record on the line before it (see the
    module docstring), else None."""
    m = _QUOTE.match(line) if ">" in line[:8] or line.lstrip().startswith(">") else None
    body = (line[m.end():] if m else line).expandtabs(8)
    stripped = body.strip()
    if not stripped or len(body) - len(body.lstrip()) < 2 or stripped in ("...", "[...]"):
        return None
    if _EVENT_LIKE.match(stripped) or _TIMED.match(body) or stripped.startswith("#"):
        return None
    return stripped
