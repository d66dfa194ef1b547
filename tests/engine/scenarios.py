"""Scenarios built directly as IR, so engine tests do not depend on the DSL."""

from __future__ import annotations

from dataclasses import replace

from irqlab import ir
from irqlab.ir import Arg, Device, LevelSpec, Machine, PluginUse, Quantity, RunSpec, Scenario, Vcpu
from irqlab.plugins.registry import registry


def q(value: float, unit: str = "") -> Quantity:
    return Quantity(float(value), unit)


def us(x: float) -> Quantity:
    return Quantity(x * 1e-6, "s")


def ms(x: float) -> Quantity:
    return Quantity(x * 1e-3, "s")


def use(kind: str, name: str, **params) -> PluginUse:
    """A plugin use with every declared parameter (defaults filled, as lowering does)."""
    cls = registry().get(kind, name)
    args = []
    for p in cls.params:
        if p.name in params:
            v = params[p.name]
        elif p.required:
            raise ValueError(f"{name} needs {p.name}")
        else:
            v = p.default
        if isinstance(v, (int, float)) and not isinstance(v, bool) and p.numeric:
            v = Quantity(float(v), {"time": "s", "frequency": "Hz"}.get(p.type, ""))
        args.append(Arg(p.name, v))
    return PluginUse(kind, name, tuple(args))


def costs(**over: Quantity) -> tuple[Arg, ...]:
    return tuple(Arg(k, over.get(k, d)) for k, (d, _) in ir.COSTS.items())


def founding(*, irqchip: str = "split", policy: str = "eoi_before_lower", mitigations=(),
             duration: Quantity = ms(5), service: Quantity = us(20), apicv: bool = True,
             suppress: str = "off", max_events: int = 10_000_000, **machine) -> Scenario:
    """The seed: Hyper-V-like L1 on KVM, UHCI level-triggered on gsi 23, vector 0x50."""
    return Scenario(
        name="founding",
        machine=Machine(irqchip=irqchip, apicv=apicv, suppress_eoi_broadcast=suppress, **machine),
        costs=costs(),
        vcpus=(Vcpu(0, (LevelSpec("L0", "kvm"), LevelSpec("L1", "hyperv", use("policy", policy)),
                        LevelSpec("L2", "windows"))),),
        devices=(Device("uhci", vector=0x50, delivery="ioapic", gsi=23, trigger="level", dest=0,
                        arrival=use("arrival", "once", at=0.0), model=use("device", "generic"),
                        serviced_by="L2", service=service),),
        mitigations=tuple(mitigations),
        run=RunSpec(duration=duration, max_events=max_events),
    )


def guest(*, levels=("L0", "L1"), policy: str = "lower_then_eoi", devices=(), mitigations=(),
          duration: Quantity = ms(5), vcpus: int = 1, l1_kind: str = "l1", policy_args=None,
          **machine) -> Scenario:
    """A guest with ``vcpus`` vCPUs of the same ``levels`` (bare metal with levels=("L0",);
    nested with three levels) and the given devices."""
    pol = use("policy", policy, **(policy_args or {}))
    stack = tuple(LevelSpec(lv, lv.lower(), pol if lv == levels[-1] else None)
                  for lv in levels)
    if len(levels) == 3:
        stack = (LevelSpec("L0", "kvm"), LevelSpec("L1", l1_kind, pol), LevelSpec("L2", "l2"))
    return Scenario(name="guest", machine=Machine(vcpus=vcpus, **machine), costs=costs(),
                    vcpus=tuple(Vcpu(i, stack) for i in range(vcpus)),
                    devices=tuple(devices), mitigations=tuple(mitigations), run=RunSpec(duration=duration))


def device(name: str, vector: int, *, gsi: int | None = 10, trigger: str = "level", arrival=None,
           serviced_by: str = "L1", service: Quantity = us(2), lowers_line: bool = True, model: str = "generic",
           policy=None, dest: int = 0, service_dist=None) -> Device:
    return Device(name, vector=vector, delivery="ioapic" if gsi is not None else "msi", gsi=gsi, dest=dest,
                  trigger=trigger, arrival=arrival or use("arrival", "once", at=0.0),
                  model=use("device", model), serviced_by=serviced_by, service=service,
                  lowers_line=lowers_line, policy=policy, service_dist=service_dist)


def with_run(s: Scenario, **kw) -> Scenario:
    return replace(s, run=replace(s.run, **kw))
