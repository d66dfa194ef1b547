"""Bounded reads of the files irqlab is given: one function for every read.

Every file irqlab reads on a user's behalf (a scenario, an ``include``d or
``import``ed file, an ``arrival trace`` file) goes through :func:`read_bytes`,
which reads only a *regular* file no larger than a limit:

* a directory, a FIFO, a socket or a device (``/dev/zero``, ``/dev/urandom``)
  is refused before it is opened (``os.stat``), and the file is opened with
  ``O_NONBLOCK`` and checked again (``os.fstat``), so a file swapped for a FIFO
  in between cannot block the read;
* a file larger than the limit is refused; at most ``limit + 1`` bytes are
  read, so a file that grows while it is read cannot exhaust memory.

Limits (bytes), adjustable by environment variable:

=================  ==========================  =========
kind               variable                    default
=================  ==========================  =========
``scenario``       ``IRQLAB_MAX_FILE_BYTES``   64 MiB
``trace``          ``IRQLAB_MAX_TRACE_BYTES``  1 GiB
=================  ==========================  =========

Every refusal is a :class:`~irqlab.errors.ScenarioError` at ``span`` (the
``include`` statement or the ``file`` argument that named the file), so the
CLI prints it located, with exit status 2.
"""

from __future__ import annotations

import os
import stat

from irqlab.errors import ScenarioError, Span

#: kind -> (environment variable, default limit in bytes)
LIMITS = {
    "scenario": ("IRQLAB_MAX_FILE_BYTES", 64 << 20),
    "trace": ("IRQLAB_MAX_TRACE_BYTES", 1 << 30),
}

_CHUNK = 1 << 20


def limit(kind: str) -> int:
    """The size limit in bytes for files of ``kind`` (its variable, else the default)."""
    var, default = LIMITS[kind]
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ScenarioError(f"{var}={raw!r} is not a number of bytes",
                            hint=f"e.g. {var}={default}") from None
    if value < 0:
        raise ScenarioError(f"{var}={raw!r} cannot be negative", hint=f"e.g. {var}={default}")
    return value


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_bytes(path: str, *, kind: str = "scenario", what: str = "scenario file",
               span: Span | None = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit(kind)`` of them.

    ``what`` names the file in messages (``"scenario file"``, ``"arrival
    trace"``). A ScenarioError at ``span`` if the file is missing, unreadable,
    not a regular file, or larger than the limit.
    """
    var = LIMITS[kind][0]
    cap = limit(kind)

    def refuse(message: str, hint: str | None = None) -> ScenarioError:
        return ScenarioError(message, span, hint=hint)

    def check(st: os.stat_result) -> None:
        other = _not_regular(st.st_mode)
        if other is not None:
            raise refuse(f"{what} '{path}' is {other}, not a regular file",
                         hint="irqlab reads only regular files")
        if st.st_size > cap:
            raise refuse(f"{what} '{path}' is {_mb(st.st_size)}, more than the limit of {_mb(cap)}",
                         hint=f"raise the limit with {var}=BYTES")

    try:
        check(os.stat(path))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise refuse(f"cannot read {what} '{path}': {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "rb", buffering=0) as f:
            check(os.fstat(f.fileno()))  # the file opened is the file checked
            chunks = []
            total = 0
            while total <= cap:
                chunk = f.read(min(_CHUNK, cap + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except OSError as e:
        raise refuse(f"cannot read {what} '{path}': {e.strerror or e}") from None
    if total > cap:
        raise refuse(f"{what} '{path}' grew past the limit of {_mb(cap)} while it was read",
                     hint=f"raise the limit with {var}=BYTES")
    return b"".join(chunks)


def decode_utf8(data: bytes, path: str, what: str = "scenario files") -> str:
    """UTF-8 ``data`` read from ``path`` as text; invalid UTF-8 is a ScenarioError
    located at the first bad byte (``what`` names the files in the message)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        head = data[: e.start]
        line = head.count(b"\n") + 1
        line_start = head.rfind(b"\n") + 1
        col = len(data[line_start: e.start].decode("utf-8", "replace")) + 1
        end = data.find(b"\n", e.start)
        src = data[line_start: end if end >= 0 else len(data)].decode("utf-8", "replace")
        raise ScenarioError(f"invalid UTF-8 (byte 0x{data[e.start]:02X}); {what} are UTF-8 text",
                            Span(path, line, col, line, col + 1), source_line=src) from None
