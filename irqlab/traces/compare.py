"""Aligning the model's steady-state loop with a trace's, record by record.

The loops are cycles, so the model's is rotated to the start that agrees with
the trace's at the most steps (the first such rotation). Records are compared
by their keys (:func:`irqlab.traces.cycles.record_key`); fields outside the key
(the trigger mode, say) are compared apart, on each step's most common text,
guest addresses left out, and reported without failing the match. Where the loops differ
the first difference is located with a sequence alignment (difflib), so an
extra or missing record shows as such rather than as a shifted tail.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from irqlab.traces.cycles import Loop


@dataclass(frozen=True)
class Alignment:
    """The trace's loop and the model's, rotated to match.

    ``model_keys``/``model_steps`` are the model's loop from step ``shift``; ``match`` is
    True when the keys agree record by record; ``first_diff`` is None or
    ``(trace index, model index, what)`` of the first disagreement."""

    trace_keys: tuple[str, ...]
    model_keys: tuple[str, ...]
    trace_steps: tuple[float | None, ...]
    model_steps: tuple[float | None, ...]
    shift: int
    match: bool
    first_diff: tuple[int, int, str] | None
    field_diffs: tuple[tuple[int, str, str], ...] = ()  # (step, trace text, model text)


_ADDRESSES = re.compile(r"\b(rip:?|nested_rip:?|vmc[sb]:?|gpa)\s+(?:0x)?[0-9a-fA-F]+")


def _fields(text: str) -> str:
    """A fields text without its guest addresses (a machine's and a model's differ anyway)."""
    return " ".join(_ADDRESSES.sub(r"\1 ...", text).split())


def rotate(seq: tuple, r: int) -> tuple:
    return tuple(seq[r:]) + tuple(seq[:r])


def align(trace: Loop, model: Loop) -> Alignment:
    """The model's loop rotated onto the trace's, and where they first differ."""
    t, m = trace.keys, model.keys
    scores = [sum(a == b for a, b in zip(t, rotate(m, r))) for r in range(len(m))]
    r = max(range(len(m)), key=lambda i: (scores[i], -i))
    mk, ms = rotate(m, r), rotate(model.steps_ns, r)
    first = None
    if mk != t:
        ops = difflib.SequenceMatcher(None, t, mk, autojunk=False).get_opcodes()
        tag, i1, _, j1, _ = next(op for op in ops if op[0] != "equal")
        what = {"replace": "differ", "delete": "only in the trace", "insert": "only in the model"}[tag]
        first = (i1, j1, what)
    diffs = []
    if trace.texts and model.texts:
        mt = rotate(model.texts, r)
        for k, (a, b) in enumerate(zip(trace.texts, mt)):
            if k < len(mk) and t[k] == mk[k] and _fields(a) != _fields(b):
                diffs.append((k, a, b))
    return Alignment(t, mk, trace.steps_ns, ms, r, mk == t, first, tuple(diffs))
