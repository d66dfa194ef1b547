"""Per-event field parsers: the text after ``kvm_exit:`` -> typed columns.

Each parser takes the fields text of one record and returns ``{column: value}``
(columns of :data:`irqlab.traces.schema.FIELD_COLUMNS`), or raises
:class:`FieldError` when a known event's text lacks what every kernel version
prints. Unknown events are not parsed (their text stays in the ``raw`` column).

Format changes across kernel versions are handled by reading fields by their
key rather than by position (sources: ``arch/x86/kvm/trace.h`` and
``include/trace/events/kvm.h`` of kvm-x86/linux @ aebed32e4985, and of the
v4.x/v5.x trees, e.g. ``kvm_exit`` as printed in the 2019 seed thread):

* ``kvm_exit`` / ``kvm_nested_vmexit``: ``reason R rip 0xRIP info I1 I2`` (up to
  v5.9); ``reason R rip 0xRIP info1 0x.. info2 0x.. intr_info 0x.. error_code 0x..``
  (v5.10); the same with ``vcpu N`` in front (v5.12 on). The old
  ``kvm_nested_vmexit`` printed ``rip R reason R info1 I1 info2 I2 int_info X
  int_info_err E`` (hex without 0x) and for a while ``rip: 0x.. reason: ..
  ext_inf1: ..``.
* ``kvm_nested_vmexit_inject``: ``reason R info1 .. int_info ..`` (old) and
  ``reason: R ext_inf1: 0x.. ext_inf2: 0x.. ext_int: 0x.. ext_int_err: 0x..`` (new).
* ``kvm_entry``: ``vcpu N`` (old); ``vcpu N, rip 0x..`` (v5.9 on); with
  ``[immediate exit]`` (v6.9 on).
* ``kvm_apic_accept_irq``: ``(coalesced)`` dropped in v5.x; ``kvm_inj_virq``:
  ``irq N`` (old) and ``IRQ 0xV`` / ``Soft/INTn 0xV`` with ``[reinjected]`` (new).
* ``kvm_nested_vmenter`` (``kvm_nested_vmrun`` before v5.10): ``rip: .. vmcb: ..
  nrip: .. int_ctl: .. event_inj: .. npt: on`` (old) and ``rip: .. vmcs: ..
  nested_rip: .. int_ctl: .. event_inj: .. nested_ept=y nested_eptp: ..`` (new).
"""

from __future__ import annotations

import re
from typing import Callable


class FieldError(ValueError):
    """A known event's fields text cannot be read (message says what is missing)."""


HEX, DEC = 16, 10

# key as printed (after stripping a trailing ':') -> (column, base). Values in KVM's
# trace formats are hex unless printed with %u/%d.
_KV = {
    "vcpu": ("vcpu", DEC),
    "rip": ("rip", HEX),
    "info1": ("info1", HEX), "ext_inf1": ("info1", HEX),
    "info2": ("info2", HEX), "ext_inf2": ("info2", HEX),
    "intr_info": ("intr_info", HEX), "int_info": ("intr_info", HEX), "ext_int": ("intr_info", HEX),
    "error_code": ("error_code", HEX), "int_info_err": ("error_code", HEX),
    "ext_int_err": ("error_code", HEX),
    "vmcb": ("vmcs", HEX), "vmcs": ("vmcs", HEX),
    "nrip": ("nested_rip", HEX), "nested_rip": ("nested_rip", HEX),
    "int_ctl": ("int_ctl", HEX), "event_inj": ("event_inj", HEX),
    "nested_eptp": ("guest_pgd", HEX), "nested_cr3": ("guest_pgd", HEX),
    "guest_cr3": ("guest_pgd", HEX),
}
_STOP = set(_KV) | {"reason", "info", "npt", "nested_ept", "nested_npt"}
_NUM = re.compile(r"^(?:0x)?[0-9a-fA-F]+$")


def _int(word: str, base: int, what: str) -> int:
    w = word.rstrip(",")
    try:
        return int(w, 16) if base == HEX else int(w, 0 if w.startswith("0x") else 10)
    except ValueError:
        raise FieldError(f"{what}: '{word}' is not a number") from None


def _keyed(event: str, text: str) -> dict:
    """Fields of the ``key value key value`` formats, whatever their order and version."""
    words = text.replace(",", " ").replace("=", " ").replace("[", " [").split()
    out: dict = {}
    i, n = 0, len(words)
    while i < n:
        key = words[i].rstrip(":")
        if key == "reason":
            j = i + 1
            while j < n and words[j].rstrip(":") not in _STOP:
                j += 1
            if j == i + 1:
                raise FieldError(f"{event}: 'reason' has no value")
            out["reason"] = " ".join(words[i + 1:j])
            i = j
        elif key == "info" and i + 2 < n:  # old kvm_exit: info I1 I2
            out["info1"] = _int(words[i + 1], HEX, f"{event} info")
            out["info2"] = _int(words[i + 2], HEX, f"{event} info")
            i += 3
        elif key in _KV and i + 1 < n:
            col, base = _KV[key]
            out[col] = _int(words[i + 1], base, f"{event} {key}")
            i += 2
        elif key in ("npt", "nested_ept", "nested_npt") and i + 1 < n:
            out["tdp"] = words[i + 1] in ("on", "y")
            i += 2
        elif key == "[immediate":
            out["immediate_exit"] = True
            i += 2
        elif key == "[guest]":
            out["guest_mode"] = True
            i += 1
        else:
            i += 1
    return out


def _needing(column: str) -> Callable[[str, str], dict]:
    """A parser of the keyed formats that requires ``column`` (every version prints it)."""

    def parser(event: str, text: str) -> dict:
        out = _keyed(event, text)
        if column not in out:
            raise FieldError(f"{event}: no '{column}' field")
        if event == "kvm_entry":
            out.setdefault("immediate_exit", "[immediate exit]" in text)
        return out

    return parser


_exit, _entry, _vmenter = _needing("reason"), _needing("vcpu"), _needing("rip")


_DELIVERY = {"Fixed", "LowPrio", "SMI", "NMI", "INIT", "SIPI", "ExtINT", "Res3", "Res7"}
_PAREN = re.compile(r"\(([^()]*)\)")


def _flags(text: str) -> dict:
    """The ``(Fixed|physical|level)`` and ``(coalesced)`` parts."""
    out: dict = {}
    for group in _PAREN.findall(text):
        for w in group.split("|"):
            w = w.strip()
            if w in _DELIVERY:
                out["delivery"] = w
            elif w in ("physical", "logical"):
                out["dest_mode"] = w
            elif w in ("edge", "level"):
                out["trigger"] = w
            elif w == "rh":
                out["rh"] = True
            elif w == "masked":
                out["masked"] = True
            elif w == "coalesced":
                out["coalesced"] = True
    out.setdefault("coalesced", False)
    return out


def _words(event: str, text: str, spec: dict[str, tuple[str, int]], need: tuple[str, ...]) -> dict:
    """``key value`` pairs in ``spec`` (key -> (column, base)); every key in ``need`` required."""
    words = _PAREN.sub(" ", text).split()
    out: dict = {}
    for i, w in enumerate(words[:-1]):
        if w in spec and spec[w][0] not in out:
            col, base = spec[w]
            out[col] = _int(words[i + 1], base, f"{event} {w}")
    missing = [k for k in need if spec[k][0] not in out]
    if missing:
        raise FieldError(f"{event}: no '{missing[0]}' field")
    return out


def _set_irq(event, text):
    return _words(event, text, {"gsi": ("gsi", DEC), "level": ("level", DEC),
                                "source": ("source", DEC)}, ("gsi", "level"))


def _msi(event, text):
    out = _words(event, text, {"dst": ("dest", HEX), "vec": ("vector", DEC)}, ("dst", "vec"))
    out.update(_flags(text))
    return out


def _ioapic_set_irq(event, text):
    out = _words(event, text, {"pin": ("pin", DEC), "dst": ("dest", HEX), "vec": ("vector", DEC)},
                 ("pin", "vec"))
    out.update(_flags(text))
    return out


def _accept(event, text):
    out = _words(event, text, {"apicid": ("dest", HEX), "vec": ("vector", DEC)}, ("apicid", "vec"))
    out.update(_flags(text))
    return out


def _eoi(event, text):
    return _words(event, text, {"apicid": ("dest", HEX), "vector": ("vector", DEC)},
                  ("apicid", "vector"))


_INJ_NEW = re.compile(r"^(IRQ|Soft/INTn)\s+(0x[0-9a-fA-F]+|\d+)(\s+\[reinjected\])?\s*$")
_INJ_OLD = re.compile(r"^irq\s+(\d+)\s*$")


def _inj_virq(event, text):
    m = _INJ_NEW.match(text.strip())
    if m:
        return {"vector": int(m.group(2), 0), "soft": m.group(1) != "IRQ",
                "reinjected": bool(m.group(3))}
    m = _INJ_OLD.match(text.strip())
    if m:
        return {"vector": int(m.group(1)), "soft": False, "reinjected": False}
    raise FieldError(f"{event}: expected 'irq N' or 'IRQ 0xV', got '{text.strip()}'")


_USER = re.compile(r"^reason\s+(\S+)\s+\((-?\d+)\)")


def _userspace(event, text):
    m = _USER.match(text.strip())
    if not m:
        raise FieldError(f"{event}: expected 'reason NAME (CODE)'")
    return {"reason": m.group(1), "reason_code": int(m.group(2))}


_APIC = re.compile(r"^apic_(read|write)\s+(\S+)\s+=\s+(0x[0-9a-fA-F]+|\d+)")


def _apic(event, text):
    m = _APIC.match(text.strip())
    if not m:
        raise FieldError(f"{event}: expected 'apic_read|apic_write REG = 0xVAL'")
    return {"rw": m.group(1), "reg": m.group(2), "value": int(m.group(3), 0)}


_MSR = re.compile(r"^msr_(read|write)\s+([0-9a-fA-F]+)\s+=\s+(0x[0-9a-fA-F]+|\d+)(\s+\(#GP\))?")


def _msr(event, text):
    m = _MSR.match(text.strip())
    if not m:
        raise FieldError(f"{event}: expected 'msr_read|msr_write MSR = 0xVAL'")
    return {"rw": m.group(1), "msr": int(m.group(2), 16), "value": int(m.group(3), 0),
            "gp": bool(m.group(4))}


_MMIO = re.compile(r"^mmio\s+(\S+)\s+len\s+(\d+)\s+gpa\s+(0x[0-9a-fA-F]+)\s+val\s+(0x[0-9a-fA-F]+)")


def _mmio(event, text):
    m = _MMIO.match(text.strip())
    if not m:
        raise FieldError(f"{event}: expected 'mmio read|write len N gpa 0x.. val 0x..'")
    return {"rw": m.group(1), "length": int(m.group(2)), "gpa": int(m.group(3), 16),
            "value": int(m.group(4), 16)}


def _pic(event, text):
    out = _words(event, text, {"chip": ("irqchip", DEC), "pin": ("pin", DEC)}, ("chip", "pin"))
    out["irqchip"] = f"PIC{out['irqchip']}"
    out.update(_flags(text))
    return out


_ACK = re.compile(r"^irqchip\s+(\S+)\s+pin\s+(\d+)")


def _ack(event, text):
    m = _ACK.match(text.strip())
    if not m:
        raise FieldError(f"{event}: expected 'irqchip NAME pin N'")
    return {"irqchip": m.group(1), "pin": int(m.group(2))}


PARSERS: dict[str, Callable[[str, str], dict]] = {
    "kvm_exit": _exit,
    "kvm_nested_vmexit": _exit,
    "kvm_nested_vmexit_inject": _exit,
    "kvm_entry": _entry,
    "kvm_nested_vmenter": _vmenter,
    "kvm_nested_vmrun": _vmenter,
    "kvm_inj_virq": _inj_virq,
    "kvm_eoi": _eoi,
    "kvm_pv_eoi": _eoi,
    "kvm_apic_accept_irq": _accept,
    "kvm_set_irq": _set_irq,
    "kvm_msi_set_irq": _msi,
    "kvm_ioapic_set_irq": _ioapic_set_irq,
    "kvm_ioapic_delayed_eoi_inj": _msi,
    "kvm_userspace_exit": _userspace,
    "kvm_apic": _apic,
    "kvm_msr": _msr,
    "kvm_mmio": _mmio,
    "kvm_pic_set_irq": _pic,
    "kvm_ack_irq": _ack,
}


def parse_fields(event: str, text: str) -> dict:
    """Typed fields of one record (``{}`` for an event without a parser)."""
    parser = PARSERS.get(event)
    if parser is None:
        return {}
    out = parser(event, text)
    if event == "kvm_nested_vmexit_inject" and "vector" not in out:
        info = out.get("intr_info")
        if info is not None and info & 0x80000000:
            out["vector"] = info & 0xFF
    return out
