"""Trace records of one lane, and their two renderings.

A record is ``(t_ps, seq, thread, event, text)``: ``thread`` is a vCPU index,
or :data:`QEMU` (QEMU's main loop / iothread) or :data:`KWORKER` (a host
kernel worker). ``seq`` keeps emission order among records with equal times.

* :data:`FORMATS` and :func:`record_text` give a record's text from its fields,
  the one table of record forms (the kernel's decoder writes every text with it;
  the reference and lockstep executors write the same texts, which the
  differential tests compare byte for byte);
* :func:`format_report` prints them like ``trace-cmd report`` prints the kvm
  trace events (``kvm_exit``, ``kvm_entry``, ``kvm_nested_vmexit_inject`` ...);
* :func:`to_perfetto` (an object) and :func:`write_perfetto` (streamed to a file)
  give the Chrome/Perfetto JSON trace-event format: one track per vCPU with its
  L0/L1/L2/userspace spans, instant events for the records, and counters for
  line levels and LAPIC IRR bits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator

from irqlab.engine.spill import Spill
from irqlab.engine.vendor import record_text as vendor_text

QEMU = -1
KWORKER = -2
MODE_NAMES = ("L0", "L1", "L2", "userspace")


@dataclass
class Trace:
    """One lane's records, mode changes ``(t_ps, vcpu, mode)`` and counter samples
    ``(t_ps, name, value)``, each in emission order.

    They are :class:`~irqlab.engine.spill.Spill` lists: past a bounded number of items
    they go to a temporary file, so a long trace does not build up in memory, and the
    renderings below read them back sorted, as streams.
    """

    records: Spill = field(default_factory=Spill)
    modes: Spill = field(default_factory=Spill)
    counters: Spill = field(default_factory=Spill)
    end_ps: int = 0

    def add(self, t: int, thread: int, event: str, text: str) -> None:
        self.records.append((int(t), len(self.records), int(thread), event, text))

    def iter_sorted(self) -> Iterator[tuple[int, int, int, str, str]]:
        """The records in time order (emission order among equal times)."""
        return self.records.iter_sorted()

    def sorted(self) -> list[tuple[int, int, int, str, str]]:
        return list(self.iter_sorted())


# A record's form -> the ``str.format`` template of its text. The form is the event's name,
# or the name and a variant ("irqlab_ioapic_eoi ignored") when one event has two texts.
FORMATS = {
    "kvm_exit": "reason {} rip 0x{:x} info {:x} 0",
    "kvm_entry": "vcpu {}",
    "kvm_nested_vmexit": "rip {:x} reason {} info1 0 info2 0 int_info 0 int_info_err 0",
    "kvm_nested_vmexit_inject": "reason {} info1 0 info2 0 int_info {:x} int_info_err 0",
    "kvm_inj_virq": "irq {}",
    "kvm_userspace_exit": "reason {} ({})",
    "irqlab_apic_accept": "cpu {} vec {} ({})",
    "kvm_apic_accept_irq": "apicid {} vec {} (Fixed|{})",
    "irqlab_line": "gsi {} level {}",
    "ioapic_set_irq": "vector: {} level: {}",
    "kvm_set_irq": "gsi {} level {} source {}",
    "kvm_msi_set_irq": "dst {} vec {} (Fixed|physical|{})",
    "kvm_ioapic_set_irq": "pin {} dst {} vec {} (Fixed|physical|{})",
    "irqlab_ioapic_deliver": "pin {} vec {} ({})",
    "irqlab_redirect": "pin {} masked {}",
    "irqlab_poll": "pin {}",
    "irqlab_msi": "dst {} vec {}",
    "irq_handler_entry": "irq={} name={}",
    "irq_handler_exit": "irq={} ret=handled",
    "irqlab_eoi": "cpu {} vector {}",
    "kvm_eoi": "apicid {} vector {}",
    "irqlab_ioapic_eoi": "vector {}",
    "irqlab_ioapic_eoi ignored": "vector {} ignored",
    "kvm_ioapic_delayed_eoi_inj": "pin {}",
    "ioapic_eoi_delayed_reassert": "pin {}",
    "irqlab_spurious_disable": "irq {}: nobody cared, disabling",
    "irqlab_xen_ratelimit": "pin {} masked",
    "irqlab_vfio_intx": "dev {} masked",
    "irqlab_vfio_unmask": "dev {} line {}",
    "kvm_ack_irq": "irqchip IOAPIC pin {}",
    "irqlab_resample": "pin {}",
    "irqlab_lazy_eoi": "pin {} vec {}",
    "irqlab_zero_time_loop": "{} records per turn, {} turns nested: {}",
    "irqlab_zero_time_loop instant": "{} records per turn, {} events at one instant: {}",
    # destinations (engine/dest.py): a message's delivery and mode, KVM's apic_irq fields
    "kvm_msi_set_irq dest": "dst {} vec {} ({}|{}|{})",
    "kvm_ioapic_set_irq dest": "pin {} dst {} vec {} ({}|{}|{})",
    "kvm_apic_accept_irq lowest": "apicid {} vec {} (LowPrio|{})",
    # guest actions (engine/routes.py)
    "irqlab_redirect dest": "pin {} masked {} dest {}",
    "irqlab_msi_write": "dev {} dest {}",
    "irqlab_eoi_exitmap": "vcpu {} vectors {}",
    # timers and host contention (engine/timers_*.py)
    "irqlab_deschedule": "vcpu {} for {}ns",
    "irqlab_reschedule": "vcpu {}",
    "irqlab_pit_timer": "pending {}",
    "irqlab_rtc_coalesced": "irq_coalesced {}",
    "kvm_hv_stimer_callback": "vcpu_id {} timer 0",
    "kvm_hv_stimer_expiration": "vcpu_id {} timer 0 direct 0 msg send result {}",
    "kvm_hv_stimer_start_periodic": "vcpu_id {} timer 0 time_now {} exp_time {}",
    # idle vCPUs (engine/idle.py)
    "irqlab_wake": "vcpu {}",
    "kvm_apic_ipi": "dst {:x} vec {} (Fixed|physical|assert|edge|dst)",
    "kvm_vcpu_wakeup": "{} time {} ns, polling valid",
    "kvm_halt_poll_ns": "vcpu {}: halt_poll_ns {} ({} {})",
}


def record_text(form: str, *args, vendor: str = "intel") -> tuple[str, str]:
    """``(event, text)`` of a record of ``form`` (a key of :data:`FORMATS`) with ``args``,
    as printed on ``vendor`` (on AMD an exit's reason is its SVM name)."""
    event = form.partition(" ")[0]
    return event, vendor_text(vendor, event, FORMATS[form].format(*args))


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
    for t, _, thread, event, text in trace.iter_sorted():
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
    return {"traceEvents": list(perfetto_events(trace, n_vcpus, title)), **PERFETTO_TAIL}


def write_perfetto(trace: Trace, n_vcpus: int, fh: IO[str], title: str = "irqlab") -> None:
    """Write :func:`to_perfetto`'s object to ``fh`` one event at a time (the same bytes as
    ``json.dump(to_perfetto(...), fh)``, without holding the events)."""
    fh.write('{"traceEvents": [')
    for i, e in enumerate(perfetto_events(trace, n_vcpus, title)):
        fh.write(", " if i else "")
        fh.write(json.dumps(e))
    fh.write("]")
    for k, v in PERFETTO_TAIL.items():
        fh.write(f", {json.dumps(k)}: {json.dumps(v)}")
    fh.write("}")


PERFETTO_TAIL = {"displayTimeUnit": "ns", "otherData": {"generator": "irqlab", "clock": "simulated"}}


def perfetto_events(trace: Trace, n_vcpus: int, title: str = "irqlab") -> Iterator[dict]:
    """The Chrome/Perfetto trace events: thread names, a complete ("X") event per stay of a
    vCPU in a mode, an instant event per record, a counter ("C") event per sample."""
    pid = 1
    yield {"ph": "M", "pid": pid, "name": "process_name", "args": {"name": title}}
    for v in range(n_vcpus):
        yield {"ph": "M", "pid": pid, "tid": 10 + v, "name": "thread_name", "args": {"name": f"vCPU {v}"}}
    yield {"ph": "M", "pid": pid, "tid": 1, "name": "thread_name", "args": {"name": "QEMU"}}
    yield {"ph": "M", "pid": pid, "tid": 2, "name": "thread_name", "args": {"name": "host kworker"}}
    last: dict[int, tuple[int, int]] = {}
    end = trace.end_ps
    for t, v, mode in trace.modes.iter_sorted(key=lambda r: (r[0], r[1])):  # stable: keeps causal order
        if t > end:  # a transition that was under way when the run ended
            continue
        if v in last:
            t0, m0 = last[v]
            if t > t0:
                yield {"ph": "X", "pid": pid, "tid": 10 + v, "name": MODE_NAMES[m0],
                       "cat": "mode", "ts": t0 / 1e6, "dur": (t - t0) / 1e6}
        last[v] = (t, mode)
    for v, (t0, m0) in last.items():
        if trace.end_ps > t0:
            yield {"ph": "X", "pid": pid, "tid": 10 + v, "name": MODE_NAMES[m0], "cat": "mode",
                   "ts": t0 / 1e6, "dur": (trace.end_ps - t0) / 1e6}
    for t, _, thread, event, text in trace.iter_sorted():
        tid = 10 + thread if thread >= 0 else (1 if thread == QEMU else 2)
        yield {"ph": "i", "s": "t", "pid": pid, "tid": tid, "name": event, "cat": "event",
               "ts": t / 1e6, "args": {"text": text}}
    for t, name, value in trace.counters:
        yield {"ph": "C", "pid": pid, "name": name, "ts": t / 1e6, "args": {"value": value}}
