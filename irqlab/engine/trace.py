"""Trace records of one lane, and their two renderings.

A record is ``(t_ps, seq, thread, event, text)``: ``thread`` is a vCPU index,
or :data:`QEMU` (QEMU's main loop / iothread) or :data:`KWORKER` (a host
kernel worker). ``seq`` keeps emission order among records with equal times.

* :func:`format_report` prints them like ``trace-cmd report`` prints the kvm
  trace events (``kvm_exit``, ``kvm_entry``, ``kvm_nested_vmexit_inject`` ...);
* :func:`to_perfetto` writes the Chrome/Perfetto JSON trace-event format: one
  track per vCPU with its L0/L1/L2/userspace spans, instant events for the
  records, and counters for line levels and LAPIC IRR bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

QEMU = -1
KWORKER = -2
MODE_NAMES = ("L0", "L1", "L2", "userspace")


@dataclass
class Trace:
    """One lane's records, mode changes ``(t_ps, vcpu, mode)`` and counter samples
    ``(t_ps, name, value)``."""

    records: list[tuple[int, int, int, str, str]] = field(default_factory=list)
    modes: list[tuple[int, int, int]] = field(default_factory=list)
    counters: list[tuple[int, str, int]] = field(default_factory=list)
    end_ps: int = 0

    def add(self, t: int, thread: int, event: str, text: str) -> None:
        self.records.append((int(t), len(self.records), int(thread), event, text))

    def sorted(self) -> list[tuple[int, int, int, str, str]]:
        return sorted(self.records)


def thread_name(thread: int) -> tuple[str, int, int]:
    """(comm, pid, cpu) of a trace thread, as trace-cmd shows them."""
    if thread == QEMU:
        return "qemu-system-x86", 4000, 1
    if thread == KWORKER:
        return "kworker/1:1", 120, 1
    return f"CPU {thread}/KVM", 4010 + thread, 2 + thread


def format_report(trace: Trace, events: Iterable[str] | None = None, limit: int | None = None) -> Iterator[str]:
    """Lines in ``trace-cmd report`` style (timestamps in seconds, ns resolution).

    ``events``: keep only these event names (or prefixes ending in ``*``).
    """
    keep = list(events) if events else None
    n = 0
    for t, _, thread, event, text in trace.sorted():
        if keep is not None and not any(
            event == k or (k.endswith("*") and event.startswith(k[:-1])) for k in keep
        ):
            continue
        comm, pid, cpu = thread_name(thread)
        yield f"{comm:>16}-{pid:<5} [{cpu:03d}] {t / 1e12:15.9f}: {event + ':':<26} {text}"
        n += 1
        if limit is not None and n >= limit:
            return


def to_perfetto(trace: Trace, n_vcpus: int, title: str = "irqlab") -> dict:
    """The trace as a Chrome/Perfetto JSON object (open it in ui.perfetto.dev)."""
    ev: list[dict] = []
    pid = 1
    ev.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": title}})
    for v in range(n_vcpus):
        ev.append({"ph": "M", "pid": pid, "tid": 10 + v, "name": "thread_name",
                   "args": {"name": f"vCPU {v}"}})
    ev.append({"ph": "M", "pid": pid, "tid": 1, "name": "thread_name", "args": {"name": "QEMU"}})
    ev.append({"ph": "M", "pid": pid, "tid": 2, "name": "thread_name", "args": {"name": "host kworker"}})
    # Mode spans: a complete ("X") event per stay in a mode.
    last: dict[int, tuple[int, int]] = {}
    end = trace.end_ps
    for t, v, mode in sorted(trace.modes, key=lambda r: (r[0], r[1])):  # stable: keeps causal order
        if t > end:  # a transition that was under way when the run ended
            continue
        if v in last:
            t0, m0 = last[v]
            if t > t0:
                ev.append({"ph": "X", "pid": pid, "tid": 10 + v, "name": MODE_NAMES[m0],
                           "cat": "mode", "ts": t0 / 1e6, "dur": (t - t0) / 1e6})
        last[v] = (t, mode)
    for v, (t0, m0) in last.items():
        if trace.end_ps > t0:
            ev.append({"ph": "X", "pid": pid, "tid": 10 + v, "name": MODE_NAMES[m0], "cat": "mode",
                       "ts": t0 / 1e6, "dur": (trace.end_ps - t0) / 1e6})
    for t, _, thread, event, text in trace.sorted():
        tid = 10 + thread if thread >= 0 else (1 if thread == QEMU else 2)
        ev.append({"ph": "i", "s": "t", "pid": pid, "tid": tid, "name": event, "cat": "event",
                   "ts": t / 1e6, "args": {"text": text}})
    for t, name, value in trace.counters:
        ev.append({"ph": "C", "pid": pid, "name": name, "ts": t / 1e6, "args": {"value": value}})
    return {"traceEvents": ev, "displayTimeUnit": "ns",
            "otherData": {"generator": "irqlab", "clock": "simulated"}}
