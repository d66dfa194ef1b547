"""Lowering of guest actions: ``at TIME [every PERIOD] { write; ... }`` (docs/model.md,
"Guest actions: route changes").

A write is ``ioapic GSI [dest N] [mask | unmask]`` (one write of pin GSI's redirection
entry; fields not named keep their value) or ``msi DEVICE dest N`` (the device's MSI
message gets a new destination). ``TIME`` and ``PERIOD`` are sweepable
(``action.<k>.at``, ``action.<k>.every``, k counting the scenario's actions from 0);
the pin, the device and the destination are part of the program's structure, so they
are literal numbers and names.
"""

from __future__ import annotations

from typing import Any

from irqlab import ir
from irqlab.dsl.syntax import Stmt
from irqlab.errors import did_you_mean
from irqlab.ir import Name, Num
from irqlab.resolve import ACTION_TIME, Spec

WRITE_HEADS = ("ioapic", "msi")
_NUM = Spec("number", integer=True, min=0, store="int")


def lower_at(lw: Any, st: Stmt) -> ir.Action | None:
    """The action of one ``at`` statement (None after an error, reported through ``lw.err``).
    ``lw``: the scenario body's lowerer (its ``err`` and ``value``)."""
    args = list(st.args)
    if not args:
        lw.err("at needs a time", st.head_span, hint="write 'at 3ms { ioapic 23 dest 1 }'")
        return None
    at = lw.value(args[0], ACTION_TIME, "at")
    every: Any = ir.Quantity(0.0, "s", "0")
    rest = args[1:]
    if len(rest) == 1 and _is_every_minus(rest[0]):  # 'every -1us' reads as 'every - 1us'
        rest = [rest[0].left, ir.Unary(span=rest[0].right.span, op="-", operand=rest[0].right)]
    if rest:
        if not (isinstance(rest[0], Name) and rest[0].name == "every") or len(rest) != 2:
            lw.err("at takes a time, then optionally 'every PERIOD'", rest[0].span,
                   hint="write 'at 3ms every 1ms { ... }'")
            return None
        every = lw.value(rest[1], ACTION_TIME, "every")
    if st.block is None:
        lw.err("at needs a block of writes: at 3ms { ioapic 23 dest 1 }", st.span)
        return None
    writes = []
    for inner in st.block.stmts:
        w = _write(lw, inner)
        if w is not None:
            writes.append(w)
    if not st.block.stmts:
        lw.err("at needs at least one write in its block", st.block.span,
               hint="ioapic GSI [dest N] [mask|unmask], or msi DEVICE dest N")
    if at is None or every is None or len(writes) != len(st.block.stmts):
        return None
    return ir.Action(at=at, every=every, writes=tuple(writes), span=st.span)


def _is_every_minus(a: Any) -> bool:
    return (isinstance(a, ir.Binary) and a.op == "-" and isinstance(a.left, Name)
            and a.left.name == "every")


def _literal(lw: Any, a: Any, what: str) -> int | None:
    if not isinstance(a, Num):
        lw.err(f"{what} must be a number written out: it is part of the program's structure",
               getattr(a, "span", None))
        return None
    v = lw.value(a, _NUM, what)
    return v if isinstance(v, int) else None


def _write(lw: Any, st: Any) -> ir.RouteWrite | None:
    if not isinstance(st, Stmt) or st.head not in WRITE_HEADS:
        head = getattr(st, "head", None)
        span = getattr(st, "head_span", None) or getattr(st, "span", None)
        lw.err(f"unknown write '{head}' in an at block" if head else "an at block holds writes", span,
               hint=(did_you_mean(head, WRITE_HEADS) if head else None)
               or "ioapic GSI [dest N] [mask|unmask], or msi DEVICE dest N")
        return None
    if st.tail is not None:
        lw.err(f"{st.head} takes words and numbers, not a block or '='", st.tail.span)
        return None
    args = list(st.args)
    if not args:
        lw.err(f"{st.head} needs a {'pin' if st.head == 'ioapic' else 'device'}", st.head_span)
        return None
    if st.head == "ioapic":
        gsi = _literal(lw, args[0], "ioapic's pin")
        device = ""
    else:
        if not isinstance(args[0], Name) or "." in args[0].name:
            lw.err("msi needs a device name", args[0].span)
            return None
        gsi, device = -1, args[0].name
    dest = mask = None
    i = 1
    ok = gsi is not None
    while i < len(args):
        a = args[i]
        word = a.name if isinstance(a, Name) else None
        if word == "dest" and i + 1 < len(args) and dest is None:
            dest = _literal(lw, args[i + 1], "dest")
            ok = ok and dest is not None
            i += 2
            continue
        if st.head == "ioapic" and word in ("mask", "unmask") and mask is None:
            mask = word == "mask"
            i += 1
            continue
        fields = "dest N, mask, unmask" if st.head == "ioapic" else "dest N"
        lw.err(f"unexpected '{word or 'value'}' in {st.head} write", a.span,
               hint=(did_you_mean(word, ("dest", "mask", "unmask")) if word else None) or
               f"{st.head} takes {fields}, each at most once")
        return None
    if not ok:
        return None
    if dest is None and mask is None:
        lw.err(f"{st.head} write changes nothing", st.span,
               hint="name a new destination (dest N)" + (", mask or unmask" if st.head == "ioapic" else ""))
        return None
    return ir.RouteWrite(st.head, gsi, device, dest, mask, st.span)
