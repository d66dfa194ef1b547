"""Cross-checks of issue 13's timers and host contention (docs/model.md, "Timers that
catch up, and host contention"); called from :func:`irqlab.dsl.checks.check_scenario`."""

from __future__ import annotations

from irqlab import ir
from irqlab.errors import ErrorSink

TIMER_MODELS = ("pit", "stimer", "rtc")
RTC_GSI = 8  # KVM tracks EOIs for coalesced ticks on this GSI only (arch/x86/kvm/ioapic.h)


def check_timers(s: ir.Scenario, sink: ErrorSink) -> None:
    """A timer expires every period, so it needs ``arrival periodic``; the RTC is GSI 8;
    a deschedule plugin names an existing vCPU."""
    for d in s.devices:
        if d.model is not None and d.model.name in TIMER_MODELS and d.arrival is not None \
                and d.arrival.name != "periodic":
            sink.add(f"device {d.name}: a {d.model.name} timer expires every period: it needs "
                     f"'arrival periodic period T', not '{d.arrival.name}'", d.arrival.span)
        if d.model is not None and d.model.name == "rtc" and isinstance(d.gsi, int) and d.gsi != RTC_GSI:
            sink.add(f"device {d.name}: the RTC is gsi {RTC_GSI}, the only GSI whose EOIs KVM tracks "
                     f"for coalesced ticks, not {d.gsi}", d.span)
    n = len(s.vcpus) if s.vcpus else 1
    for mu in s.mitigations:
        if mu.name != "deschedule":
            continue
        a = mu.arg("vcpu")
        v = a.value.value if a is not None and isinstance(a.value, ir.Quantity) else getattr(a, "value", 0)
        if isinstance(v, (int, float)) and not v < n:
            sink.add(f"deschedule vcpu {int(v)} does not exist (the machine has {n} vCPU"
                     f"{'s' if n > 1 else ''})", a.span if a is not None and a.span else mu.span)
