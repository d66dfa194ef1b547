"""The one error type for anything wrong in the user's input.

A :class:`ScenarioError` carries one or more :class:`Diagnostic` records, each
with a message and a :class:`Span` into the source. Printed, every diagnostic
reads like a compiler's::

    examples/storm.scn:12:9: error: unknown mitigation 'qemu_eoi_throtle'
        mitigation qemu_eoi_throtle { threshold 100 }
                   ^
    hint: did you mean 'qemu_eoi_throttle'?

The error pickles whole (message, spans and source lines), so a failure raised
in a Ray worker comes back to the driver exactly as it was raised.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True, order=True)
class Span:
    """A place in a source file: 1-based line and column, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<none>", 0, 0)


@dataclass(frozen=True)
class Diagnostic:
    """One located problem: ``file:line:col: error: message``."""

    message: str
    span: Span | None = None
    source_line: str | None = None
    hint: str | None = None
    severity: str = "error"

    def format(self) -> str:
        where = f"{self.span}: " if self.span and self.span.line > 0 else ""
        text = f"{where}{self.severity}: {self.message}"
        if self.source_line is not None and self.span is not None and self.span.line > 0:
            line = self.source_line.rstrip("\n").expandtabs(1)
            col = max(1, self.span.col)
            width = 1
            if self.span.end_line == self.span.line and self.span.end_col > col:
                width = min(self.span.end_col - col, max(1, len(line) - col + 1))
            text += f"\n    {line}\n    {' ' * (col - 1)}{'^' * width}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ScenarioError(Exception):
    """Something is wrong with the user's input (a .scn file, a parameter, a path).

    Construct with one message and span, or with a list of diagnostics to report
    several independent problems at once.
    """

    def __init__(
        self,
        message: str | None = None,
        span: Span | None = None,
        *,
        hint: str | None = None,
        source_line: str | None = None,
        diagnostics: Sequence[Diagnostic] | None = None,
    ) -> None:
        diags = list(diagnostics or [])
        if message is not None:
            diags.insert(0, Diagnostic(message, span, source_line, hint))
        if not diags:
            diags = [Diagnostic("invalid input")]
        self.diagnostics: list[Diagnostic] = diags
        super().__init__(self.format())

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    @property
    def span(self) -> Span | None:
        return self.diagnostics[0].span

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)

    def __str__(self) -> str:
        return self.format()

    def __reduce__(self):
        return (_rebuild, (tuple(self.diagnostics),))

    def with_sources(self, sources: dict[str, str]) -> "ScenarioError":
        """Fill in missing source lines from ``{file: text}``."""
        filled = []
        for d in self.diagnostics:
            if d.source_line is None and d.span is not None and d.span.file in sources:
                lines = sources[d.span.file].splitlines()
                if 1 <= d.span.line <= len(lines):
                    d = Diagnostic(d.message, d.span, lines[d.span.line - 1], d.hint, d.severity)
            filled.append(d)
        return ScenarioError(diagnostics=filled)


def with_disk_sources(error: ScenarioError) -> ScenarioError:
    """``error`` with the source lines still missing read from the files its spans name
    (an included file, say, whose text the reporting code did not have)."""
    sources = {}
    for d in error.diagnostics:
        f = d.span.file if d.span is not None and d.source_line is None else None
        if f and f not in sources and not f.startswith("<"):
            from irqlab.files import read_bytes

            try:
                sources[f] = read_bytes(f).decode("utf-8", errors="replace")
            except ScenarioError:
                continue
    return error.with_sources(sources) if sources else error


def _rebuild(diagnostics: tuple[Diagnostic, ...]) -> ScenarioError:
    return ScenarioError(diagnostics=list(diagnostics))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None if nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def collect(errors: Iterable[ScenarioError]) -> ScenarioError | None:
    """Merge several errors into one (in source order), or None if there are none."""
    diags: list[Diagnostic] = []
    for e in errors:
        diags.extend(e.diagnostics)
    if not diags:
        return None
    diags.sort(key=lambda d: (d.span or NO_SPAN))
    return ScenarioError(diagnostics=diags)


@dataclass
class ErrorSink:
    """Collects independent errors during one pass, to report them together."""

    errors: list[ScenarioError] = field(default_factory=list)

    def add(self, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.errors.append(ScenarioError(message, span, hint=hint))

    def extend(self, error: ScenarioError) -> None:
        self.errors.append(error)

    def raise_if_any(self) -> None:
        merged = collect(self.errors)
        if merged is not None:
            raise merged
