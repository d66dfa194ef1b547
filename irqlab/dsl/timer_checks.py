"""Cross-checks of issue 13's timers and host contention (docs/model.md, "Timers that
catch up, and host contention"); called from :func:`irqlab.dsl.checks.check_scenario`."""

from __future__ import annotations

from irqlab import ir
from irqlab.errors import ErrorSink

TIMER_MODELS = ("pit", "stimer")


def check_timers(s: ir.Scenario, sink: ErrorSink) -> None:
    """A stimer restarts itself at the next boundary of a fixed period, so it needs
    ``arrival periodic``; a deschedule plugin names an existing vCPU."""
    for d in s.devices:
        if d.model is not None and d.model.name in TIMER_MODELS and d.arrival is not None \
                and d.arrival.name != "periodic":
            sink.add(f"device {d.name}: a {d.model.name} timer expires every period: it needs "
                     f"'arrival periodic period T', not '{d.arrival.name}'", d.arrival.span)
    n = len(s.vcpus) if s.vcpus else 1
    for mu in s.mitigations:
        if mu.name != "deschedule":
            continue
        a = mu.arg("vcpu")
        v = a.value.value if a is not None and isinstance(a.value, ir.Quantity) else getattr(a, "value", 0)
        if isinstance(v, (int, float)) and not v < n:
            sink.add(f"deschedule vcpu {int(v)} does not exist (the machine has {n} vCPU"
                     f"{'s' if n > 1 else ''})", a.span if a is not None and a.span else mu.span)
