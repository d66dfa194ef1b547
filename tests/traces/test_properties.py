"""Properties of the line parser and the storm detector over generated input."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from irqlab.traces.cycles import find_loop, label
from irqlab.traces.lines import parse_line

TASK = st.text(alphabet=st.sampled_from("abcXYZ019/:_-. "), min_size=1, max_size=20).filter(
    lambda t: t.strip() == t and not t[-1].isdigit())


@given(task=TASK, pid=st.integers(1, 4_000_000), cpu=st.integers(0, 511),
       sec=st.integers(0, 10**6), frac=st.integers(0, 10**9 - 1), ns=st.booleans(),
       flags=st.sampled_from(["", "d..1 ", "d..2. ", ".N.. ", "dNh2 "]))
def test_a_trace_cmd_line_gives_back_its_parts(task, pid, cpu, sec, frac, ns, flags):
    """Any task name, pid, CPU, flags column and timestamp resolution reads back exactly."""
    ts = f"{sec}.{frac:09d}" if ns else f"{sec}.{frac // 1000:06d}"
    line = f"{task:>16}-{pid:<5} [{cpu:03d}] {flags}{ts}: kvm_eoi:   apicid 0 vector 80"
    p = parse_line(line)
    want_ns = sec * 10**9 + (frac if ns else frac // 1000 * 1000)
    assert (p.task, p.pid, p.cpu, p.ts_ns, p.event, p.rest) == (
        task, pid, cpu, want_ns, "kvm_eoi", "apicid 0 vector 80")


def _primitive(seq: list[int]) -> bool:
    """Not a repetition of a shorter sequence."""
    p = len(seq)
    return all(seq != seq[d:] + seq[:d] for d in range(1, p) if p % d == 0)


@given(loop=st.lists(st.integers(0, 6), min_size=1, max_size=20), reps=st.integers(3, 12),
       head=st.lists(st.integers(0, 6), max_size=15), tail=st.lists(st.integers(0, 6), max_size=15))
def test_the_detector_finds_a_repeated_loop_amid_noise(loop, reps, head, tail):
    """A loop repeated at least three times, between random records, is found with its
    period and every pass of it is labelled."""
    assume(_primitive(loop) and len(head) + len(tail) < len(loop) * reps // 2)
    tok = np.array(head + loop * reps + tail, dtype=np.int64)
    p, start = find_loop(tok)
    assert p == len(loop)
    found = tok[start:start + p].tolist()
    assert any(found == loop[r:] + loop[:r] for r in range(p))  # the loop, at some rotation
    phase = label(tok, tok[start:start + p])
    inside = phase[len(head):len(head) + p * reps]
    assert (inside >= 0).all()
