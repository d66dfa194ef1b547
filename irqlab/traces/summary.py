"""What a trace says, gathered in one pass over its records (bounded memory: counters,
and per stream one key id, one time and one RIP per record).

:class:`Summary` counts exits by reason per vCPU, deliveries, injections and EOIs
per vector, userspace exits by reason, and events per time bin; ``loops()``
runs the storm detector (:mod:`irqlab.traces.cycles`) on each stream.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from irqlab.traces.cycles import Loop, analyse, record_key

RATE_BINS = 10
MAX_TEXTS = 16


@dataclass
class _Stream:
    tok: array = field(default_factory=lambda: array("q"))
    ts: array = field(default_factory=lambda: array("d"))
    rip: array = field(default_factory=lambda: array("Q"))
    vcpus: Counter = field(default_factory=Counter)
    tasks: Counter = field(default_factory=Counter)
    last_seg: tuple = ()


class Summary:
    """Accumulates records (:meth:`add`) and reports on them."""

    def __init__(self) -> None:
        self.streams: dict[int, _Stream] = {}
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.breaks = 0
        self.exits: Counter = Counter()          # (stream, reason)
        self.vectors: dict[int, Counter] = defaultdict(Counter)  # vector -> {kind: n}
        self.userspace: Counter = Counter()
        self.events: Counter = Counter()
        self.times: dict[str, array] = defaultdict(lambda: array("d"))  # exits/EOIs times
        self.records = 0
        self.timed = False  # some record has a timestamp
        self.texts: list[Counter] = []  # per key id: its fields texts (at most MAX_TEXTS distinct)

    def add(self, rec: dict) -> None:
        """Count one record (a dict of :mod:`irqlab.traces.schema` columns)."""
        self.records += 1
        sid = rec.get("stream", 0)
        s = self.streams.get(sid)
        if s is None:
            s = self.streams[sid] = _Stream()
        seg = (rec.get("file"), rec.get("segment", 0))
        if s.last_seg and seg != s.last_seg:
            self.breaks += 1
            s.tok.append(-self.breaks)
            s.ts.append(float("nan"))
            s.rip.append(0)
        s.last_seg = seg
        key = record_key(rec)
        kid = self.ids.get(key)
        if kid is None:
            kid = self.ids[key] = len(self.names)
            self.names.append(key)
            self.texts.append(Counter())
        texts = self.texts[kid]
        raw = rec.get("raw", "")
        if raw in texts or len(texts) < MAX_TEXTS:
            texts[raw] += 1
        s.tok.append(kid)
        ts = rec.get("ts_ns")
        if ts is None:
            s.ts.append(float("nan"))
        else:
            s.ts.append(float(ts))
            self.timed = True
        ev = rec["event"]
        s.rip.append(rec.get("rip") or 0 if ev in ("kvm_exit", "kvm_nested_vmexit") else 0)
        if rec.get("vcpu") is not None:
            s.vcpus[rec["vcpu"]] += 1
        if rec.get("task"):
            s.tasks[rec["task"]] += 1
        self.events[ev] += 1
        if ev == "kvm_exit":
            self.exits[(sid, rec.get("reason"))] += 1
            if ts is not None:
                self.times["exits"].append(float(ts))
        elif ev == "kvm_userspace_exit":
            self.userspace[rec.get("reason")] += 1
        elif ev == "kvm_eoi" and ts is not None:
            self.times["EOIs"].append(float(ts))
        v = rec.get("vector")
        if v is not None:
            kind = {"kvm_apic_accept_irq": "accepted", "kvm_inj_virq": "injected",
                    "kvm_nested_vmexit_inject": "reflected to L1", "kvm_eoi": "EOIs",
                    "kvm_msi_set_irq": "MSI routed", "kvm_ioapic_set_irq": "IOAPIC",
                    "kvm_ioapic_delayed_eoi_inj": "delayed EOI inj"}.get(ev)
            if kind:
                self.vectors[v][kind] += 1

    def label(self, sid: int) -> str:
        """A stream's name: ``vCPU N`` when its records say so, else its thread or CPU."""
        s = self.streams[sid]
        if s.vcpus:
            return f"vCPU {s.vcpus.most_common(1)[0][0]}"
        if s.tasks:
            return f"{s.tasks.most_common(1)[0][0]} ({sid})"
        return "trace" if len(self.streams) == 1 else f"stream {sid}"

    def stream_arrays(self, sid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key ids int64 [n], times float64 ns [n], RIPs uint64 [n]) of one stream."""
        s = self.streams[sid]
        return (np.frombuffer(s.tok, dtype=np.int64), np.frombuffer(s.ts, dtype=np.float64),
                np.frombuffer(s.rip, dtype=np.uint64))

    def cpu_streams(self) -> list[int]:
        """Streams that hold VM exits or entries (the vCPU threads), in id order."""
        want = {i for k, i in self.ids.items() if k.startswith(("kvm_exit", "kvm_entry"))}
        return sorted(sid for sid, s in self.streams.items() if want.intersection(s.tok))

    def loops(self) -> dict[int, Loop | None]:
        """The dominant loop of each vCPU stream."""
        out = {}
        for sid in self.cpu_streams():
            tok, ts, rip = self.stream_arrays(sid)
            out[sid] = analyse(tok, self.names, ts, rip,
                               [t.most_common(1)[0][0] if t else "" for t in self.texts])
        return out

    def rates(self, bins: int = RATE_BINS) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        """(bin edges ns [bins+1], {series: events per second [bins]}), None without times."""
        allt = [np.frombuffer(a, dtype=np.float64) for a in self.times.values() if len(a)]
        if not allt:
            return None
        lo = min(float(a.min()) for a in allt)
        hi = max(float(a.max()) for a in allt)
        if hi <= lo:
            return None
        edges = np.linspace(lo, hi, bins + 1)
        width_s = (hi - lo) / bins / 1e9
        return edges, {name: np.histogram(np.frombuffer(a, dtype=np.float64), edges)[0] / width_s
                       for name, a in self.times.items()}
