"""Types, units and meanings of result columns.

Metrics take theirs from :data:`irqlab.engine.result.METRICS` and
``DEVICE_METRICS`` (and from metric plugins' declared ``columns``).
Parameters are stored in base units (seconds, Hz, plain numbers); their unit
is inferred from the path (the IR's field defaults, ``costs``, the plugins'
declared parameter types) unless the sweep states it
(:attr:`SweepInfo.param_units`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

PREFIXES = ("exits.", "userspace_exits.", "mitigation_activations.")


def metric_info(flat_name: str, dtype_kind: str = "f") -> tuple[str, str, str]:
    """``(type, unit, meaning)`` of a flat metric name; ``type`` is float|int|bool.

    ``dtype_kind`` (numpy ``dtype.kind``) decides the type of an unknown metric.
    """
    from irqlab.engine.result import DEVICE_METRICS, METRICS

    if flat_name in METRICS:
        return METRICS[flat_name]
    if flat_name.startswith("device."):
        base = flat_name.rsplit(".", 1)[-1]
        if base in DEVICE_METRICS:
            typ, unit, doc = DEVICE_METRICS[base]
            return typ, unit, f"{flat_name.split('.')[1]}: {doc}"
    if flat_name.startswith("exits."):
        return "int", "", f"kvm_exit events with reason {flat_name[6:]}"
    if flat_name.startswith("userspace_exits."):
        return "int", "", f"exits to the VMM's userspace with reason {flat_name[16:]}"
    if flat_name.startswith("mitigation_activations."):
        return "int", "", f"times mitigation {flat_name[23:]} acted"
    if flat_name.startswith("expect_"):  # irqlab.expect.columns
        what = "every expectation" if flat_name == "expect_pass" else f"expectation {flat_name[7:]}"
        return "bool", "", f"{what} of the sweep's expect block held in this run"
    col = _plugin_column(flat_name)
    if col is not None:
        return col
    typ = {"b": "bool", "i": "int", "u": "int"}.get(dtype_kind, "float")
    return typ, "ns" if flat_name.endswith("_ns") else "", ""


def _plugin_column(flat_name: str) -> tuple[str, str, str] | None:
    try:
        from irqlab.plugins.registry import registry

        reg = registry()
        base = flat_name.rsplit(".", 1)[-1]
        for name in reg.names("metric"):
            cls = reg.find("metric", name).cls
            for c in getattr(cls, "columns", ()):
                if c.name in (flat_name, base):
                    return (getattr(c, "type", "float"), getattr(c, "unit", ""),
                            getattr(c, "doc", "") or getattr(c, "description", ""))
    except Exception:  # noqa: BLE001 - units are a convenience, never a failure
        return None
    return None


def _unit_of_default(value: Any) -> str | None:
    from irqlab.ir import Quantity

    if isinstance(value, Quantity):
        return {"s": "s", "cycles": "s", "Hz": "Hz"}.get(value.unit, "")
    return None


def _field_unit(cls: type, name: str) -> str | None:
    for f in dataclasses.fields(cls):
        if f.name == name:
            default = f.default
            if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            u = _unit_of_default(default)
            return "" if u is None else u
    return None


def _plugin_param_unit(kind: str, plugin: str | None, param: str) -> str | None:
    from irqlab.plugins.registry import registry

    reg = registry()
    names = [plugin] if plugin else reg.names(kind)
    units = set()
    for n in names:
        e = reg.find(kind, n)
        if e is None or e.cls is None:
            continue
        for p in getattr(e.cls, "params", ()):
            if p.name == param:
                units.add({"time": "s", "frequency": "Hz"}.get(p.type, ""))
    return units.pop() if len(units) == 1 else None


def param_unit(path: str) -> str:
    """The unit of a parameter's stored value by canonical path: ``s``, ``Hz`` or ``""``."""
    try:
        from irqlab import ir

        segs = path.split(".")
        head = segs[0]
        if head == "machine" and len(segs) == 2:
            return _field_unit(ir.Machine, segs[1]) or ""
        if head == "run" and len(segs) == 2:
            return _field_unit(ir.RunSpec, segs[1]) or ""
        if head == "costs":
            return "s"
        if head == "mitigation" and len(segs) == 3:
            return _plugin_param_unit("mitigation", segs[1], segs[2]) or ""
        if head == "device" and len(segs) == 3:
            u = _field_unit(ir.Device, segs[2])
            return u if u is not None else (_plugin_param_unit("device", None, segs[2]) or "")
        if head == "device" and len(segs) == 4 and segs[2] in ("arrival", "policy"):
            return _plugin_param_unit(segs[2], None, segs[3]) or ""
        if head == "vcpu" and segs[-2] == "policy":
            return _plugin_param_unit("policy", None, segs[-1]) or ""
    except Exception:  # noqa: BLE001 - units are a convenience, never a failure
        return ""
    return ""
