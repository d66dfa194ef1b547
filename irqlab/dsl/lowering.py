"""Statements -> :class:`irqlab.ir.Scenario`, with every semantic check.

Lowering runs in two steps per scenario block:

1. *Drafting* reads the block's statements into a :class:`Draft` (fields by
   name with their spans), checking what one statement can tell on its own:
   known heads and fields (with a did-you-mean), the shape of each statement,
   units and literal values. ``extends`` starts from a copy of the base's
   draft, so a field given again overrides the base's and a device or
   mitigation given again is merged field by field.
2. *Building* fills defaults, checks what needs the whole scenario (required
   fields, level stacks, plugin parameters), canonicalizes dotted names, then
   resolves the scenario once (``irqlab.resolve``) to check every value and
   run the cross-checks (``checks.py``), and checks the sweep.

Errors never stop a pass: they go to one sink and are reported together,
sorted by place, each once.
"""

from __future__ import annotations

import difflib
import gc
import itertools
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Iterable, Iterator

from irqlab import ir
from irqlab.dsl.syntax import (Approx, Assign, Block, CheckStmt, Compare, ListLit, ParamStmt, Range, Stmt,
                               StrLit, WhereStmt, Within, decode, parse_statements, tree_statements,
                               with_tail)
from irqlab.errors import NO_SPAN, ErrorSink, ScenarioError, Span, collect, did_you_mean
from irqlab.ir import Expr, Name, Num, PluginUse, Quantity
from irqlab.resolve import (COST_SPEC, DEVICE_SPECS, MACHINE_SPECS, RUN_SPECS, Spec,
                            check_value, evaluate, expected, plugin_spec)

SCENARIO_HEADS = ("machine", "costs", "vcpu", "device", "mitigation", "run", "sweep", "expect", "include",
                  "remove", "at")
TOP_HEADS = ("scenario", "import", "include")
DEVICE_HEADS = ("gsi", "msi", "delivery", "vector", "trigger", "polarity", "dest", "arrival", "model",
                "serviced_by", "service", "lowers", "policy", "vfio", "work",
                "dest_mode", "delivery_mode", "work_on")
RUN_HEADS = ("duration", "replications", "seed", "max_events", "livelock_window", "trace", "histograms",
             "backend", "metric", "metrics", "series")
SWEEP_HEADS = ("grid", "zip", "concat", "random", "lhs", "derive", "replications", "where", "expect")
REMOVABLE = ("device", "mitigation", "sweep", "param", "metric", "expect")
LEVEL_RE = ir.LEVELS
LOWERS_POLICY = {"before_eoi": "lower_then_eoi", "after_eoi": "eoi_before_lower"}
DEFAULT_POLICY = "lower_then_eoi"
MAX_CHECK_POINTS = 20000

_INT = Spec("number", integer=True, store="int")
_POS_INT = Spec("number", integer=True, min=1, store="int")
_NAT = Spec("number", integer=True, min=0, store="int")
_WORD = Spec("str", store="raw")


# --------------------------------------------------------------------------- drafts


@dataclass
class Entry:
    """A field's value (Quantity/str/bool/int/Expr, or None after an error) and span."""

    value: Any
    span: Span


@dataclass
class PluginDraft:
    kind: str
    name: str
    span: Span
    cls: Any = None
    args: dict[str, Entry] = field(default_factory=dict)

    def copy(self) -> "PluginDraft":
        return PluginDraft(self.kind, self.name, self.span, self.cls, dict(self.args))


@dataclass
class LevelDraft:
    level: str
    span: Span
    name: Entry | None = None
    policy: PluginDraft | None = None

    def copy(self) -> "LevelDraft":
        return LevelDraft(self.level, self.span, self.name, self.policy.copy() if self.policy else None)


@dataclass
class VcpuDraft:
    key: Any  # int or "all"
    span: Span
    levels: dict[str, LevelDraft] = field(default_factory=dict)

    def copy(self) -> "VcpuDraft":
        return VcpuDraft(self.key, self.span, {k: v.copy() for k, v in self.levels.items()})


@dataclass
class DeviceDraft:
    name: str
    span: Span
    fields: dict[str, Entry] = field(default_factory=dict)
    plugins: dict[str, PluginDraft] = field(default_factory=dict)  # arrival, model, policy

    def copy(self) -> "DeviceDraft":
        return DeviceDraft(self.name, self.span, dict(self.fields),
                           {k: v.copy() for k, v in self.plugins.items()})


@dataclass
class Draft:
    name: str
    span: Span
    file: str
    params: dict[str, Entry] = field(default_factory=dict)
    machine: dict[str, Entry] = field(default_factory=dict)
    machine_span: Span | None = None
    costs: dict[str, Entry] = field(default_factory=dict)
    costs_span: Span | None = None
    vcpus: dict[Any, VcpuDraft] = field(default_factory=dict)
    devices: dict[str, DeviceDraft] = field(default_factory=dict)
    mitigations: dict[str, PluginDraft] = field(default_factory=dict)
    run: dict[str, Entry] = field(default_factory=dict)
    run_span: Span | None = None
    metrics: dict[str, PluginDraft] = field(default_factory=dict)
    series: Entry | None = None
    sweep: Stmt | None = None
    expect: tuple[ir.Expectation, ...] = ()  # a child's expect block replaces its base's
    actions: list[ir.Action] = field(default_factory=list)  # `at` statements (irqlab.dsl.routes)

    def copy(self, name: str, span: Span, file: str) -> "Draft":
        return Draft(name, span, file, dict(self.params), dict(self.machine), self.machine_span,
                     dict(self.costs), self.costs_span, {k: v.copy() for k, v in self.vcpus.items()},
                     {k: v.copy() for k, v in self.devices.items()},
                     {k: v.copy() for k, v in self.mitigations.items()}, dict(self.run), self.run_span,
                     {k: v.copy() for k, v in self.metrics.items()}, self.series, self.sweep, self.expect,
                     list(self.actions))


@dataclass
class FileUnit:
    """A loaded file: its scenarios (drafts and built IR) in order."""

    path: str
    text: str
    drafts: dict[str, Draft] = field(default_factory=dict)
    built: dict[str, ir.Scenario] = field(default_factory=dict)
    visible: dict[str, Draft] = field(default_factory=dict)  # imported scenarios by name
    main: str | None = None


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
            if e is None or _has_strings(e):
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


# --------------------------------------------------------------------------- drafting


class Drafter:
    """Reads one scenario block's statements into a draft."""

    def __init__(self, loader: Loader, draft: Draft, file: str) -> None:
        self.l = loader
        self.d = draft
        self.file = file
        self.params: set[str] = set(draft.params)

    def err(self, message: str, span: Span | None, hint: str | None = None, **parts) -> None:
        self.l.err(message, span, hint, **parts)

    # -- values

    def value(self, a: Any, spec: Spec, what: str) -> Any:
        """An argument as a field value (checked literal, word, or Expr); None after an error."""
        if isinstance(a, Num):
            return self.check(a.value, spec, what, a.span)
        if isinstance(a, StrLit):
            if spec.kind in ("str", "choice"):
                return self.check(a.value, spec, what, a.span)
            self.err(f"{what} takes {expected(spec)}, not a quoted string", a.span)
            return None
        if isinstance(a, ListLit):
            self.err(f"{what} takes one value; a list [...] belongs in a sweep", a.span)
            return None
        if isinstance(a, Name):
            if "." in a.name:
                self.l.dotted = True
                return a
            if a.name in self.params:
                return a
            if spec.kind in ("choice", "bool", "str"):
                return self.check(a.name, spec, what, a.span)
            hint = did_you_mean(a.name, self.params) or f"{what} takes {expected(spec)}; " \
                f"a name must be a parameter (param {a.name} = ...)"
            self.err(f"unknown name '{a.name}'", a.span, hint=hint,
                     presumes=(self.d.name, *a.name.split(".")))
            return None
        if isinstance(a, Expr):
            if _has_names(a) or _has_strings(a):
                if _has_strings(a):
                    self.err("a quoted string cannot be part of an expression", a.span)
                    return None
                if _has_dotted(a):
                    self.l.dotted = True
                return a
            try:
                v = evaluate(a, {})
            except ScenarioError:
                return a  # reported, with the TSC known, when the scenario is resolved
            return self.check(v, spec, what, a.span)
        self.err(f"{what}: unexpected value", getattr(a, "span", None))
        return None

    def check(self, v: Any, spec: Spec, what: str, span: Span) -> Any:
        base = None
        if spec.file and not span.file.startswith("<"):
            base = os.path.dirname(os.path.abspath(span.file))
        try:
            return check_value(v, spec, what, span, None, base)
        except ScenarioError as e:
            self.l.sink.extend(e)
            return None

    def one(self, st: Stmt, what: str | None = None, allow_none: bool = False) -> Any:
        """The one argument of ``head value`` (None after an error)."""
        what = what or st.head
        if st.tail is not None:
            self.err(f"{what} takes a value, not a block or '='", st.tail.span)
            return None
        if len(st.args) == 1:
            return st.args[0]
        if not st.args:
            if allow_none:
                return None
            self.err(f"{what} needs a value", st.head_span, hint=f"write '{st.head} VALUE'")
            return None
        extra = st.args[1]
        hint = "separate statements with a new line or ';'" if isinstance(extra, Name) else None
        self.err(f"{what} takes one value, not {len(st.args)}", extra.span, hint=hint)
        return None

    def field(self, table: dict, seen: dict, st: Stmt, spec: Spec, what: str, key: str | None = None,
              flag: bool = False) -> None:
        key = key or st.head
        if key in seen:
            self.err(f"{what} is given twice (first at {seen[key]})", st.head_span)
            return
        seen[key] = st.head_span
        a = self.one(st, what, allow_none=flag and spec.kind == "bool")
        if a is None:
            if flag and spec.kind == "bool" and not st.args and st.tail is None:
                table[key] = Entry(True, st.head_span)
            return
        v = self.value(a, spec, what)
        table[key] = Entry(v, a.span)  # None after an error: given, so not "missing"

    def block_of(self, st: Stmt, what: str) -> Block | None:
        if not isinstance(st.tail, Block):
            self.err(f"{what} needs a block: {what} {{ ... }}", st.span)
            return None
        return st.tail

    def unknown(self, st: Any, where: str, heads: Iterable[str]) -> None:
        if isinstance(st, ParamStmt):
            self.err(f"'param' belongs at the scenario level, not in {where}", st.span)
        elif isinstance(st, WhereStmt):
            self.err(f"'where' belongs in a sweep block, not in {where}", st.span)
        else:
            heads = tuple(heads)
            self.err(f"unknown {where} field '{st.head}'", st.head_span,
                     hint=did_you_mean(st.head, heads) or f"{where} fields: {', '.join(heads)}")

    # -- plugins

    def plugin(self, kind: str, st: Stmt, start: int, merge: PluginDraft | None = None,
               at: tuple[str, ...] = ()) -> PluginDraft | None:
        """``head NAME [param value]... [{ param value ... }]`` -> a plugin draft. ``at``:
        the path its parameters live under (``("device", "uhci", "arrival")``; for a
        mitigation, ``("mitigation",)`` and its name is added), which an unknown or
        broken plugin leaves undefined."""
        if len(st.args) <= start or not isinstance(st.args[start], Name) or "." in st.args[start].name:
            at = st.args[start].span if len(st.args) > start else st.head_span
            self.err(f"{st.head} needs a {kind} name", at, hint=_known_hint(kind))
            return None
        n = st.args[start]
        from irqlab.plugins.registry import registry

        cls = None
        try:
            cls = registry().get(kind, n.name, n.span)
        except ScenarioError as e:
            # what it leaves undefined: its parameters, under the name written and, for a
            # named slot (a mitigation), under the names it may have meant
            if at in (("mitigation",), ("metric",)):
                meant = difflib.get_close_matches(n.name, registry().names(kind), n=3, cutoff=0.6)
                parts = tuple((self.d.name, *at, x) for x in (n.name, *meant))
            else:
                parts = ((self.d.name, *at),)
            self.l.sink.extend(ScenarioError(diagnostics=[
                replace(d, breaks=parts) for d in e.diagnostics]))
        if merge is not None and merge.name == n.name:
            pd = merge.copy()
            pd.span = st.span
        else:
            pd = PluginDraft(kind, n.name, st.span, cls)
        seen: dict[str, Span] = {}
        inline = st.args[start + 1:]
        i = 0
        while i < len(inline):
            a = inline[i]
            if not isinstance(a, Name) or "." in a.name:
                hint = None
                if isinstance(a, ir.Binary) and isinstance(a.left, Name) and a.op in "-+":
                    hint = f"a value that starts with a sign needs parentheses: {a.left.name} ({a.op}...)"
                self.err(f"expected a parameter name of {kind} '{n.name}'", a.span, hint=hint)
                break
            if i + 1 >= len(inline):
                self.err(f"parameter '{a.name}' of {kind} '{n.name}' needs a value", a.span)
                break
            self.plugin_arg(pd, a.name, a.span, inline[i + 1], seen)
            i += 2
        if isinstance(st.tail, Block):
            for inner in st.tail.stmts:
                if not isinstance(inner, Stmt):
                    self.err(f"a {kind} block holds 'parameter value' lines", inner.span)
                    continue
                if inner.tail is not None or len(inner.args) != 1:
                    a = self.one(inner, f"parameter '{inner.head}'")
                    if a is None:
                        continue
                self.plugin_arg(pd, inner.head, inner.head_span, inner.args[0], seen)
        elif st.tail is not None:
            self.err(f"{st.head} takes a block of parameters, not '=' or 'in'", st.tail.span)
        return pd

    def plugin_arg(self, pd: PluginDraft, name: str, span: Span, a: Any, seen: dict) -> None:
        if name in seen:
            self.err(f"parameter '{name}' is given twice (first at {seen[name]})", span)
            return
        seen[name] = span
        if pd.cls is None:
            return
        p = pd.cls.param(name)
        if p is None:
            names = [q.name for q in pd.cls.params]
            self.err(f"{pd.kind} '{pd.name}' has no parameter '{name}'", span,
                     hint=did_you_mean(name, names) or
                     (f"its parameters: {', '.join(names)}" if names else "it takes no parameters"),
                     breaks=((self.d.name, pd.kind, pd.name),))
            return
        v = self.value(a, plugin_spec(p), name)
        pd.args[name] = Entry(v, a.span)  # None: its error is reported (not "needs parameter")

    # -- the scenario body

    def apply(self, stmts: list) -> None:
        for st in stmts:
            if isinstance(st, ParamStmt):
                self.params.add(st.name)
        seen_params: dict[str, Span] = {}
        seen_devices: dict[str, Span] = {}
        seen_mitigations: dict[str, Span] = {}
        seen_vcpus: dict[Any, Span] = {}
        seen_blocks: dict[str, Span] = {}
        for st in self.blamed(stmts):
            if isinstance(st, ParamStmt):
                self.param(st, seen_params)
                continue
            if isinstance(st, WhereStmt):
                self.err("'where' belongs in a sweep block", st.span)
                continue
            h = st.head
            if h in ("machine", "costs", "run"):
                if h in seen_blocks:
                    self.err(f"a second {h} block (the first is at {seen_blocks[h]})", st.head_span,
                             hint="put all its fields in one block")
                    continue
                seen_blocks[h] = st.head_span
                getattr(self, h)(st)
            elif h == "vcpu":
                self.vcpu(st, seen_vcpus)
            elif h == "device":
                self.device(st, seen_devices)
            elif h == "mitigation":
                self.mitigation(st, seen_mitigations)
            elif h == "sweep":
                if "sweep" in seen_blocks:
                    self.err(f"a second sweep block (the first is at {seen_blocks['sweep']})", st.head_span)
                    continue
                seen_blocks["sweep"] = st.head_span
                if self.block_of(st, "sweep") is not None:
                    if st.args:
                        self.err("sweep takes a block only: sweep { ... }", st.args[0].span)
                    self.d.sweep = st
            elif h == "expect":
                if "expect" in seen_blocks:
                    self.err(f"a second expect block (the first is at {seen_blocks['expect']})", st.head_span)
                    continue
                seen_blocks["expect"] = st.head_span
                found = self.l.expectations(st)
                if found is not None:
                    self.d.expect = found
            elif h == "remove":
                self.remove(st)
            elif h == "at":
                from irqlab.dsl.routes import lower_at

                since = len(self.l.sink.errors)
                action = lower_at(self, st)
                self.l.blame(since, (self.d.name, "action"))  # route metrics presume the actions
                if action is not None:
                    self.d.actions.append(action)
            elif h in ("import", "scenario"):
                self.err(f"'{h}' belongs at the top of the file, outside scenario blocks", st.head_span)
            else:
                self.err(f"unknown statement '{h}' in scenario {self.d.name}", st.head_span,
                         hint=did_you_mean(h, SCENARIO_HEADS + ("param",)) or
                         "a scenario holds machine, costs, vcpu, device, mitigation, run, sweep, "
                         "expect, param, include and remove statements")

    def blamed(self, stmts: list) -> Iterator[Any]:
        """``stmts`` one by one; the errors found while one is read leave what it defines
        undefined (:meth:`Loader.blame`)."""
        for st in stmts:
            since = len(self.l.sink.errors)
            yield st
            self.l.blame(since, (self.d.name, *_defines(st)))

    def param(self, st: ParamStmt, seen: dict) -> None:
        if st.name in seen:
            self.err(f"param '{st.name}' is defined twice (first at {seen[st.name]})", st.name_span)
            return
        seen[st.name] = st.name_span
        a = st.value
        if isinstance(a, Num):
            v: Any = a.value
        elif isinstance(a, StrLit):
            v = a.value
        elif isinstance(a, Name) and "." not in a.name and a.name not in self.params:
            v = a.name  # a word: a choice such as split, or on/off
        elif isinstance(a, Expr):
            if _has_strings(a):
                self.err("a quoted string cannot be part of an expression", a.span)
                return
            v = a
            if _has_dotted(a):
                self.l.dotted = True
            if not _has_names(a):
                try:
                    v = evaluate(a, {})
                except ScenarioError:
                    v = a
        else:
            self.err("a param takes a value or an expression", st.span)
            return
        self.d.params[st.name] = Entry(v, st.span)

    def machine(self, st: Stmt) -> None:
        b = self.block_of(st, "machine")
        if b is None:
            return
        if st.args:
            self.err("machine takes a block only: machine { ... }", st.args[0].span)
        self.d.machine_span = self.d.machine_span or st.span
        seen: dict[str, Span] = {}
        for inner in b.stmts:
            if isinstance(inner, Stmt) and inner.head in MACHINE_SPECS:
                self.field(self.d.machine, seen, inner, MACHINE_SPECS[inner.head], inner.head, flag=True)
            else:
                self.unknown(inner, "machine", MACHINE_SPECS)

    def costs(self, st: Stmt) -> None:
        b = self.block_of(st, "costs")
        if b is None:
            return
        if st.args:
            self.err("costs takes a block only: costs { ... }", st.args[0].span)
        self.d.costs_span = self.d.costs_span or st.span
        seen: dict[str, Span] = {}
        for inner in b.stmts:
            if isinstance(inner, Stmt) and inner.head in ir.COSTS:
                self.field(self.d.costs, seen, inner, COST_SPEC, f"cost {inner.head}")
            elif isinstance(inner, Stmt) and inner.head == "profile":
                self.cost_profile(inner, seen)
            else:
                self.unknown(inner, "costs", tuple(ir.COSTS) + ("profile",))

    def cost_profile(self, st: Stmt, seen: dict[str, Span]) -> None:
        """``profile NAME``: every cost the profile names, except those this block sets
        itself (before or after it)."""
        if len(st.args) != 1 or not isinstance(st.args[0], Name) or st.tail is not None:
            self.err("profile takes a name: profile bonzini2019_after", st.head_span,
                     hint=f"profiles: {', '.join(ir.COST_PROFILES)}")
            return
        name = st.args[0]
        profile = ir.COST_PROFILES.get(name.name)
        if profile is None:
            self.err(f"unknown cost profile '{name.name}'", name.span,
                     hint=did_you_mean(name.name, tuple(ir.COST_PROFILES))
                     or f"profiles: {', '.join(ir.COST_PROFILES)}")
            return
        if "profile" in seen:
            self.err(f"the cost profile is given twice (first at {seen['profile']})", st.head_span)
            return
        seen["profile"] = st.head_span
        for cost, q in profile.items():
            if cost not in seen:
                self.d.costs[cost] = Entry(q, st.span)

    def run(self, st: Stmt) -> None:
        b = self.block_of(st, "run")
        if b is None:
            return
        if st.args:
            self.err("run takes a block only: run { ... }", st.args[0].span)
        self.d.run_span = self.d.run_span or st.span
        seen: dict[str, Span] = {}
        for inner in b.stmts:
            if not isinstance(inner, Stmt):
                self.unknown(inner, "run", RUN_HEADS)
            elif inner.head in RUN_SPECS:
                self.field(self.d.run, seen, inner, RUN_SPECS[inner.head], inner.head, flag=True)
            elif inner.head == "metric":
                pd = self.plugin("metric", inner, 0, at=("metric",))
                if pd is not None:
                    if pd.name in seen:
                        self.err(f"metric '{pd.name}' is given twice", inner.args[0].span)
                    seen[pd.name] = inner.head_span
                    self.d.metrics[pd.name] = pd
            elif inner.head == "metrics":
                self.metrics(inner, seen)
            elif inner.head == "series":
                self.series(inner)
            else:
                self.unknown(inner, "run", RUN_HEADS)

    def metrics(self, st: Stmt, seen: dict) -> None:
        if len(st.args) != 1 or not isinstance(st.args[0], ListLit) or st.tail is not None:
            self.err("metrics takes a list of metric plugins: metrics [rates]", st.span)
            return
        from irqlab.plugins.registry import registry

        for item in st.args[0].items:
            if not isinstance(item, Name) or "." in item.name:
                self.err("expected a metric plugin name", item.span, hint=_known_hint("metric"))
                continue
            try:
                cls = registry().get("metric", item.name, item.span)
            except ScenarioError as e:
                self.l.sink.extend(e)
                continue
            if item.name in seen:
                self.err(f"metric '{item.name}' is given twice", item.span)
                continue
            seen[item.name] = item.span
            self.d.metrics[item.name] = PluginDraft("metric", item.name, item.span, cls)

    def series(self, st: Stmt) -> None:
        every: Any = None
        names: list[str] = []
        spans: list[tuple[str, Any]] = []
        if isinstance(st.tail, Block):
            if st.args:
                self.err("series takes either a block or 'every T fields [...]'", st.args[0].span)
            for inner in st.tail.stmts:
                if isinstance(inner, Stmt) and inner.head in ("every", "fields"):
                    a = self.one(inner, inner.head)
                    if a is not None:
                        spans.append((inner.head, a))
                else:
                    self.unknown(inner, "series", ("every", "fields"))
        else:
            args = list(st.args)
            while args:
                k = args.pop(0)
                if not isinstance(k, Name) or k.name not in ("every", "fields") or not args:
                    self.err("expected 'series every T fields [a, b]'", k.span)
                    return
                spans.append((k.name, args.pop(0)))
        for key, a in spans:
            if key == "every":
                every = self.value(a, Spec("time", min=1e-12), "series every")
            else:
                items = a.items if isinstance(a, ListLit) else [a]
                for it in items:
                    if not isinstance(it, Name):
                        self.err("series fields are names", it.span)
                    elif it.name not in ir.SERIES_FIELDS:
                        self.err(f"unknown series field '{it.name}'", it.span,
                                 hint=did_you_mean(it.name, ir.SERIES_FIELDS)
                                 or f"fields: {', '.join(ir.SERIES_FIELDS)}")
                    else:
                        names.append(it.name)
        kw: dict[str, Any] = {"fields": tuple(names), "span": st.span}
        if every is not None:
            kw["every"] = every
        self.d.series = Entry(ir.SeriesSpec(**kw), st.span)

    def vcpu(self, st: Stmt, seen: dict) -> None:
        if len(st.args) > 1:
            self.err("vcpu takes at most an index: vcpu 0 { ... } or vcpu all { ... }", st.args[1].span)
        if st.args:
            a = st.args[0]
            if isinstance(a, Name) and a.name == "all":
                key: Any = "all"
            else:
                key = self.value(a, _NAT, "vcpu index") if isinstance(a, Num) else None
                if key is None:
                    if not isinstance(a, Num):
                        self.err("a vcpu index is a number (or 'all')", a.span)
                    return
        else:
            key = sum(1 for k in self.d.vcpus if k != "all")
            while key in self.d.vcpus:
                key += 1
        if key in seen:
            self.err(f"vcpu {key} is given twice (first at {seen[key]})", st.head_span)
            return
        seen[key] = st.head_span
        b = self.block_of(st, "vcpu")
        if b is None:
            return
        v = self.d.vcpus.get(key)
        v = v if v is not None else VcpuDraft(key, st.span)
        v.span = st.span
        lseen: dict[str, Span] = {}
        for inner in b.stmts:
            if not isinstance(inner, Stmt) or inner.head not in ir.LEVELS:
                if isinstance(inner, Stmt):
                    self.err(f"unknown level '{inner.head}'", inner.head_span,
                             hint=did_you_mean(inner.head, ir.LEVELS) or "levels are L0 (KVM or bare metal), "
                             "L1 (a guest), L2 (a nested guest)")
                else:
                    self.unknown(inner, "vcpu", ir.LEVELS)
                continue
            self.level(v, inner, lseen)
        self.d.vcpus[key] = v

    def level(self, v: VcpuDraft, st: Stmt, seen: dict) -> None:
        lvl = st.head
        if lvl in seen:
            self.err(f"level {lvl} is given twice (first at {seen[lvl]})", st.head_span)
            return
        seen[lvl] = st.head_span
        ld = v.levels.get(lvl)
        ld = ld.copy() if ld is not None else LevelDraft(lvl, st.span)
        ld.span = st.span
        if len(st.args) > 1:
            self.err(f"{lvl} takes a name and a block: {lvl} linux {{ policy lower_then_eoi }}", st.args[1].span)
        if st.args:
            a = st.args[0]
            if isinstance(a, Name) and "." not in a.name:
                ld.name = Entry(a.name, a.span)
            else:
                self.err(f"the name of level {lvl} is a word such as linux or hyperv", a.span)
        if isinstance(st.tail, Block):
            pseen: dict[str, Span] = {}
            for inner in st.tail.stmts:
                if isinstance(inner, Stmt) and inner.head == "policy":
                    if "policy" in pseen:
                        self.err(f"policy is given twice (first at {pseen['policy']})", inner.head_span)
                        continue
                    pseen["policy"] = inner.head_span
                    pd = self.plugin("policy", inner, 0, ld.policy, at=("vcpu", str(v.key), lvl, "policy"))
                    if pd is not None:
                        ld.policy = pd
                else:
                    self.unknown(inner, f"level {lvl}", ("policy",))
        elif st.tail is not None:
            self.err(f"{lvl} takes a block: {lvl} {{ policy ... }}", st.tail.span)
        v.levels[lvl] = ld

    def device(self, st: Stmt, seen: dict) -> None:
        if not st.args or not isinstance(st.args[0], Name) or "." in st.args[0].name:
            self.err("a device needs a name: device NAME { ... }", st.args[0].span if st.args else st.head_span)
            return
        name = st.args[0].name
        if len(st.args) > 1:
            self.err("device takes a name and a block: device NAME { ... }", st.args[1].span)
        if name in seen:
            self.err(f"device '{name}' is defined twice (first at {seen[name]})", st.args[0].span)
            return
        seen[name] = st.args[0].span
        b = self.block_of(st, f"device {name}")
        if b is None:
            return
        old = self.d.devices.get(name)
        dd = old.copy() if old is not None else DeviceDraft(name, st.span)
        dd.span = st.span
        fseen: dict[str, Span] = {}
        for inner in b.stmts:
            if not isinstance(inner, Stmt) or inner.head not in DEVICE_HEADS:
                self.unknown(inner, "device", DEVICE_HEADS)
                continue
            h = inner.head
            if h == "msi":
                if inner.args or inner.tail is not None:
                    self.err("msi takes no value", (inner.args[0] if inner.args else inner.tail).span)
                if "delivery" in fseen:
                    self.err(f"delivery is given twice (first at {fseen['delivery']})", inner.head_span)
                    continue
                fseen["delivery"] = inner.head_span
                if "gsi" in fseen:
                    self.err("an MSI has no gsi", fseen["gsi"], hint="remove 'gsi', or 'msi' for an IOAPIC pin")
                dd.fields["delivery"] = Entry("msi", inner.head_span)
                dd.fields.pop("gsi", None)
            elif h == "gsi":
                self.field(dd.fields, fseen, inner, DEVICE_SPECS["gsi"], "gsi")
                if "delivery" not in fseen:
                    dd.fields["delivery"] = Entry("ioapic", inner.head_span)
                elif dd.fields.get("delivery") and dd.fields["delivery"].value == "msi":
                    self.err("an MSI has no gsi", inner.head_span,
                             hint="remove 'gsi', or 'msi' for an IOAPIC pin")
            elif h == "delivery":
                self.field(dd.fields, fseen, inner, DEVICE_SPECS["delivery"], "delivery")
            elif h == "service" and inner.args and isinstance(inner.args[0], Name) and "." not in inner.args[0].name:
                if "service" in fseen:  # a distribution: service exponential mean 20us
                    self.err(f"the service time is given twice (first at {fseen['service']})", inner.head_span)
                    continue
                fseen["service"] = inner.head_span
                pd = self.plugin("service", inner, 0, dd.plugins.get("service"))
                if pd is not None:
                    dd.plugins["service"] = pd
                    dd.fields.pop("service", None)
            elif h in ("arrival", "model", "policy"):
                if h in fseen:
                    self.err(f"{h} is given twice (first at {fseen[h]})", inner.head_span)
                    continue
                fseen[h] = inner.head_span
                kind = {"arrival": "arrival", "model": "device", "policy": "policy"}[h]
                pd = self.plugin(kind, inner, 0, dd.plugins.get(h), at=("device", dd.name, h))
                if pd is not None:
                    dd.plugins[h] = pd
            elif h == "serviced_by":
                self.serviced_by(dd, inner, fseen)
            elif h == "lowers":
                self.field(dd.fields, fseen, inner, Spec("choice", choices=ir.LOWERS, store="raw"), "lowers")
            else:
                self.field(dd.fields, fseen, inner, DEVICE_SPECS[h], h, flag=h == "vfio")
        lowers = dd.fields.get("lowers")
        chooses = lowers is not None and lowers.value in LOWERS_POLICY
        if chooses and "policy" in fseen and "lowers" in fseen:
            self.err("'lowers' and 'policy' both choose this device's handler", fseen["lowers"],
                     hint=f"lowers {lowers.value} means policy {LOWERS_POLICY[lowers.value]}; keep one of them")
        elif "policy" in fseen and lowers is not None and "lowers" not in fseen and lowers.value != "never":
            del dd.fields["lowers"]  # this block's policy replaces the base's 'lowers'
        elif chooses and "lowers" in fseen:
            dd.plugins.pop("policy", None)  # this block's 'lowers' replaces the base's policy
        self.d.devices[name] = dd

    def serviced_by(self, dd: DeviceDraft, st: Stmt, seen: dict) -> None:
        if "serviced_by" in seen:
            self.err(f"serviced_by is given twice (first at {seen['serviced_by']})", st.head_span)
            return
        seen["serviced_by"] = st.head_span
        args = st.args
        if st.tail is not None:
            self.err("serviced_by takes 'LEVEL after TIME'", st.tail.span)
        if not args:
            self.err("serviced_by needs a level: serviced_by L2 after 20us", st.head_span)
            return
        lv = self.value(args[0], DEVICE_SPECS["serviced_by"], "serviced_by")
        dd.fields["serviced_by"] = Entry(lv, args[0].span)
        if len(args) == 1:
            return
        if not (isinstance(args[1], Name) and args[1].name == "after") or len(args) != 3:
            self.err("expected 'serviced_by LEVEL after TIME'", args[1].span,
                     hint="separate statements with a new line or ';'" if len(args) == 2 else None)
            return
        if "service" in seen:
            self.err(f"the service time is given twice (first at {seen['service']})", args[2].span)
            return
        seen["service"] = args[2].span
        t = self.value(args[2], DEVICE_SPECS["service"], "service time")
        dd.fields["service"] = Entry(t, args[2].span)
        dd.plugins.pop("service", None)  # a constant replaces an inherited distribution

    def mitigation(self, st: Stmt, seen: dict) -> None:
        pd = self.plugin("mitigation", st, 0, self.d.mitigations.get(
            st.args[0].name if st.args and isinstance(st.args[0], Name) else ""), at=("mitigation",))
        if pd is None:
            return
        if pd.name in seen:
            self.err(f"mitigation '{pd.name}' is given twice (first at {seen[pd.name]})", st.args[0].span)
            return
        seen[pd.name] = st.args[0].span
        self.d.mitigations[pd.name] = pd

    def remove(self, st: Stmt) -> None:
        a = st.args
        if not a or not isinstance(a[0], Name) or a[0].name not in REMOVABLE:
            self.err("expected 'remove device NAME', 'remove mitigation NAME', 'remove metric NAME', "
                     "'remove param NAME', 'remove sweep' or 'remove expect'", a[0].span if a else st.head_span)
            return
        what = a[0].name
        if what == "expect":
            if len(a) != 1:
                self.err("remove expect takes nothing more", a[1].span)
            elif not self.d.expect:
                self.err("there are no expectations to remove", st.span)
            self.d.expect = ()
            return
        if what == "sweep":
            if len(a) != 1:
                self.err("remove sweep takes nothing more", a[1].span)
            elif self.d.sweep is None:
                self.err("there is no sweep to remove", st.span)
            self.d.sweep = None
            return
        if len(a) != 2 or not isinstance(a[1], Name):
            self.err(f"expected 'remove {what} NAME'", st.span)
            return
        name = a[1].name
        table = {"device": self.d.devices, "mitigation": self.d.mitigations, "param": self.d.params,
                 "metric": self.d.metrics}[what]
        if name not in table:
            self.err(f"there is no {what} '{name}' to remove", a[1].span,
                     hint=did_you_mean(name, table) or (f"{what}s: {', '.join(table)}" if table else None))
            return
        del table[name]


# --------------------------------------------------------------------------- building


class Builder:
    """A draft -> the scenario's IR, with defaults and the whole-scenario checks."""

    def __init__(self, loader: Loader, d: Draft, text: str) -> None:
        self.l = loader
        self.d = d
        self.text = text

    def err(self, message: str, span: Span | None, hint: str | None = None, **parts) -> None:
        self.l.err(message, span, hint, **parts)

    def build(self) -> ir.Scenario:
        d = self.d
        machine = self.machine()
        costs = self.costs()
        vcpus = self.vcpus(machine)
        if not isinstance(machine.vcpus, int) or "vcpus" not in d.machine:
            machine = replace(machine, vcpus=len(vcpus) if vcpus else 1)
        devices = tuple(self.device(dd) for dd in d.devices.values())
        mitigations = tuple(self.use(p) for p in d.mitigations.values())
        run = self.run()
        params = tuple(ir.ParamDef(n, e.value, e.span) for n, e in d.params.items())
        s = ir.Scenario(d.name, machine=machine, costs=costs, vcpus=vcpus, devices=devices,
                        mitigations=mitigations, run=run, params=params, span=d.span,
                        source=self.text, expect=d.expect, actions=tuple(d.actions))
        from irqlab import resolve as R

        infos = R._raw_infos(s)
        index: dict = {}
        if self.l.dotted or d.sweep is not None:
            index = R._suffix_index(infos)
        if self.l.dotted:
            s = _map_exprs(s, lambda e: self.canon_names(e, infos, index))
            infos = R._raw_infos(s)
        if d.sweep is not None:
            s = replace(s, sweep=SweepBuilder(self, s, infos, index).build(d.sweep))
        errors_before = len(self.l.sink.errors)
        resolved = None
        try:
            resolved = R._resolve(replace(s, sweep=None), infos=infos, checked=True)
        except ScenarioError as e:
            self.l.sink.extend(e.in_scenario(d.name, presumed=True))
        if resolved is not None and s.sweep is not None and len(self.l.sink.errors) == errors_before:
            SweepChecker(self, s, infos).check(s.sweep)
        if resolved is not None and (s.expect or (s.sweep is not None and s.sweep.expect)):
            from irqlab.expect import check_expectations

            check_expectations(s, self.l.sink)
        return s

    # -- names in expressions

    def canon_names(self, e: Expr, infos: dict, index: dict) -> Expr:
        from irqlab import resolve as R

        if isinstance(e, Name) and "." in e.name and e.name not in infos:
            try:
                return replace(e, name=R._canonical(infos, e.name, e.span, index))
            except ScenarioError as ex:
                self.l.sink.extend(ex.in_scenario(self.d.name))
        return e

    # -- sections

    def machine(self) -> ir.Machine:
        d = self.d
        kw = {k: e.value for k, e in d.machine.items() if e.value is not None}
        return ir.Machine(**kw, span=d.machine_span or d.span,
                          field_spans=tuple((k, e.span) for k, e in d.machine.items()))

    def costs(self) -> tuple[ir.Arg, ...]:
        d = self.d
        out = []
        default_span = d.costs_span or d.span
        for name, (q, _) in ir.COSTS.items():
            e = d.costs.get(name)
            out.append(ir.Arg(name, e.value, e.span) if e is not None and e.value is not None
                       else ir.Arg(name, q, default_span))
        return tuple(out)

    def vcpus(self, machine: ir.Machine) -> tuple[ir.Vcpu, ...]:
        d = self.d
        if not d.vcpus:
            self.err(f"scenario {d.name} has no vcpu", d.span,
                     hint="add e.g. 'vcpu 0 { L1 linux { policy lower_then_eoi } }'",
                     presumes=(d.name, "vcpu"))
            return ()
        if "all" in d.vcpus:
            if len(d.vcpus) > 1:
                other = next(v for k, v in d.vcpus.items() if k != "all")
                self.err("'vcpu all' cannot be combined with numbered vcpu blocks", other.span)
            n = machine.vcpus if isinstance(machine.vcpus, int) else 1
            levels = self.levels(d.vcpus["all"])
            return tuple(ir.Vcpu(i, levels, d.vcpus["all"].span) for i in range(n))
        keys = sorted(d.vcpus)
        for want, k in enumerate(keys):
            if k != want:
                self.err(f"vcpu {k}: vCPUs are numbered from 0 without gaps (vcpu {want} is missing)",
                         d.vcpus[k].span)
                break
        if "vcpus" in d.machine and isinstance(machine.vcpus, int) and machine.vcpus != len(keys):
            self.err(f"machine.vcpus is {machine.vcpus} but {len(keys)} vcpu block(s) are given",
                     d.machine["vcpus"].span, hint="write 'vcpu all { ... }' to give every vCPU the same levels")
        return tuple(ir.Vcpu(k, self.levels(d.vcpus[k]), d.vcpus[k].span) for k in keys)

    def levels(self, v: VcpuDraft) -> tuple[ir.LevelSpec, ...]:
        given = [lv for lv in ir.LEVELS if lv in v.levels]
        if not given:
            self.err(f"vcpu {v.key} declares no level", v.span,
                     hint="write 'L0 linux { ... }' (bare metal), 'L1 ...' (a guest) or L1 and L2 (nested)")
            return ()
        names = list(given)
        if "L1" in names and "L0" not in names:
            names.insert(0, "L0")
        if "L2" in names and "L1" not in names:
            self.err("level L2 needs L1 (the guest hypervisor that runs it)", v.levels["L2"].span)
            names.remove("L2")
            if not names:
                return ()
        receiving = "L0" if names[-1] == "L0" else "L1"
        out = []
        for lv in names:
            ld = v.levels.get(lv)
            if ld is None:
                out.append(ir.LevelSpec(lv, "", None, v.span))
                continue
            pol = self.use(ld.policy) if ld.policy is not None else None
            if pol is not None and lv != receiving:
                self.err(f"only the receiving level ({receiving} here) runs a handler policy; "
                         f"{lv} cannot have one", ld.policy.span,
                         hint="interrupts arrive at L1's virtual LAPIC; L2's driver services devices "
                         "(serviced_by L2)" if lv == "L2" else "with a guest, interrupts arrive at L1")
                pol = None
            if lv == receiving and pol is None:
                pol = self.default_policy(DEFAULT_POLICY, ld.span)
            out.append(ir.LevelSpec(lv, ld.name.value if ld.name else "", pol, ld.span))
        return tuple(out)

    def default_policy(self, name: str, span: Span) -> PluginUse:
        from irqlab.plugins.registry import registry

        try:
            cls = registry().get("policy", name, span)
        except ScenarioError as e:
            self.l.sink.extend(e)
            return PluginUse("policy", name, (), span)
        return self.use(PluginDraft("policy", name, span, cls))

    def use(self, p: PluginDraft) -> PluginUse:
        """A plugin use with every declared parameter (defaults filled, in order)."""
        if p.cls is None:
            return PluginUse(p.kind, p.name, tuple(ir.Arg(k, e.value, e.span) for k, e in p.args.items()
                                                   if e.value is not None), p.span)
        args = []
        for prm in p.cls.params:
            e = p.args.get(prm.name)
            if e is not None and e.value is not None:
                args.append(ir.Arg(prm.name, e.value, e.span))
                continue
            if e is not None:  # its error is already reported
                args.append(ir.Arg(prm.name, _placeholder(prm) if prm.required else
                                   _default_value(prm, self.d, p.span), p.span))
                continue
            if prm.required:
                self.err(f"{p.kind} '{p.name}' needs parameter '{prm.name}'", p.span,
                         hint=f"{prm.name}: {prm.doc}" if prm.doc else None,
                         presumes=(self.d.name, p.kind, p.name, prm.name))
                args.append(ir.Arg(prm.name, _placeholder(prm), p.span))
                continue
            args.append(ir.Arg(prm.name, _default_value(prm, self.d, p.span), p.span))
        return PluginUse(p.kind, p.name, tuple(args), p.span)

    def device(self, dd: DeviceDraft) -> ir.Device:
        f = dd.fields
        kw: dict[str, Any] = {}
        for k in ("vector", "delivery", "gsi", "trigger", "polarity", "dest", "serviced_by", "service", "vfio",
                  "work", "dest_mode", "delivery_mode", "work_on"):
            e = f.get(k)
            if e is not None and e.value is not None:
                kw[k] = e.value
        missing = []
        if "vector" not in f:
            missing.append("vector (e.g. vector 0x50)")
        if "delivery" not in f:
            missing.append("gsi N or msi")
        if "arrival" not in dd.plugins:
            missing.append("arrival (e.g. arrival once at 0)")
        if "serviced_by" not in f:
            missing.append("serviced_by (e.g. serviced_by L1 after 2us)")
        elif "service" not in f and "service" not in dd.plugins:
            missing.append("the service time (serviced_by LEVEL after TIME)")
        if missing:
            self.err(f"device {dd.name} is missing " + "; ".join(missing), dd.span,
                     breaks=((self.d.name, "device", dd.name),),
                     presumes=(self.d.name, "device", dd.name))
        if kw.get("delivery") == "msi":
            kw["gsi"] = None
            if "polarity" in f:
                self.err("polarity applies to IOAPIC pins, not MSIs", f["polarity"].span)
        lowers = f.get("lowers")
        policy = None
        if "policy" in dd.plugins:
            policy = self.use(dd.plugins["policy"])
        if lowers is not None and lowers.value in LOWERS_POLICY:
            policy = self.default_policy(LOWERS_POLICY[lowers.value], lowers.span)
        if lowers is not None and lowers.value == "never":
            kw["lowers_line"] = False
        arrival = self.use(dd.plugins["arrival"]) if "arrival" in dd.plugins else PluginUse("arrival", "once")
        model = self.use(dd.plugins["model"]) if "model" in dd.plugins else \
            self.default_model(dd.span)
        spans = [(k, e.span) for k, e in f.items()]
        if lowers is not None:
            spans.append(("lowers_line", lowers.span))
        if "service" in dd.plugins:
            kw["service_dist"] = self.use(dd.plugins["service"])
        return ir.Device(dd.name, **kw, arrival=arrival, model=model, policy=policy, span=dd.span,
                         field_spans=tuple(spans))

    def default_model(self, span: Span) -> PluginUse:
        from irqlab.plugins.registry import registry

        try:
            cls = registry().get("device", "generic", span)
        except ScenarioError:
            return PluginUse("device", "generic", (), span)
        return self.use(PluginDraft("device", "generic", span, cls))

    def run(self) -> ir.RunSpec:
        d = self.d
        kw = {k: e.value for k, e in d.run.items() if e.value is not None}
        if "backend" in kw and isinstance(kw["backend"], str):
            self.check_backend(kw["backend"], d.run["backend"].span)
        metrics = tuple(self.use(p) for p in d.metrics.values())
        series = d.series.value if d.series is not None else None
        return ir.RunSpec(**kw, metrics=metrics, series=series, span=d.run_span or d.span,
                          field_spans=tuple((k, e.span) for k, e in d.run.items()))

    def check_backend(self, name: str, span: Span) -> None:
        from irqlab.plugins.registry import registry

        known = set(registry().names("backend")) | {"numpy"}
        if name not in known:
            self.err(f"unknown backend '{name}'", span,
                     hint=did_you_mean(name, known) or f"backends: {', '.join(sorted(known))}")


def _defines(st: Any) -> tuple[str, ...]:
    """The part of a scenario a body statement defines (``("device", "nic")``), as a path
    under the scenario; ``()``: it could be anything (an unknown statement)."""
    if isinstance(st, ParamStmt):
        return ("param", st.name)
    if not isinstance(st, Stmt):
        return ("sweep",)
    name = st.args[0].name if st.args and isinstance(st.args[0], Name) else None
    if st.head in ("machine", "costs", "run", "sweep"):
        return (st.head,)
    if st.head in ("device", "mitigation") and name:
        return (st.head, name)
    if st.head == "vcpu":
        return ("vcpu",)
    return ()


def _default_value(p: Any, d: Draft, span: Span = NO_SPAN) -> Any:
    """A declared default as the IR holds it. A ``costs.<name>`` default stays a
    reference to that cost (evaluated by resolve), so that sweeping the cost
    moves every parameter that defaults to it."""
    v = p.default
    if isinstance(v, str) and v.startswith("costs.") and p.type == "time":
        return Name(span=span, name=v) if v[6:] in ir.COSTS else Quantity(0.0, "s")
    if p.type == "time":
        return v if isinstance(v, Quantity) else Quantity(float(v), "s")
    if p.type == "frequency":
        return v if isinstance(v, Quantity) else Quantity(float(v), "Hz")
    if p.type in ("int", "float"):
        return v if isinstance(v, Quantity) else Quantity(float(v))
    if p.type == "bool":
        return bool(v)
    return str(v)


def _placeholder(p: Any) -> Any:
    return {"time": Quantity(0.0, "s"), "frequency": Quantity(1.0, "Hz"), "int": Quantity(1.0),
            "float": Quantity(0.0), "bool": False}.get(p.type, p.choices[0] if p.choices else "")


def _known_hint(kind: str) -> str | None:
    from irqlab.plugins.registry import registry

    names = registry().names(kind)
    return f"{kind}s: {', '.join(names)}" if names else None


def _any_leaf(e: Any, pred: Any) -> bool:
    """True if ``pred`` holds for some leaf (name, number, string) of expression ``e``."""
    if isinstance(e, ir.Binary):
        return _any_leaf(e.left, pred) or _any_leaf(e.right, pred)
    if isinstance(e, ir.Unary):
        return _any_leaf(e.operand, pred)
    if isinstance(e, ir.Call):
        return any(_any_leaf(a, pred) for a in e.args)
    if isinstance(e, ir.Within):
        return any(_any_leaf(a, pred) for a in (e.value, e.tolerance, e.target))
    return pred(e)


def _has_names(e: Any) -> bool:
    return _any_leaf(e, lambda x: isinstance(x, Name))


def _has_dotted(e: Any) -> bool:
    return _any_leaf(e, lambda x: isinstance(x, Name) and "." in x.name)


def _has_strings(e: Any) -> bool:
    return _any_leaf(e, lambda x: isinstance(x, StrLit))


def _map_exprs(obj: Any, fn: Any) -> Any:
    """``obj`` with ``fn`` applied to every Name inside every Expr (dataclasses rebuilt
    only where something changed)."""
    if isinstance(obj, Expr):
        return _map_expr(obj, fn)
    if isinstance(obj, tuple):
        new = tuple(_map_exprs(x, fn) for x in obj)
        return obj if all(a is b for a, b in zip(new, obj)) else new
    if is_dataclass(obj) and not isinstance(obj, (Quantity, type)) and not isinstance(obj, Span):
        changes = {}
        for f in fields(obj):
            if f.name in ("span", "source", "field_spans"):
                continue
            v = getattr(obj, f.name)
            nv = _map_exprs(v, fn)
            if nv is not v:
                changes[f.name] = nv
        return replace(obj, **changes) if changes else obj
    return obj


def _map_expr(e: Expr, fn: Any) -> Expr:
    if isinstance(e, Name):
        return fn(e)
    if isinstance(e, ir.Binary):
        a, b = _map_expr(e.left, fn), _map_expr(e.right, fn)
        return e if a is e.left and b is e.right else replace(e, left=a, right=b)
    if isinstance(e, ir.Unary):
        a = _map_expr(e.operand, fn)
        return e if a is e.operand else replace(e, operand=a)
    if isinstance(e, ir.Call):
        args = tuple(_map_expr(a, fn) for a in e.args)
        return e if all(x is y for x, y in zip(args, e.args)) else replace(e, args=args)
    if isinstance(e, ir.Within):
        v, t, g = (_map_expr(x, fn) for x in (e.value, e.tolerance, e.target))
        same = v is e.value and t is e.tolerance and g is e.target
        return e if same else replace(e, value=v, tolerance=t, target=g)
    return e


# --------------------------------------------------------------------------- sweeps


class SweepBuilder:
    """A sweep block -> :class:`irqlab.ir.Sweep` (paths canonical, values checked)."""

    def __init__(self, b: Builder, s: ir.Scenario, infos: dict, index: dict) -> None:
        self.b = b
        self.s = s
        self.infos = infos
        self.index = index
        self.params = {p.name for p in s.params}
        self._full: dict | None = None

    def err(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.b.err(message, span, hint)

    def path(self, text: str, span: Span) -> str | None:
        from irqlab import resolve as R

        try:
            return R._canonical(self.infos, text, span, self.index)
        except ScenarioError as e:
            self.b.l.sink.extend(e.in_scenario(self.b.d.name))
            return None

    def spec(self, path: str) -> Spec:
        info = self.infos[path]
        if path.startswith("param."):
            from irqlab import resolve as R

            if self._full is None:
                self._full = R.paths(self.s)
            return self._full[path].spec or Spec("number")
        return info.spec or Spec("number")

    def build(self, st: Stmt) -> ir.Sweep | None:
        block = st.tail
        assert isinstance(block, Block)
        items: list = []
        constraints: list = []
        derived: list = []
        replications = None
        rseen: Span | None = None
        expect: tuple[ir.Expectation, ...] = ()
        eseen: Span | None = None
        for inner in block.stmts:
            if isinstance(inner, Stmt) and inner.head == "expect":
                if eseen is not None:
                    self.err(f"a second expect block (the first is at {eseen})", inner.head_span)
                    continue
                eseen = inner.head_span
                expect = self.b.l.expectations(inner) or ()
            elif isinstance(inner, WhereStmt):
                constraints.append(self.expr(inner.expr))
            elif isinstance(inner, ParamStmt):
                self.err("'param' belongs at the scenario level, not in a sweep", inner.span)
            elif inner.head == "derive":
                dv = self.derive(inner)
                if dv is not None:
                    derived.append(dv)
            elif inner.head == "replications" and inner.tail is None:
                if rseen is not None:
                    self.err(f"replications is given twice (first at {rseen})", inner.head_span)
                    continue
                rseen = inner.head_span
                a = self.b.l  # noqa: F841 - keep the loader alive for the error sink
                one = Drafter(self.b.l, self.b.d, self.b.d.file).one(inner, "replications")
                if one is not None:
                    v = Drafter(self.b.l, self.b.d, self.b.d.file).value(one, _POS_INT, "replications")
                    if isinstance(v, int):
                        replications = v
                    elif v is not None:
                        self.err("sweep replications must be a number", one.span)
            else:
                node = self.node(inner, "sweep")
                if node is not None:
                    items.append(node)
        root: Any = None
        if len(items) == 1 and not isinstance(items[0], ir.Axis):
            root = items[0]
        elif items:
            root = ir.Grid(span=block.span, items=tuple(items))
        if root is None and (constraints or derived):
            self.err("this sweep has constraints or derived values but no axes", st.head_span)
        self.dup_paths(root, derived)
        return ir.Sweep(root, tuple(c for c in constraints if c is not None), tuple(derived),
                        replications, st.span, expect)

    def dup_paths(self, root: Any, derived: list) -> None:
        def walk(node: Any, seen: dict) -> None:
            if isinstance(node, ir.Axis):
                if node.path in seen:
                    self.err(f"'{node.path}' is swept twice in one point (first at {seen[node.path]})",
                             node.span, hint="use concat for alternatives, or one axis per path")
                seen[node.path] = node.span
            elif isinstance(node, ir.Sample):
                for dm in node.dims:
                    if dm.path in seen:
                        self.err(f"'{dm.path}' is swept twice (first at {seen[dm.path]})", dm.span)
                    seen[dm.path] = dm.span
            elif isinstance(node, ir.Concat):
                for it in node.items:
                    walk(it, dict(seen))
            elif isinstance(node, (ir.Grid, ir.Zip)):
                for it in node.items:
                    walk(it, seen)

        seen: dict[str, Span] = {}
        walk(root, seen)
        for dv in derived:
            if dv.path in seen:
                self.err(f"'{dv.path}' is both swept and derived (swept at {seen[dv.path]})", dv.span)

    def expr(self, e: Any) -> Any:
        if isinstance(e, (StrLit, ListLit)) or _has_strings(e):
            self.err("a constraint is an expression such as 'delay * threshold < 1s'", e.span)
            return None
        return _map_expr(e, self.name) if isinstance(e, Expr) else e

    def name(self, n: Name) -> Name:
        """A name in a sweep expression: a param, a path (shorthands allowed) or a word."""
        if "." not in n.name and n.name in self.params:
            return n
        if n.name in self.infos:
            return n
        from irqlab import resolve as R

        cands = self.index.get(n.name, [])
        if "." in n.name or len(cands) == 1:
            try:
                return replace(n, name=R._canonical(self.infos, n.name, n.span, self.index))
            except ScenarioError as ex:
                self.b.l.sink.extend(ex.in_scenario(self.b.d.name))
        return n

    def derive(self, st: Stmt) -> ir.Derived | None:
        if len(st.args) != 1 or not isinstance(st.args[0], Name) or not isinstance(st.tail, Assign):
            self.err("expected 'derive PATH = expression'", st.span)
            return None
        path = self.path(st.args[0].name, st.args[0].span)
        val = st.tail.value
        if path is None:
            return None
        if isinstance(val, ListLit):
            self.err("a derived value is one expression, not a list", val.span)
            return None
        if isinstance(val, Num):
            e: Any = val
        else:
            e = self.expr(val)
        if e is None:
            return None
        return ir.Derived(path, e, st.span)

    def node(self, st: Any, where: str) -> Any:
        if isinstance(st, (WhereStmt, ParamStmt)):
            self.err(f"'{'where' if isinstance(st, WhereStmt) else 'param'}' cannot be inside {where}",
                     st.span)
            return None
        h = st.head
        if h in ("grid", "zip", "concat"):
            if st.args:
                self.err(f"{h} takes a block only: {h} {{ ... }}", st.args[0].span)
            if not isinstance(st.tail, Block):
                self.err(f"{h} needs a block: {h} {{ ... }}", st.span)
                return None
            if not st.tail.stmts:
                self.err(f"an empty {h}", st.head_span)
                return None
            items = [x for x in (self.node(i, h) for i in st.tail.stmts) if x is not None]
            if not items:
                return None
            if h == "concat":
                items = [ir.Grid(span=i.span, items=(i,)) if isinstance(i, ir.Axis) else i for i in items]
                return ir.Concat(span=st.span, items=tuple(items))
            cls = ir.Grid if h == "grid" else ir.Zip
            if h == "zip":
                sizes = [len(i.values) if isinstance(i, ir.Axis) else None for i in items]
                known = [n for n in sizes if n is not None]
                if known and len(set(known)) > 1:
                    self.err(f"zipped axes have different lengths ({', '.join(map(str, known))})", st.head_span,
                             hint="every axis of a zip needs the same number of values")
            return cls(span=st.span, items=tuple(items))
        if h in ("random", "lhs"):
            return self.sample(st)
        if isinstance(st.tail, Assign):
            return self.axis(st)
        if isinstance(st.tail, Within):
            self.err(f"a sampled dimension '{h} in ...' belongs in a random or lhs block", st.span)
            return None
        if h in SWEEP_HEADS:
            self.err(f"'{h}' cannot be inside {where}" if where != "sweep" else f"'{h}' needs more: see the docs",
                     st.head_span)
            return None
        self.err(f"expected an axis 'PATH = [values]' or grid, zip, concat, random, lhs; found '{h}'",
                 st.head_span, hint=did_you_mean(h, SWEEP_HEADS))
        return None

    def values(self, items: list, path: str, span: Span) -> tuple:
        spec = self.spec(path)
        out = []
        d = Drafter(self.b.l, self.b.d, self.b.d.file)
        d.params = set(self.params)
        for it in items:
            if isinstance(it, Name) and "." not in it.name and it.name not in self.params and \
                    spec.kind not in ("choice", "bool", "str"):
                v = d.value(it, spec, path)
            elif isinstance(it, Expr) and not isinstance(it, (Num, Name)) and _has_names(it):
                v = _map_expr(it, self.name)
            else:
                v = d.value(it, spec, path)
                if isinstance(v, Expr):
                    v = _map_expr(v, self.name)
            if v is None:
                continue
            if isinstance(v, int) and not isinstance(v, bool):
                v = Quantity(float(v))
            out.append(v)
        return tuple(out)

    def axis(self, st: Stmt) -> ir.Axis | None:
        if st.args:
            self.err("an axis is 'PATH = [values]'", st.args[0].span)
            return None
        path = self.path(st.head, st.head_span)
        val = st.tail.value
        if not isinstance(val, ListLit):
            self.err(f"an axis takes a list of values: {st.head} = [a, b, c]", val.span)
            return None
        if path is None:
            return None
        if not val.items:
            self.err(f"axis '{st.head}' has no values", val.span)
            return None
        return ir.Axis(path, self.values(val.items, path, val.span), st.span)

    def sample(self, st: Stmt) -> ir.Sample | None:
        h = st.head
        d = Drafter(self.b.l, self.b.d, self.b.d.file)
        args = list(st.args)
        n = 1
        seed = 0
        if not args:
            self.err(f"{h} needs a number of points: {h} 20 {{ ... }}", st.head_span)
            return None
        v = d.value(args.pop(0), Spec("number", integer=True, min=1, max=10**6, store="int"), f"{h} points")
        n = v if isinstance(v, int) else n
        while args:
            k = args.pop(0)
            if not (isinstance(k, Name) and k.name == "seed") or not args:
                self.err(f"expected '{h} N seed S {{ ... }}'", k.span)
                break
            sv = d.value(args.pop(0), _NAT, "seed")
            seed = sv if isinstance(sv, int) else seed
        if not isinstance(st.tail, Block):
            self.err(f"{h} needs a block of dimensions: {h} {n} {{ rate in 1kHz .. 1MHz log }}", st.span)
            return None
        dims = []
        for inner in st.tail.stmts:
            if not isinstance(inner, Stmt) or not isinstance(inner.tail, Within) or inner.args:
                self.err("a sampled dimension is 'PATH in LOW .. HIGH [log] [int]' or 'PATH in [a, b]'",
                         inner.span)
                continue
            dm = self.dist(inner)
            if dm is not None:
                dims.append(dm)
        if not dims:
            self.err(f"{h} has no dimensions", st.head_span)
            return None
        return ir.Sample(span=st.span, method=h, n=n, seed=seed, dims=tuple(dims))

    def dist(self, st: Stmt) -> ir.Dist | None:
        path = self.path(st.head, st.head_span)
        if path is None:
            return None
        w = st.tail.value
        if isinstance(w, ListLit):
            if not w.items:
                self.err("no choices", w.span)
                return None
            return ir.Dist(path, choices=self.values(w.items, path, w.span), span=st.span)
        assert isinstance(w, Range)
        spec = self.spec(path)
        log = integer = False
        for flag, fspan in w.flags:
            if flag == "log":
                log = True
            elif flag == "int":
                integer = True
            else:
                self.err(f"unknown range flag '{flag}'", fspan,
                         hint=did_you_mean(flag, ("log", "int")) or "flags are log and int")
        if spec.kind not in ("number", "time", "frequency"):
            self.err(f"{path} is {expected(spec)}; sample it from a list: {st.head} in [a, b]", w.span)
            return None
        bounds = [self.values([b], path, w.span) for b in (w.low, w.high)]
        if not all(bounds):
            return None  # a bound's error is reported
        lo, hi = bounds[0][0], bounds[1][0]
        if integer and spec.integer is False and spec.kind != "number":
            self.err("'int' applies to plain numbers", w.span)
        if isinstance(lo, Quantity) and isinstance(hi, Quantity) and lo.unit == hi.unit:
            if hi.value < lo.value:
                self.err(f"empty range: {lo} > {hi}", w.span)
            if log and lo.value <= 0:
                self.err("a log-scale range must be positive", w.low.span)
            if integer and not (float(lo.value).is_integer() and float(hi.value).is_integer()):
                self.err("an int range needs whole-number bounds", w.span)
        if spec.integer:
            integer = True
        return ir.Dist(path, lo, hi, log, integer, span=st.span)


class SweepChecker:
    """Checks that need the sweep's points: derived values and constraints."""

    def __init__(self, b: Builder, s: ir.Scenario, infos: dict) -> None:
        self.b = b
        self.s = s
        self.infos = infos

    def check(self, sw: ir.Sweep) -> None:
        if not sw.constraints and not sw.derived:
            return
        from irqlab import resolve as R

        try:
            points = list(itertools.islice(self.points(sw.root), MAX_CHECK_POINTS + 1))
        except ScenarioError as e:
            self.b.l.sink.extend(e)
            return
        complete = len(points) <= MAX_CHECK_POINTS and not _has_sample(sw.root)
        points = points[:MAX_CHECK_POINTS]
        base_infos = self.infos
        alive = [True] * len(points)
        first_error: set = set()
        passing = {id(c): 0 for c in sw.constraints}
        for i, pt in enumerate(points):
            ov = {p: (v, None) for p, v in pt.items()}
            r = R._Resolver(self.s, base_infos, ov)
            try:
                for dv in sw.derived:
                    val = R.evaluate(dv.expr, R._Env(r, dv.span), r.words_for(dv.path)
                                     if dv.path in base_infos else ())
                    ov[dv.path] = (val, dv.span)
                    r.done.pop(dv.path, None)
                    r.done = {}
                for c in sw.constraints:
                    ok = R.evaluate(c, R._Env(r, c.span))
                    if not isinstance(ok, bool):
                        raise ScenarioError("a constraint must be true or false", c.span,
                                            hint="compare values, e.g. 'delay * threshold < 1s'")
                    if ok:
                        passing[id(c)] += 1
                    else:
                        alive[i] = False
            except ScenarioError as e:
                key = (e.message, e.span)
                if key not in first_error:
                    first_error.add(key)
                    self.b.l.sink.extend(e)
                return
        if points and not any(alive) and sw.constraints:
            blocker = next((c for c in sw.constraints if passing[id(c)] == 0), None)
            how = "" if complete else f" (of the {len(points)} points tried)"
            if blocker is not None:
                self.b.err(f"no point of the sweep satisfies this constraint{how}", blocker.span)
            else:
                self.b.err(f"no point of the sweep satisfies all its constraints together{how}",
                           sw.constraints[0].span)

    def points(self, node: Any) -> Iterable[dict]:
        if node is None:
            yield {}
            return
        if isinstance(node, ir.Axis):
            for v in node.values:
                yield {node.path: v}
        elif isinstance(node, ir.Grid):
            parts = [list(itertools.islice(self.points(i), MAX_CHECK_POINTS)) for i in node.items]
            for combo in itertools.product(*parts):
                out: dict = {}
                for p in combo:
                    out.update(p)
                yield out
        elif isinstance(node, ir.Zip):
            parts = [list(itertools.islice(self.points(i), MAX_CHECK_POINTS)) for i in node.items]
            for combo in zip(*parts):
                out = {}
                for p in combo:
                    out.update(p)
                yield out
        elif isinstance(node, ir.Concat):
            for i in node.items:
                yield from self.points(i)
        elif isinstance(node, ir.Sample):
            yield from self.sample_points(node)

    def sample_points(self, node: ir.Sample) -> Iterable[dict]:
        """Candidate points of a sample: the corners, then random draws."""
        rng = random.Random(node.seed)
        dims = node.dims

        def pick(d: ir.Dist, u: float) -> Any:
            if d.choices:
                return d.choices[min(int(u * len(d.choices)), len(d.choices) - 1)]
            lo, hi = d.low, d.high
            if not (isinstance(lo, Quantity) and isinstance(hi, Quantity)) or lo.unit != hi.unit:
                return lo
            v = lo.value + u * (hi.value - lo.value)
            if d.log and lo.value > 0 and hi.value > 0:
                import math

                v = math.exp(math.log(lo.value) + u * (math.log(hi.value) - math.log(lo.value)))
            if d.integer:
                v = float(round(v))
            return Quantity(v, lo.unit)

        for corner in itertools.islice(itertools.product((0.0, 1.0), repeat=len(dims)), 256):
            yield {d.path: pick(d, u) for d, u in zip(dims, corner)}
        for _ in range(min(max(node.n, 256), 4096)):
            yield {d.path: pick(d, rng.random()) for d in dims}


def _has_sample(node: Any) -> bool:
    if isinstance(node, ir.Sample):
        return True
    if isinstance(node, (ir.Grid, ir.Zip, ir.Concat)):
        return any(_has_sample(i) for i in node.items)
    return False
