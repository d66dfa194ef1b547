"""The storm detector: the dominant repeating cycle of events in one stream.

A stream is the records of one thread (one vCPU), in order, as keys
(:func:`record_key`: the event name with the fields that say *what* happened:
the exit reason, the vector, the GSI; not the RIP or the time) and segment
breaks (an excerpt's end, lost events), across which nothing repeats.

:func:`find_loop` tries every period ``p`` up to :data:`MAX_PERIOD` and measures
how many records lie in stretches where each key equals the key ``p`` records
later. The period covering the most records in stretches of at least three
whole passes wins; among equals, the one with the longest stretch (a shorter
period that only repeats inside each pass, like ``0 0 0`` in ``0 0 0 1 1 1``,
has short stretches), then the smallest (so a multiple of the true period never
does). If no stretch repeats three times (a short excerpt: the seed quotes one pass and
a record), the period with the most records repeated in one stretch wins, then
the longest stretch, then the smallest period. The loop is
read off where that stretch starts. :func:`label` then walks the whole stream
and gives each record its step in the loop (-1 outside it), re-entering the
loop where the records that follow agree with it longest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

MAX_PERIOD = 256
MAX_WINDOW = 200_000  # records over which the period is searched (the loop is then labelled everywhere)


def record_key(rec: dict) -> str:
    """What a record says happened, for comparing records: ``'kvm_exit EOI_INDUCED'``,
    ``'kvm_eoi vec 80'``, ``'kvm_set_irq gsi 23 level 1'``..."""
    ev = rec["event"]
    if ev in ("kvm_exit", "kvm_nested_vmexit", "kvm_userspace_exit"):
        return f"{ev} {rec.get('reason')}"
    if ev == "kvm_nested_vmexit_inject":
        v = rec.get("vector")
        return f"{ev} {rec.get('reason')}" + (f" vec {v}" if v is not None else "")
    if ev == "kvm_set_irq":
        return f"{ev} gsi {rec.get('gsi')} level {rec.get('level')}"
    if ev in ("kvm_ioapic_set_irq", "kvm_pic_set_irq", "kvm_ack_irq") and "pin" in rec:
        return f"{ev} pin {rec['pin']}"
    if ev == "kvm_apic":
        return f"{ev} {rec.get('rw')} {rec.get('reg')}"
    if ev == "kvm_msr":
        return f"{ev} {rec.get('rw')} {rec.get('msr', 0):#x}"
    if ev == "kvm_mmio":
        return f"{ev} {rec.get('rw')} {rec.get('gpa', 0):#x}"
    if "vector" in rec:
        return f"{ev} vec {rec['vector']}"
    return ev


def find_loop(tok: np.ndarray) -> tuple[int, int] | None:
    """``(period, start)`` of the dominant loop in ``tok`` (int64 ``[n]``: key ids >= 0, a
    segment break as a unique negative id), or None if no key sequence repeats at all."""
    n = min(len(tok), MAX_WINDOW)
    tok = tok[:n]
    brk = np.concatenate(([0], np.cumsum(tok < 0)))  # breaks before each index
    best_strong = (0, 0, 0, 0)  # (coverage, longest stretch, -period, its start)
    best_any = (0, 0, 0, 0)  # (records repeated, their stretch, -period, its start)
    for p in range(1, min(MAX_PERIOD, n - 1) + 1):
        eq = (tok[:-p] == tok[p:]) & (tok[:-p] >= 0)
        if not eq.any():
            continue
        d = np.diff(np.concatenate(([0], eq.view(np.int8), [0])))
        starts = np.flatnonzero(d == 1)
        lens = np.flatnonzero(d == -1) - starts
        inside = brk[starts + lens + p] == brk[starts]  # the stretch crosses no segment break
        starts, lens = starts[inside], lens[inside]
        if not len(lens):
            continue
        i = int(np.argmax(lens))
        best_any = max(best_any, (int(lens[i]), int(lens[i]) + p, -p, int(starts[i])))
        strong = lens >= 2 * p  # stretches of at least three whole passes
        if strong.any():
            cover = int((lens[strong] + p).sum())
            j = int(np.argmax(lens[strong]))
            best_strong = max(best_strong, (cover, int(lens[strong][j]) + p, -p, int(starts[strong][j])))
    if best_strong[0]:
        return -best_strong[2], best_strong[3]
    if not best_any[0]:
        return None
    return -best_any[2], best_any[3]


def label(tok: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """The step (0..p-1) of each record of ``tok`` in ``loop`` (``[p]`` key ids), -1 outside it.

    Inside the loop a record continues it if it is the next step's key; otherwise the loop is
    entered at the step whose continuation matches the records that follow longest (at least
    a whole pass, or to the end of the segment, and at least two records)."""
    p = len(loop)
    n = len(tok)
    phase = np.full(n, -1, dtype=np.int64)
    at: dict[int, list[int]] = {}
    for j, key in enumerate(loop.tolist()):
        at.setdefault(key, []).append(j)
    t = tok.tolist()
    seg_end = np.empty(n, dtype=np.int64)  # index of the next break (or n)
    nxt = n
    for i in range(n - 1, -1, -1):
        if t[i] < 0:
            nxt = i
        seg_end[i] = nxt
    lp = loop.tolist()
    k = -1
    for i in range(n):
        x = t[i]
        if k >= 0 and x == lp[(k + 1) % p]:
            k = (k + 1) % p
            phase[i] = k
            continue
        k = -1
        best_m, best_j = 0, -1
        for j in at.get(x, ()):
            m = 0
            while i + m < n and m <= p and t[i + m] == lp[(j + m) % p]:
                m += 1
            if m > best_m:
                best_m, best_j = m, j
        if best_j >= 0 and best_m >= min(p, int(seg_end[i]) - i) and (best_m >= 2 or p == 1):
            k = best_j
            phase[i] = k
    return phase


@dataclass(frozen=True)
class Loop:
    """A stream's dominant loop.

    ``keys[k]`` is step k's record key; ``steps_ns[k]`` the median time from step k's record
    to the next one (None without timestamps); ``rips`` the most common guest RIP of each
    exit step ``(k, key, rip)``; ``passes`` the whole passes seen; ``covered`` the records
    inside the loop, of ``total`` in the stream; ``period_ns`` (median, std, min, max) of
    the time between successive starts of a pass, None without timestamps.
    """

    keys: tuple[str, ...]
    passes: int
    covered: int
    total: int
    steps_ns: tuple[float | None, ...]
    period_ns: tuple[float, float, float, float] | None
    rips: tuple[tuple[int, str, int], ...]
    step_samples: int = 0  # passes whose step durations were measured
    texts: tuple[str, ...] = ()  # the most common fields text of each step's key


def analyse(tok: np.ndarray, names: list[str], ts: np.ndarray, rip: np.ndarray,
            texts: list[str] | None = None) -> Loop | None:
    """The dominant loop of one stream: ``tok`` int64 ``[n]`` (see :func:`find_loop`),
    ``names[id]`` the key of an id, ``ts`` float64 ``[n]`` ns (NaN if unknown), ``rip``
    uint64 ``[n]`` (0 if none), ``texts[id]`` the most common fields text of a key."""
    found = find_loop(tok)
    if found is None:
        return None
    p, start = found
    loop = tok[start:start + p]
    phase = label(tok, loop)
    n = len(tok)
    cont = np.zeros(n, dtype=bool)  # record i continues the loop from record i-1
    if n > 1:
        cont[1:] = (phase[1:] >= 0) & (phase[:-1] >= 0) & (phase[1:] == (phase[:-1] + 1) % p)
    # runs of continuing records: a pass is complete when p consecutive steps 0..p-1 are seen
    passes = 0
    run = 0
    for i in range(n):
        run = run + 1 if cont[i] else (1 if phase[i] >= 0 else 0)
        if phase[i] == p - 1 and run >= p:
            passes += 1
    steps: list[float | None] = []
    timed = not np.isnan(ts).all()
    nsamp = 0
    for k in range(p):
        idx = np.flatnonzero((phase[:-1] == k) & cont[1:])
        d = ts[idx + 1] - ts[idx] if timed else np.array([])
        d = d[~np.isnan(d)]
        nsamp = max(nsamp, len(d))
        steps.append(float(np.median(d)) if len(d) else None)
    period = None
    if timed:
        starts = np.flatnonzero(phase == 0)
        ok = [(a, b) for a, b in zip(starts[:-1], starts[1:]) if b - a == p and cont[a + 1:b + 1].all()]
        if ok:
            d = np.array([ts[b] - ts[a] for a, b in ok])
            d = d[~np.isnan(d)]
            if len(d):
                period = (float(np.median(d)), float(d.std()), float(d.min()), float(d.max()))
    rips = []
    for k in range(p):
        key = names[int(loop[k])]
        if key.startswith(("kvm_exit", "kvm_nested_vmexit ")):
            r = rip[phase == k]
            r = r[r != 0]
            if len(r):
                rips.append((k, key, Counter(r.tolist()).most_common(1)[0][0]))
    return Loop(tuple(names[int(x)] for x in loop), passes, int((phase >= 0).sum()),
                int((tok >= 0).sum()), tuple(steps), period, tuple(rips), nsamp,
                tuple(texts[int(x)] for x in loop) if texts else ())
