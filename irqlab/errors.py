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
from dataclasses import dataclass, field, replace
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


#: A part of a scenario: its name, then the segments of a path in it
#: (``("s", "device", "uhci", "arrival")``); ``("s",)`` is the whole scenario.
Part = tuple[str, ...]


@dataclass(frozen=True)
class Diagnostic:
    """One located problem: ``file:line:col: error: message``.

    ``breaks``: the parts this error leaves undefined (an unknown base scenario
    leaves the whole scenario undefined; a misspelt plugin its parameters, under
    the name written and the names it may have meant). ``presumes``: the part this error's own judgement
    relies on (a "missing vector" error presumes the device is fully defined; a
    failed lookup of ``min_gap.gap`` presumes whatever it would have named).
    :func:`drop_echoes` drops an error whose presumption another error breaks.
    ``presumes_suffix``: the path after the scenario name is a dotted suffix as
    the user wrote it (``min_gap.gap``), not a canonical path. A scenario name
    ``""`` stands for the scenario being resolved (code that does not know its
    name); :meth:`ScenarioError.in_scenario` fills it in."""

    message: str
    span: Span | None = None
    source_line: str | None = None
    hint: str | None = None
    severity: str = "error"
    breaks: tuple[Part, ...] = ()
    presumes: Part | None = None
    presumes_suffix: bool = False

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
        breaks: tuple[Part, ...] = (),
        presumes: Part | None = None,
        presumes_suffix: bool = False,
    ) -> None:
        diags = list(diagnostics or [])
        if message is not None:
            diags.insert(0, Diagnostic(message, span, source_line, hint, breaks=breaks,
                                       presumes=presumes, presumes_suffix=presumes_suffix))
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

    def in_scenario(self, name: str, presumed: bool = False) -> "ScenarioError":
        """This error with the parts of its diagnostics that name no scenario (``""``) in
        scenario ``name``; ``presumed``: a diagnostic that presumes nothing presumes the
        scenario as a whole (it was found checking it: its base and plugins defined)."""
        def fill(part: Part | None) -> Part | None:
            return (name, *part[1:]) if part and part[0] == "" else part

        return ScenarioError(diagnostics=[
            replace(d, breaks=tuple(fill(b) for b in d.breaks),
                    presumes=(name,) if presumed and d.presumes is None else fill(d.presumes))
            for d in self.diagnostics])

    def with_sources(self, sources: dict[str, str]) -> "ScenarioError":
        """Fill in missing source lines from ``{file: text}``."""
        filled = []
        for d in self.diagnostics:
            if d.source_line is None and d.span is not None and d.span.file in sources:
                lines = sources[d.span.file].splitlines()
                if 1 <= d.span.line <= len(lines):
                    d = replace(d, source_line=lines[d.span.line - 1])
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


def _covers(broken: Part, d: Diagnostic) -> bool:
    """Whether ``broken`` being undefined makes ``d``'s presumption unfounded."""
    want = d.presumes
    if want is None or not want or not broken or "" not in (broken[0], want[0]) and broken[0] != want[0]:
        return False
    b, w = broken[1:], want[1:]
    if not b:
        return True  # the whole scenario is undefined
    if not d.presumes_suffix:
        return w[:len(b)] == b  # inside the broken part
    # a dotted suffix names something inside the broken part when its start is the
    # end of the part's path: min_gap.gap under mitigation.min_gap
    return any(w[:k] == b[-k:] for k in range(1, min(len(b), len(w)) + 1))


def drop_echoes(diags: Sequence[Diagnostic]) -> list[Diagnostic]:
    """``diags`` without the errors that only follow from another one: those whose
    presumed part (``presumes``) another error left undefined (``breaks``). One rule
    for every cascade: an unknown base scenario, an unknown or broken plugin, a bad
    value, and what would have been found in them. Of two errors that each explain
    the other (two uses of one missing name), the first in the file is kept."""
    def explains(j: int, i: int) -> bool:  # error j is why error i was found
        return any(_covers(b, diags[i]) for b in diags[j].breaks)

    def first(j: int, i: int) -> bool:
        return (diags[j].span or NO_SPAN, j) < (diags[i].span or NO_SPAN, i)

    breakers = [j for j, d in enumerate(diags) if d.breaks]
    # of two errors that explain each other (two uses of one missing name), the first stays
    return [d for i, d in enumerate(diags)
            if not any(j != i and explains(j, i) and (not explains(i, j) or first(j, i))
                       for j in breakers)]


def collect(errors: Iterable[ScenarioError]) -> ScenarioError | None:
    """Merge several errors into one (in source order, echoes of another dropped:
    :func:`drop_echoes`), or None if there are none."""
    diags: list[Diagnostic] = []
    for e in errors:
        diags.extend(e.diagnostics)
    if not diags:
        return None
    diags = drop_echoes(diags)
    diags.sort(key=lambda d: (d.span or NO_SPAN))
    return ScenarioError(diagnostics=diags)


@dataclass
class ErrorSink:
    """Collects independent errors during one pass, to report them together."""

    errors: list[ScenarioError] = field(default_factory=list)

    def add(self, message: str, span: Span | None = None, hint: str | None = None, *,
            breaks: tuple[Part, ...] = (), presumes: Part | None = None) -> None:
        self.errors.append(ScenarioError(message, span, hint=hint, breaks=breaks, presumes=presumes))

    def extend(self, error: ScenarioError) -> None:
        self.errors.append(error)

    def raise_if_any(self) -> None:
        merged = collect(self.errors)
        if merged is not None:
            raise merged
