"""Statements -> :class:`irqlab.ir.Scenario`, with every semantic check.

Lowering runs in two steps per scenario block:

1. *Drafting* (:mod:`irqlab.dsl.drafting`) reads the block's statements into
   a :class:`~irqlab.dsl.drafts.Draft` (fields by name with their spans),
   checking what one statement can tell on its own: known heads and fields
   (with a did-you-mean), the shape of each statement, units and literal
   values. ``extends`` starts from a copy of the base's draft, so a field given
   again overrides the base's and a device or mitigation given again is merged
   field by field.
2. *Building* (:mod:`irqlab.dsl.building`, the sweep block in
   :mod:`irqlab.dsl.sweep_lowering`) fills defaults, checks what needs the
   whole scenario (required fields, level stacks, plugin parameters),
   canonicalizes dotted names, then resolves the scenario once
   (``irqlab.resolve``) to check every value and run the cross-checks
   (``checks.py``), and checks the sweep.

This module loads files (imports, includes) and runs both steps.

Errors never stop a pass: they go to one sink and are reported together,
sorted by place, each once.
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator

from irqlab import ir
from irqlab.dsl.building import Builder
from irqlab.dsl.drafting import Drafter
from irqlab.dsl.drafts import SCENARIO_HEADS, TOP_HEADS, Draft, FileUnit, has_strings
from irqlab.dsl.syntax import (Approx, Block, CheckStmt, Compare, ParamStmt, Stmt, StrLit, WhereStmt, decode,
                               parse_statements, tree_statements, with_tail)
from irqlab.errors import ErrorSink, ScenarioError, Span, collect, did_you_mean
from irqlab.ir import Name


# --------------------------------------------------------------------------- entry points


@contextmanager
def _no_gc() -> Iterator[None]:
    """Loading allocates many small objects and no garbage cycles worth collecting;
    pausing the cyclic collector saves about a sixth of the time on large files."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def lower_text(text: str, filename: str = "<string>") -> ir.Scenario:
    """Parse and lower ``text``: its last scenario."""
    with _no_gc():
        loader = Loader()
        unit = loader.load_text(text, filename, parse_statements(text, filename))
        return loader.finish(unit)


def lower_text_all(text: str, filename: str = "<string>") -> dict[str, ir.Scenario]:
    """Parse and lower ``text``: every scenario it defines, by name, in file order."""
    with _no_gc():
        loader = Loader()
        unit = loader.load_text(text, filename, parse_statements(text, filename))
        loader.finish(unit)
        return dict(unit.built)


def lower_tree(tree: Any, filename: str = "<string>", text: str = "") -> ir.Scenario:
    """Lower a parse tree from :func:`irqlab.dsl.parse`."""
    with _no_gc():
        stmts = tree_statements(tree, filename, text)
        loader = Loader()
        unit = loader.load_text(text, filename, stmts)
        return loader.finish(unit)


def load_file(path: str) -> ir.Scenario:
    """Read and lower the file at ``path``: its last scenario."""
    with _no_gc():
        loader = Loader()
        unit = loader.load_path(path, None)
        return loader.finish(unit)


def load_file_all(path: str) -> dict[str, ir.Scenario]:
    """Every scenario the file at ``path`` defines, by name."""
    with _no_gc():
        loader = Loader()
        unit = loader.load_path(path, None)
        loader.finish(unit)
        return dict(unit.built)


def read_source(path: str, span: Span | None = None) -> str:
    """A scenario file's text (located errors for unreadable, non-regular or too large
    files (:func:`irqlab.files.read_bytes`), bad UTF-8, NUL bytes)."""
    from irqlab.files import read_bytes

    return decode(read_bytes(path, span=span), path)


# --------------------------------------------------------------------------- the loader


class Loader:
    """Loads files (imports, includes), drafts and builds their scenarios."""

    def __init__(self) -> None:
        self.sink = ErrorSink()
        self.sources: dict[str, str] = {}
        self.units: dict[str, FileUnit] = {}
        self.stack: list[str] = []
        self.dotted = False  # some expression names a dotted path (canonicalized when building)

    # -- errors

    def err(self, message: str, span: Span | None, hint: str | None = None, **parts) -> None:
        """Report an error; ``parts``: its ``breaks``/``presumes`` (see errors.Diagnostic)."""
        self.sink.add(message, span, hint, **parts)

    def blame(self, since: int, part: tuple[str, ...]) -> None:
        """The errors reported since ``len(self.sink.errors) == since`` leave ``part``
        undefined, unless they say what they break (see errors.Diagnostic): an error in a
        statement makes what that statement defines unreliable."""
        errs = self.sink.errors
        for k in range(since, len(errs)):
            errs[k] = ScenarioError(diagnostics=[d if d.breaks else replace(d, breaks=(part,))
                                                 for d in errs[k].diagnostics])

    def expectations(self, st: Stmt) -> tuple[ir.Expectation, ...] | None:
        """The assertions of ``expect { ... }`` (see :mod:`irqlab.expect`); None after an error."""
        if not isinstance(st.tail, Block):
            self.err("expect needs a block: expect { livelock == false }", st.span)
            return None
        if st.args:
            self.err("expect takes a block only: expect { ... }", st.args[0].span)
        out = []
        for inner in st.tail.stmts:
            e: Any = None
            if isinstance(inner, CheckStmt):
                e = inner.expr
            elif isinstance(inner, Stmt) and not inner.args and inner.tail is None:
                e = Name(span=inner.head_span, name=inner.head)  # a true-or-false metric alone
            elif isinstance(inner, Stmt) and not inner.args and isinstance(inner.tail, (Compare, Approx)):
                e = with_tail(Name(span=inner.head_span, name=inner.head), inner.tail)
            if e is None or has_strings(e):
                self.err("expected an assertion such as 'livelock == false', 'eoi_count within 1% of "
                         "1000' or 'fraction(livelock) >= 0.9'", inner.span)
                continue
            out.append(ir.Expectation(e, self.source_text(inner.span), inner.span))
        return tuple(out)

    def source_text(self, span: Span) -> str:
        """The text ``span`` covers, on one line (for reports)."""
        lines = self.sources.get(span.file, "").split("\n")[span.line - 1: span.end_line]
        if not lines:
            return ""
        if len(lines) == 1:
            return lines[0][span.col - 1: span.end_col - 1]
        lines[0], lines[-1] = lines[0][span.col - 1:], lines[-1][: span.end_col - 1]
        return " ".join(x.strip() for x in lines)

    def finish(self, unit: FileUnit) -> ir.Scenario:
        merged = collect(self.sink.errors)
        if merged is not None:
            seen = set()
            diags = []
            for d in merged.diagnostics:
                key = (d.message, d.span)
                if key not in seen:
                    seen.add(key)
                    diags.append(d)
            raise ScenarioError(diagnostics=diags).with_sources(self.sources)
        if unit.main is None:
            raise ScenarioError("no scenario in this file", Span(unit.path, 1, 1, 1, 2),
                                hint="write 'scenario NAME { ... }'").with_sources(self.sources)
        return unit.built[unit.main]

    # -- files

    def load_path(self, path: str, span: Span | None) -> FileUnit:
        key = os.path.abspath(path)
        if key in self.units:
            return self.units[key]
        text = read_source(path, span)
        self.sources[path] = text
        try:
            stmts = parse_statements(text, path)
        except ScenarioError as e:
            self.sink.extend(e)
            unit = FileUnit(path, text)
            self.units[key] = unit
            return unit
        return self.load_text(text, path, stmts)

    def load_text(self, text: str, filename: str, stmts: list) -> FileUnit:
        self.sources[filename] = text
        key = os.path.abspath(filename) if not filename.startswith("<") else filename
        unit = FileUnit(filename, text)
        self.units[key] = unit
        self.stack.append(key)
        try:
            self._top(unit, self.expand(stmts, filename, top=True))
        finally:
            self.stack.pop()
        return unit

    def _rel(self, base_file: str, target: str) -> str:
        if os.path.isabs(target) or base_file.startswith("<"):
            return target
        return os.path.join(os.path.dirname(base_file), target)

    def _cycle(self, path: str, span: Span, what: str) -> bool:
        key = os.path.abspath(path)
        if key in self.stack:
            chain = [os.path.basename(p) for p in self.stack[self.stack.index(key):]] + [os.path.basename(key)]
            self.err(f"{what} cycle: {' -> '.join(chain)}", span)
            return True
        return False

    def _file_arg(self, st: Stmt) -> str | None:
        if len(st.args) < 1 or not isinstance(st.args[0], StrLit):
            self.err(f"{st.head} needs a quoted file name: {st.head} \"other.scn\"", st.head_span)
            return None
        return st.args[0].value

    def expand(self, stmts: list, filename: str, top: bool) -> list:
        """``stmts`` with every ``include "file"`` replaced by that file's statements."""
        out: list = []
        for st in stmts:
            if isinstance(st, Stmt) and st.head == "include":
                target = self._file_arg(st)
                if target is None:
                    continue
                if len(st.args) > 1 or st.tail is not None:
                    self.err("include takes only a file name", st.span)
                path = self._rel(filename, target)
                if self._cycle(path, st.span, "include"):
                    continue
                try:
                    text = read_source(path, st.args[0].span)
                except ScenarioError as e:
                    self.sink.extend(e)
                    continue
                self.sources[path] = text
                try:
                    inner = parse_statements(text, path)
                except ScenarioError as e:
                    self.sink.extend(e)
                    continue
                self.stack.append(os.path.abspath(path))
                try:
                    out.extend(self.expand(inner, path, top))
                finally:
                    self.stack.pop()
            else:
                out.append(st)
        return out

    # -- top level

    def _top(self, unit: FileUnit, stmts: list) -> None:
        globals_: list[ParamStmt] = []
        for st in stmts:
            since = len(self.sink.errors)
            if isinstance(st, ParamStmt):
                globals_.append(st)
            elif isinstance(st, WhereStmt):
                self.err("'where' belongs in a sweep block", st.span)
            elif st.head == "import":
                self._import(unit, st)
            elif st.head == "scenario":
                self._scenario(unit, st, globals_)
            elif st.head in SCENARIO_HEADS:
                self.err(f"'{st.head}' belongs inside a scenario block", st.head_span,
                         hint="write 'scenario NAME { ... }' around the scenario's statements")
            else:
                self.err(f"unknown statement '{st.head}'", st.head_span,
                         hint=did_you_mean(st.head, TOP_HEADS + SCENARIO_HEADS)
                         or "a file holds import, include, param and scenario statements")
            if not (isinstance(st, Stmt) and st.head == "scenario"):
                self.blame(since, ("",))  # a broken import or statement: every scenario may need it
        for name, d in unit.drafts.items():
            unit.built[name] = Builder(self, d, unit.text if d.file == unit.path else "").build()

    def _import(self, unit: FileUnit, st: Stmt) -> None:
        target = self._file_arg(st)
        if target is None:
            return
        alias = None
        rest = st.args[1:]
        if rest:
            if len(rest) == 2 and isinstance(rest[0], Name) and rest[0].name == "as" and \
                    isinstance(rest[1], Name) and "." not in rest[1].name:
                alias = rest[1].name
            else:
                self.err("import takes a file name and optionally 'as NAME'", rest[0].span)
        if st.tail is not None:
            self.err("import takes no block", st.tail.span)
        path = self._rel(unit.path, target)
        if self._cycle(path, st.span, "import"):
            return
        try:
            other = self.load_path(path, st.args[0].span)
        except ScenarioError as e:
            self.sink.extend(e)
            return
        if alias is not None:
            if other.main is None:
                self.err(f"'{target}' defines no scenario", st.args[0].span)
            else:
                unit.visible[alias] = other.drafts[other.main]
        else:
            unit.visible.update(other.drafts)

    def _scenario(self, unit: FileUnit, st: Stmt, globals_: list[ParamStmt]) -> None:
        args = st.args
        if not args or not isinstance(args[0], Name) or "." in args[0].name:
            self.err("a scenario needs a name: scenario NAME { ... }", st.head_span)
            return
        name = args[0].name
        base: Draft | None = None
        if len(args) > 1:
            if len(args) == 3 and isinstance(args[1], Name) and args[1].name == "extends" and \
                    isinstance(args[2], Name):
                bname = args[2].name
                base = unit.drafts.get(bname) or unit.visible.get(bname)
                if base is None:
                    known = list(unit.drafts) + list(unit.visible)
                    self.err(f"unknown scenario '{bname}'", args[2].span,
                             hint=did_you_mean(bname, known) or
                             ("known scenarios: " + ", ".join(known) if known else
                              "import the file that defines it: import \"base.scn\""),
                             breaks=((name,),), presumes=(name,))  # a broken import may define it
            else:
                self.err("expected 'scenario NAME { ... }' or 'scenario NAME extends BASE { ... }'",
                         args[1].span, breaks=((name,),))
        block = st.block
        if block is None:
            self.err(f"scenario {name} needs a block: scenario {name} {{ ... }}", st.span)
            return
        if name in unit.drafts:
            self.err(f"scenario '{name}' is defined twice (first at {unit.drafts[name].span})", args[0].span)
            return
        span = st.span
        draft = base.copy(name, span, unit.path) if base is not None else Draft(name, span, unit.path)
        Drafter(self, draft, unit.path).apply(globals_ + self.expand(block.stmts, unit.path, top=False))
        unit.drafts[name] = draft
        unit.main = name
