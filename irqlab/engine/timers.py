"""Timers that catch up, and host contention: what both executors share (docs/model.md,
"Timers that catch up, and host contention"; the kernel in :mod:`irqlab.engine.kernel_timers`,
the lockstep executor in :mod:`irqlab.engine.timers_lockstep`)."""

from __future__ import annotations

PIT_SOURCE = 2  # the PIT's irq source id (kvm_request_irq_source_id after userspace 0 and the resampler 1)
EAGAIN = -11
RTC_REINJECT_ON_ACK_COUNT = 20  # hw/rtc/mc146818rtc.c
HV_UNIT = 100_000  # ps per unit of the Hyper-V reference time (100 ns), as the tracepoints print it


def n_timer_slots(program) -> int:
    """The timer mechanisms' event slots: one per deschedule plugin, then one per RTC
    (its coalesced-tick timer)."""
    return len(program.desched) + sum(1 for _, kind in program.timer_devices if kind == "rtc")
