"""Lowering's second step: a :class:`~irqlab.dsl.drafts.Draft` into an :class:`irqlab.ir.Scenario`
(see :mod:`irqlab.dsl.lowering`)."""


from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from irqlab import ir
from irqlab.dsl.drafts import (DEFAULT_POLICY, LOWERS_POLICY, DeviceDraft, Draft, Pass, PluginDraft, VcpuDraft,
                               default_value, map_exprs, placeholder)
from irqlab.dsl.sweep_lowering import SweepBuilder, SweepChecker
from irqlab.errors import ScenarioError, Span, did_you_mean
from irqlab.ir import Expr, Name, PluginUse

if TYPE_CHECKING:
    from irqlab.dsl.lowering import Loader


class Builder(Pass):
    """A draft -> the scenario's IR, with defaults and the whole-scenario checks."""

    def __init__(self, loader: Loader, d: Draft, text: str) -> None:
        super().__init__(loader, d)
        self.text = text

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
            s = map_exprs(s, lambda e: self.canon_names(e, infos, index))
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
            if v.unknown_levels:  # already reported: its levels were misnamed
                return ()
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
                args.append(ir.Arg(prm.name, placeholder(prm) if prm.required else
                                   default_value(prm, self.d, p.span), p.span))
                continue
            if prm.required:
                self.err(f"{p.kind} '{p.name}' needs parameter '{prm.name}'", p.span,
                         hint=f"{prm.name}: {prm.doc}" if prm.doc else None,
                         presumes=(self.d.name, p.kind, p.name, prm.name))
                args.append(ir.Arg(prm.name, placeholder(prm), p.span))
                continue
            args.append(ir.Arg(prm.name, default_value(prm, self.d, p.span), p.span))
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
