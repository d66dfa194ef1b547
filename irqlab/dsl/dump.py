"""A readable dump of a scenario's IR (``irqlab lower``): one node per line,
fields as ``name: value``, spans and source left out."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from irqlab import ir


def expr_text(e: Any) -> str:
    """An expression in the language's own syntax."""
    if isinstance(e, ir.Num):
        return str(e.value)
    if isinstance(e, ir.Name):
        return e.name
    if isinstance(e, ir.Unary):
        inner = expr_text(e.operand)
        if e.op == "%":
            return f"{inner}%"
        return f"not {inner}" if e.op == "not" else f"{e.op}{inner}"
    if isinstance(e, ir.Binary):
        return f"({expr_text(e.left)} {e.op} {expr_text(e.right)})"
    if isinstance(e, ir.Call):
        return f"{e.func}({', '.join(expr_text(a) for a in e.args)})"
    if isinstance(e, ir.Within):
        return f"({expr_text(e.value)} within {expr_text(e.tolerance)} of {expr_text(e.target)})"
    return value_text(e)


def top_text(e: Any) -> str:
    """An expression without the parentheses around its outermost operator."""
    t = expr_text(e)
    return t[1:-1] if isinstance(e, (ir.Binary, ir.Within)) else t


def value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, ir.Quantity):
        return ir.format_quantity(v) if not v.text else f"{v.text}"
    if isinstance(v, ir.Expr):
        return "= " + expr_text(v)
    if v is None:
        return "-"
    return str(v)


def _plugin(u: ir.PluginUse) -> str:
    args = ", ".join(f"{a.name} {value_text(a.value)}" for a in u.args)
    return f"{u.name}({args})" if args else u.name


def dump(obj: Any, indent: int = 0) -> str:
    lines: list[str] = []
    _dump(obj, indent, lines, None)
    return "\n".join(lines)


_SKIP = {"span", "source", "field_spans"}


def _dump(obj: Any, ind: int, out: list[str], label: str | None) -> None:
    pad = "  " * ind
    head = f"{pad}{label}: " if label else pad
    if isinstance(obj, ir.PluginUse):
        out.append(f"{head}{obj.kind} {_plugin(obj)}")
        return
    if isinstance(obj, ir.Expectation):
        out.append(f"{pad}{top_text(obj.expr)}")
        return
    if isinstance(obj, (ir.Arg, ir.ParamDef)):
        out.append(f"{pad}{obj.name}: {value_text(obj.value)}")
        return
    if isinstance(obj, ir.Expr):
        out.append(f"{head}{expr_text(obj)}")
        return
    if label == "vector" and isinstance(obj, int) and not isinstance(obj, bool):
        out.append(f"{head}0x{obj:02X}")
        return
    if isinstance(obj, (ir.Quantity, str, bool, int, float)) or obj is None:
        out.append(f"{head}{value_text(obj)}")
        return
    if isinstance(obj, tuple):
        if not obj:
            out.append(f"{head}[]")
            return
        if all(isinstance(x, (ir.Quantity, str, bool, int, float, ir.Expr)) for x in obj):
            out.append(f"{head}[{', '.join(value_text(x) if not isinstance(x, ir.Expr) else expr_text(x) for x in obj)}]")
            return
        out.append(f"{head.rstrip()}" if label else pad + "-")
        for x in obj:
            _dump(x, ind + 1, out, None)
        return
    if is_dataclass(obj):
        name = type(obj).__name__
        title = getattr(obj, "name", None) if isinstance(getattr(obj, "name", None), str) else None
        if isinstance(obj, ir.Vcpu):
            title = str(obj.index)
        if isinstance(obj, ir.LevelSpec):
            pol = f" policy {_plugin(obj.policy)}" if obj.policy else ""
            out.append(f"{pad}{obj.level}{' ' + obj.name if obj.name else ''}{pol}")
            return
        if isinstance(obj, (ir.Axis, ir.Dist, ir.Derived)):
            title = obj.path
        out.append(f"{head}{name}{' ' + title if title else ''}")
        for f in fields(obj):
            if f.name in _SKIP or (f.name in ("name", "path") and title):
                continue
            _dump(getattr(obj, f.name), ind + 1, out, f.name)
        return
    out.append(f"{head}{obj!r}")
