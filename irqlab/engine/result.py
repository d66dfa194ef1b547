"""What a batch of lanes produces: columnar metrics, one row per lane.

:class:`BatchResult` holds every metric as an array over the batch's lanes,
so the results layer can turn it into Arrow without a per-row Python loop.
``result.lane(i)`` gives one run in the ``irqlab run --json`` form;
``result.flat_columns()`` gives flat, dotted column names (``exits.VMRESUME``,
``device.uhci.latency_p99_ns``) for tables and SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Scalar metrics of every run: name -> (type, unit, meaning).
METRICS: dict[str, tuple[str, str, str]] = {
    "l2_time_ns": ("float", "ns", "time the vCPUs spent running L2 guest code"),
    "l1_time_ns": ("float", "ns", "time the vCPUs spent running L1 guest code"),
    "l0_time_ns": ("float", "ns", "time in L0: KVM exit handling and nested emulation, "
                   "or the OS itself on bare metal"),
    "userspace_time_ns": ("float", "ns", "time in the VMM's userspace (QEMU) for exits"),
    "l2_fraction": ("float", "", "l2_time_ns / (simulated time x vCPUs)"),
    "time_to_l2_progress_ns": ("float", "ns", "from the first interrupt to the first L2 guest "
                               "code that runs for a positive time; null if never"),
    "time_to_progress_ns": ("float", "ns", "the same for the innermost level (L2, L1 or bare "
                            "metal L0); null if never"),
    "livelock": ("bool", "", "after a vCPU's first interrupt, some window (run.livelock_window, "
                 "default 10 ms, or the whole run if shorter) passed without its innermost level "
                 "(L2, or L1, or bare-metal L0) executing guest code"),
    "livelock_max_ns": ("float", "ns", "the longest such stall"),
    "eoi_count": ("int", "", "LAPIC EOIs written by the guests"),
    "interrupts_raised": ("int", "", "device arrivals"),
    "interrupts_delivered": ("int", "", "interrupts accepted into a LAPIC IRR (the devices' "
                             "delivered + redelivered)"),
    "interrupts_coalesced": ("int", "", "arrivals merged into an interrupt already raised "
                             "(the devices' coalesced)"),
    "spurious_count": ("int", "", "handler invocations that found no work (unhandled)"),
    "immediate_exits": ("int", "", "L2 entries with the preemption timer at 0 to reflect an interrupt "
                        "(AMD: with a self-IPI)"),
    "exits_total": ("int", "", "kvm_exit events, all reasons"),
    "events": ("int", "", "trace records the run produced"),
    "truncated": ("bool", "", "the run hit run.max_events before its duration"),
    "zero_time_loop": ("bool", "", "the run stopped at a cycle of events that takes no simulated "
                       "time (its trace ends with an irqlab_zero_time_loop record naming the cycle)"),
    "zero_time_cycle": ("int", "", "trace records in one turn of that cycle (0 without one)"),
    "sim_time_ns": ("float", "ns", "simulated time reached"),
    "work_ns": ("float", "ns", "idle vCPUs (machine.idle): guest work the serviced interrupts made "
                "available (the devices' work)"),
    "work_done_ns": ("float", "ns", "idle vCPUs: the part of that work the guests ran"),
    "halt_exits": ("int", "", "idle vCPUs: HLT exits (kvm_exit reason HLT; also in exits_total)"),
    "ipis": ("int", "", "idle vCPUs: reschedule IPIs sent to hand work to another vCPU (device work_on)"),
    "halt_polls_ok": ("int", "", "idle vCPUs: halts that an interrupt ended while KVM was still "
                      "halt-polling (halt_successful_poll)"),
    "halt_poll_ns": ("float", "ns", "idle vCPUs: time KVM spent halt-polling"),
    "halt_wait_ns": ("float", "ns", "idle vCPUs: time the halted vCPU threads were blocked, until "
                     "they ran again (halt_wait_ns, wake-up latency included)"),
}

DEVICE_METRICS: dict[str, tuple[str, str, str]] = {
    "raised": ("int", "", "arrivals: raised = delivered + coalesced + lost + pending"),
    "delivered": ("int", "", "arrivals whose interrupt was accepted into a LAPIC IRR"),
    "coalesced": ("int", "", "arrivals merged into an interrupt already raised (at the device, "
                  "the IOAPIC's irr or the LAPIC's IRR), or serviced before delivery"),
    "lost": ("int", "", "edge arrivals that hit a masked pin"),
    "pending": ("int", "", "arrivals raised but not yet delivered when the run ended (0 or 1)"),
    "redelivered": ("int", "", "deliveries of a line still asserted, without a new arrival "
                    "(after an EOI, an unmask, a deferred service)"),
    "serviced": ("int", "", "times the device was serviced (line lowered)"),
    "latency_p50_ns": ("float", "ns", "median time from the line's assertion to its service "
                       "(estimated from the histogram, 10 bins/decade)"),
    "latency_p99_ns": ("float", "ns", "99th percentile of the same (histogram, 10 bins/decade)"),
    "latency_max_ns": ("float", "ns", "longest time from assertion to service (exact)"),
    "latency_mean_ns": ("float", "ns", "mean time from assertion to service (exact)"),
}

# Array-valued device metrics, ``[n, k]``, kept when the scenario asks (stored in
# the ``metric_arrays`` table, one row per element).
DEVICE_ARRAYS: dict[str, tuple[str, str, str]] = {
    "latency_hist": ("int", "", "services per latency bin (run { histograms on }): bin 0 is under "
                     "10 ns, bin k = 1..90 starts at 10 ns x 10^((k-1)/10), bin 91 is 10 s and over"),
}

EXIT_REASONS = (
    "EXTERNAL_INTERRUPT", "INTERRUPT_WINDOW", "VMRESUME", "PREEMPTION_TIMER", "EOI_INDUCED",
    "APIC_ACCESS", "MSR_WRITE", "EPT_MISCONFIG",
)
USERSPACE_EXITS = ("KVM_EXIT_IOAPIC_EOI", "KVM_EXIT_MMIO")


@dataclass
class BatchResult:
    """Results of one batch: every array has length ``n`` (lanes, in input order).

    ``status[i]`` is ``"ok"`` or ``"failed"`` (then ``error[i]`` says why and
    the lane's metrics are NaN/0). ``devices[name][metric]`` and
    ``series[field]`` (shape ``[n, samples]``) follow the same lane order;
    ``traces[i]`` exists for the lanes that were traced.
    """

    n: int
    status: list[str]
    error: list[str | None]
    metrics: dict[str, np.ndarray]
    exits: dict[str, np.ndarray]
    userspace_exits: dict[str, np.ndarray]
    mitigation_activations: dict[str, np.ndarray]
    devices: dict[str, dict[str, np.ndarray]]
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # metric plugins' columns
    series: dict[str, np.ndarray] | None = None
    traces: dict[int, Any] = field(default_factory=dict)
    backend: str = ""  # which executor ran the lanes, and why (set by the ``auto`` backend)
    #: [n, V, 4] ns each vCPU spent at L0, L1, L2 and in userspace (shown, not stored)
    vcpu_time_ns: np.ndarray | None = None

    def lane(self, i: int) -> dict[str, Any]:
        """One run in the ``irqlab run --json`` form."""
        out: dict[str, Any] = {"status": self.status[i], "error": self.error[i]}
        for name, (typ, _, _) in METRICS.items():
            out[name] = _py(self.metrics[name][i], typ)
        out["exits"] = {k: int(v[i]) for k, v in self.exits.items() if v[i]}
        out["userspace_exits"] = {k: int(v[i]) for k, v in self.userspace_exits.items() if v[i]}
        out["mitigation_activations"] = {k: int(v[i]) for k, v in self.mitigation_activations.items()}
        out["devices"] = {
            dev: {m: arr[i].tolist() if m in DEVICE_ARRAYS else _py(arr[i], DEVICE_METRICS[m][0])
                  for m, arr in cols.items()}
            for dev, cols in self.devices.items()
        }
        for k, v in self.extra.items():
            out[k] = _py(v[i], "float")
        if self.series is not None:
            out["series"] = {k: v[i].tolist() for k, v in self.series.items()}
        if self.vcpu_time_ns is not None:
            out["vcpu_time_ns"] = {str(v): dict(zip(("L0", "L1", "L2", "user"), row))
                                   for v, row in enumerate(self.vcpu_time_ns[i].tolist())}
        return out

    def flat_columns(self) -> dict[str, np.ndarray]:
        """Every scalar metric as ``{dotted name: array[n]}`` (NaN for null)."""
        cols: dict[str, np.ndarray] = dict(self.metrics)
        for reason in EXIT_REASONS:
            cols[f"exits.{reason}"] = self.exits.get(reason, np.zeros(self.n, np.int64))
        for reason in USERSPACE_EXITS:
            cols[f"userspace_exits.{reason}"] = self.userspace_exits.get(reason, np.zeros(self.n, np.int64))
        for k, v in self.mitigation_activations.items():
            cols[f"mitigation_activations.{k}"] = v
        for dev, m in self.devices.items():
            for name, arr in m.items():
                cols[f"device.{dev}.{name}"] = arr
        cols.update(self.extra)
        return cols

    @staticmethod
    def concat(parts: list["BatchResult"]) -> "BatchResult":
        """Lanes of several results, in order (same scenario structure)."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]

        def cat(get):
            return np.concatenate([get(p) for p in parts])

        return BatchResult(
            n=sum(p.n for p in parts),
            status=[s for p in parts for s in p.status],
            error=[e for p in parts for e in p.error],
            metrics={k: cat(lambda p, k=k: p.metrics[k]) for k in first.metrics},
            exits={k: cat(lambda p, k=k: p.exits[k]) for k in first.exits},
            userspace_exits={k: cat(lambda p, k=k: p.userspace_exits[k]) for k in first.userspace_exits},
            mitigation_activations={k: cat(lambda p, k=k: p.mitigation_activations[k])
                                    for k in first.mitigation_activations},
            devices={d: {m: cat(lambda p, d=d, m=m: p.devices[d][m]) for m in cols}
                     for d, cols in first.devices.items()},
            extra={k: cat(lambda p, k=k: p.extra[k]) for k in first.extra},
            series=None if first.series is None else
            {k: cat(lambda p, k=k: p.series[k]) for k in first.series},
            traces={i + off: t for off, p in zip(np.cumsum([0] + [p.n for p in parts]), parts)
                    for i, t in p.traces.items()},
            backend=first.backend,
            vcpu_time_ns=None if any(p.vcpu_time_ns is None for p in parts) else
            cat(lambda p: p.vcpu_time_ns),
        )


def _py(x: Any, typ: str) -> Any:
    if typ == "bool":
        return bool(x)
    if typ == "int":
        return int(x)
    x = float(x)
    return None if math.isnan(x) else x
