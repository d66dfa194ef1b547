"""A readable description of a compiled program (``irqlab compile``)."""

from __future__ import annotations

from typing import Any

from irqlab.engine.program import Program


def human(value: float | int, typ: str) -> str:
    """A lane parameter in engine units, shown with a unit."""
    if typ == "time":
        ps = int(value)
        if ps == 0:
            return "0"
        for unit, scale in (("s", 10**12), ("ms", 10**9), ("us", 10**6), ("ns", 10**3)):
            if abs(ps) >= scale:
                return f"{ps / scale:g}{unit}"
        return f"{ps}ps"
    if typ == "frequency":
        for unit, scale in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3)):
            if abs(value) >= scale:
                return f"{value / scale:g}{unit}"
        return f"{value:g}Hz"
    return f"{value:g}" if isinstance(value, float) else str(value)


def explain(program: Program) -> dict[str, Any]:
    """The program as plain data: what each vector's handler does, and with which values."""
    p = program
    s = p.scenario
    m = s.machine
    groups = []
    for g in p.groups:
        steps = []
        for st, path in zip(g.steps, g.before):
            delay = f"after {human(p.params[path], 'time')} " if path else ""
            steps.append(f"{delay}{st.action}")
        groups.append({
            "vector": g.vector, "trigger": "level" if g.level else "edge", "delivery": g.delivery,
            "pins": list(g.pins), "dest": g.dest, "devices": [p.devices[i].name for i in g.devices],
            "local": g.local, "policy": g.policy, "steps": steps, "eoi_exit": g.eoi_exit,
            "suppress": g.suppress,
        })
    return {
        "scenario": s.name,
        "key": p.key,
        "machine": (f"irqchip {m.irqchip}, apicv {'on' if m.apicv else 'off'}, x2apic "
                    f"{'on' if m.x2apic else 'off'}, suppress_eoi_broadcast {m.suppress_eoi_broadcast}, "
                    f"{p.n_vcpus} vCPU(s), {p.n_pins} IOAPIC pins"),
        "stack": list(p.stack),
        "receiving": "L0" if p.bare else "L1",
        "groups": groups,
        "mitigations": [{"name": mi.label, "hooks": sorted(type(mi.plugin).hooks),
                         "timers": type(mi.plugin).timers} for mi in p.mitigations],
        "params": {k: human(v, p.param_types[k]) for k, v in sorted(p.params.items())},
    }
