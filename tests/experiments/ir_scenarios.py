"""Small scenarios built directly as IR, for tests of expansion and planning
(expansion's input is the IR; these do not depend on the DSL)."""

from __future__ import annotations

from dataclasses import replace

from irqlab import ir
from irqlab.ir import Arg, Device, LevelSpec, Machine, PluginUse, Quantity, RunSpec, Scenario, Vcpu
from irqlab.plugins.registry import registry


def q(value: float, unit: str = "") -> Quantity:
    return Quantity(float(value), unit)


def use(kind: str, name: str, **params) -> PluginUse:
    """A plugin use with every declared parameter (defaults filled, as lowering does)."""
    cls = registry().get(kind, name)
    args = []
    for p in cls.params:
        v = params.get(p.name, p.default)
        if isinstance(v, str) and p.numeric:
            v = ir.Name(name=v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and p.numeric:
            v = Quantity(float(v), {"time": "s", "frequency": "Hz"}.get(p.type, ""))
        args.append(Arg(p.name, v))
    return PluginUse(kind, name, tuple(args))


def small(*, sweep: ir.Sweep | None = None, duration: float = 1e-3, replications: int = 1,
          seed: int = 0, backend: str = "reference") -> Scenario:
    """A guest (L0, L1) with one periodic level-triggered device at ``param rate`` and
    the QEMU EOI throttle."""
    return Scenario(
        name="small",
        machine=Machine(),
        costs=tuple(Arg(k, d) for k, (d, _) in ir.COSTS.items()),
        vcpus=(Vcpu(0, (LevelSpec("L0", "kvm"), LevelSpec("L1", "linux", use("policy", "lower_then_eoi")))),),
        devices=(Device("nic", vector=0x40, gsi=10, trigger="level",
                        arrival=use("arrival", "periodic", period=ir.Binary(
                            op="/", left=ir.Num(value=q(1)), right=ir.Name(name="rate"))),
                        model=use("device", "generic"), serviced_by="L1", service=q(2e-6, "s")),),
        mitigations=(use("mitigation", "qemu_eoi_throttle", threshold=100, delay=0.01),),
        run=RunSpec(duration=q(duration, "s"), replications=replications, seed=seed, backend=backend),
        sweep=sweep,
        params=(ir.ParamDef("rate", q(10_000, "Hz")),),
    )


def axis(path: str, *values) -> ir.Axis:
    return ir.Axis(path, tuple(v if isinstance(v, (Quantity, str, bool, ir.Expr)) else q(v)
                               for v in values))


def with_sweep(s: Scenario, root=None, **kw) -> Scenario:
    return replace(s, sweep=ir.Sweep(root=root, **kw))
