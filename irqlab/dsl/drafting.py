"""Lowering's first step: a scenario block's statements into a :class:`~irqlab.dsl.drafts.Draft`
(see :mod:`irqlab.dsl.lowering`)."""


from __future__ import annotations

import difflib
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from irqlab import ir
from irqlab.dsl.drafts import (DEVICE_HEADS, LOWERS_POLICY, NAT, REMOVABLE, RUN_HEADS, SCENARIO_HEADS,
                               DeviceDraft, Draft, Entry, LevelDraft, Pass, PluginDraft, VcpuDraft, defines,
                               has_dotted, has_names, has_strings, known_hint)
from irqlab.dsl.syntax import Block, ListLit, ParamStmt, Stmt, StrLit, WhereStmt
from irqlab.errors import ScenarioError, Span, did_you_mean
from irqlab.ir import Expr, Name, Num
from irqlab.resolve import (COST_SPEC, DEVICE_SPECS, MACHINE_SPECS, RUN_SPECS, Spec,
                            check_value, evaluate, expected, plugin_spec)

if TYPE_CHECKING:
    from irqlab.dsl.lowering import Loader


class Drafter(Pass):
    """Reads one scenario block's statements into a draft."""

    def __init__(self, loader: Loader, draft: Draft, file: str) -> None:
        super().__init__(loader, draft)
        self.file = file
        self.params: set[str] = set(draft.params)

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
            if has_names(a) or has_strings(a):
                if has_strings(a):
                    self.err("a quoted string cannot be part of an expression", a.span)
                    return None
                if has_dotted(a):
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

    def block_only(self, st: Stmt, what: str) -> Block | None:
        """:meth:`block_of` for a statement that takes no arguments before its block."""
        b = self.block_of(st, what)
        if b is not None and st.args:
            self.err(f"{what} takes a block only: {what} {{ ... }}", st.args[0].span)
        return b

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
            self.err(f"{st.head} needs a {kind} name", at, hint=known_hint(kind))
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
                if self.block_only(st, "sweep") is not None:
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
            self.l.blame(since, (self.d.name, *defines(st)))

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
            if has_strings(a):
                self.err("a quoted string cannot be part of an expression", a.span)
                return
            v = a
            if has_dotted(a):
                self.l.dotted = True
            if not has_names(a):
                try:
                    v = evaluate(a, {})
                except ScenarioError:
                    v = a
        else:
            self.err("a param takes a value or an expression", st.span)
            return
        self.d.params[st.name] = Entry(v, st.span)

    def machine(self, st: Stmt) -> None:
        b = self.block_only(st, "machine")
        if b is None:
            return
        self.d.machine_span = self.d.machine_span or st.span
        seen: dict[str, Span] = {}
        for inner in b.stmts:
            if isinstance(inner, Stmt) and inner.head in MACHINE_SPECS:
                self.field(self.d.machine, seen, inner, MACHINE_SPECS[inner.head], inner.head, flag=True)
            else:
                self.unknown(inner, "machine", MACHINE_SPECS)

    def costs(self, st: Stmt) -> None:
        b = self.block_only(st, "costs")
        if b is None:
            return
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
        b = self.block_only(st, "run")
        if b is None:
            return
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
            elif inner.head == "trace":
                self.err("the run block has no 'trace' field: a trace is asked for on the command line",
                         inner.head_span, hint="irqlab trace FILE prints one run's events; irqlab run FILE "
                         "--trace OUT writes its first run's")
            else:
                self.unknown(inner, "run", RUN_HEADS)

    def metrics(self, st: Stmt, seen: dict) -> None:
        if len(st.args) != 1 or not isinstance(st.args[0], ListLit) or st.tail is not None:
            self.err("metrics takes a list of metric plugins: metrics [rates]", st.span)
            return
        from irqlab.plugins.registry import registry

        for item in st.args[0].items:
            if not isinstance(item, Name) or "." in item.name:
                self.err("expected a metric plugin name", item.span, hint=known_hint("metric"))
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
                key = self.value(a, NAT, "vcpu index") if isinstance(a, Num) else None
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
                v.unknown_levels = True
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
