"""``PATH=VALUE`` options (``--set``, ``--grid``) located on the command line.

An error in such an option is reported like an error in a file, at
``<command line>:1:COL``, with the command as its source line and a caret
under the path or the value at fault.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence

from irqlab.errors import ScenarioError, Span

SET_HELP = "Override a parameter: --set path=value (repeatable; e.g. --set run.duration=10ms)."


def fmt_ns(x) -> str:
    """A time in ns as people read it (``1.2 ms``; ``never`` for None)."""
    if x is None:
        return "never"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.4g} {unit}"
    return f"{x:.4g} ns"

COMMAND_LINE = "<command line>"


def command_text() -> str:
    """The command being run, as a shell would show it (the source line of its errors)."""
    from irqlab.cli.main import State

    return shlex.join(["irqlab", *State.argv])


@dataclass(frozen=True)
class Assignment:
    """One ``PATH=VALUE`` option; the spans are None when it is not on the command line
    (given by a program rather than typed)."""

    option: str
    path: str
    value: str
    path_span: Span | None
    value_span: Span | None


def assignments(option: str, items: Sequence[str]) -> list[Assignment]:
    """``items`` of ``option`` split at their first '=' and located in :func:`command_text`.

    Raises a located ScenarioError for an item without '=' or without a path or value.
    """
    command = command_text()
    cursor = 0
    out = []
    for item in items:
        quoted = shlex.quote(item)
        at = command.find(" " + quoted, cursor) + 1
        start = None
        if at > 0 and (quoted == item or quoted == f"'{item}'"):
            cursor = at + len(quoted)
            start = at + (1 if quoted != item else 0)  # 0-based index of the item's text
        key, sep, value = item.partition("=")
        path, lead = key.strip(), len(key) - len(key.lstrip())
        if not sep or not path or not value.strip():
            span = Span(COMMAND_LINE, 1, start + 1, 1, start + 1 + len(item)) if start is not None else None
            raise ScenarioError(f"{option} expects PATH=VALUE, got '{item}'", span,
                                source_line=command if span else None)
        path_span = value_span = None
        if start is not None:
            p0 = start + lead + 1
            path_span = Span(COMMAND_LINE, 1, p0, 1, p0 + len(path))
            v_lead = len(value) - len(value.lstrip())
            v0 = start + len(key) + 2 + v_lead
            value_span = Span(COMMAND_LINE, 1, v0, 1, v0 + len(value.strip()))
        out.append(Assignment(option, path, value.strip(), path_span, value_span))
    return out


def with_command_line(error: ScenarioError, sources: dict[str, str] | None = None) -> ScenarioError:
    """``error`` with the command line (and ``sources``) filled in as source lines."""
    return error.with_sources({**(sources or {}), COMMAND_LINE: command_text()})
