"""Reference documentation generated from plugin declarations.

Everything here reads only what a plugin class declares (``kind``, ``name``,
``version``, its docstring, ``params``, and for mitigations ``hooks`` and
``timers``, for metrics ``columns``), so the reference cannot drift from the
code: ``docs/plugins.md`` is ``irqlab plugins docs --dist irqlab`` and a test
fails when the two differ. ``irqlab plugins show NAME`` uses the same rows.
"""

from __future__ import annotations

import inspect
from typing import Iterable

from irqlab.ir import Quantity, format_quantity
from irqlab.plugins.api import KINDS, Metric, Mitigation, Param, Plugin

KIND_TITLES = {
    "device": "Device models",
    "arrival": "Arrival processes",
    "service": "Service-time distributions",
    "policy": "Handler policies",
    "mitigation": "Mitigations",
    "metric": "Metrics",
    "backend": "Executor backends",
}

#: Where a plugin of each kind is named in a scenario: (lines before, the plugin's
#: keyword, lines after); the plugin's own line is indented by its nesting.
USAGE = {
    "device": (["device uhci {"], "model", ["}"]),
    "arrival": (["device uhci {"], "arrival", ["}"]),
    "service": (["device uhci {"], "service", ["}"]),
    "policy": (["vcpu 0 {", "    L1 hyperv {"], "policy", ["    }", "}"]),
    "mitigation": ([], "mitigation", []),
    "metric": (["run {"], "metric", ["}"]),
    "backend": (["run {"], "backend", ["}"]),
}


def usage(cls: type[Plugin]) -> str:
    """How to use the plugin in a .scn file, every parameter at its default
    (``<type>`` for a required one)."""
    before, word, after = USAGE[cls.kind]
    pad = "    " * len(before)
    if cls.kind == "backend":
        return "\n".join([*before, f"{pad}backend {cls.name}", *after])
    lines = [*before]
    if cls.params:
        lines.append(f"{pad}{word} {cls.name} {{")
        for p in cls.params:
            value = f"<{p.type}>" if p.required else format_value(p, p.default)
            lines.append(f"{pad}    {p.name} {value}")
        lines.append(f"{pad}}}")
    else:
        lines.append(f"{pad}{word} {cls.name}")
    return "\n".join(lines + after)


#: The unit a parameter's value is written in, by type.
UNITS = {
    "int": "",
    "float": "",
    "time": "s",
    "frequency": "Hz",
    "bool": "",
    "choice": "",
    "str": "",
    "file": "path",
}

_BASE_UNIT = {"time": "s", "frequency": "Hz"}


def format_value(p: Param, v: object) -> str:
    """A declared value (default or bound) as a user would write it in a .scn file."""
    if isinstance(v, Quantity):
        return format_quantity(v)
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (int, float)) and v == 0:
        return "0"
    if isinstance(v, (int, float)) and p.type in _BASE_UNIT:
        return format_quantity(Quantity(float(v), _BASE_UNIT[p.type]))
    if isinstance(v, float) and p.type == "int" and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return format_quantity(Quantity(float(v)))
    return str(v)


def format_default(p: Param) -> str:
    return "(required)" if p.required else format_value(p, p.default)


def format_range(p: Param) -> str:
    """``[lo, hi]``, ``>= lo``, ``<= hi``, the choices, or ``""``."""
    if p.choices:
        return " | ".join(p.choices)
    lo = None if p.min is None else format_value(p, p.min)
    hi = None if p.max is None else format_value(p, p.max)
    if lo is not None and hi is not None:
        return f"{lo} .. {hi}"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return ""


def param_rows(cls: type[Plugin]) -> list[dict[str, str]]:
    """One row per declared parameter: name, type, unit, default, range, sweep, doc.

    ``sweep`` says how the value reaches the plugin: ``per lane`` (numeric:
    ``ctx.param``) or ``per program`` (``self.config``).
    """
    return [{
        "name": p.name,
        "type": p.type,
        "unit": UNITS[p.type],
        "default": format_default(p),
        "range": format_range(p),
        "sweep": "per lane" if p.numeric else "per program",
        "doc": p.doc,
    } for p in cls.params]


def doc_text(cls: type[Plugin]) -> str:
    """The class docstring, dedented (the plugin's documentation)."""
    return inspect.cleandoc(cls.__doc__ or "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def render_plugin(cls: type[Plugin], origin: str = "", level: int = 3) -> str:
    """Markdown for one plugin: heading, version/origin, doc, usage, parameters,
    hooks and timers (mitigations), columns (metrics)."""
    h = "#" * level
    lines = [f"{h} `{cls.name}`", ""]
    meta = f"{cls.kind}, version {cls.version}"
    if origin:
        meta += f", from {origin}"
    lines += [f"*{meta}*", "", doc_text(cls), ""]
    lines += ["```", usage(cls), "```", ""]
    if cls.params:
        lines += _table(["parameter", "type", "default", "range", "varies", "meaning"],
                        ([r["name"], r["type"], r["default"], r["range"], r["sweep"], r["doc"]]
                         for r in param_rows(cls)))
    else:
        lines.append("No parameters.")
    lines.append("")
    if issubclass(cls, Mitigation):
        hooks = ", ".join(f"`{x}`" for x in sorted(cls.hooks)) or "none"
        lines += [f"Hooks: {hooks}. Timers: {cls.timers}.", ""]
    if issubclass(cls, Metric):
        lines += _table(["column", "type", "unit", "meaning"],
                        ([c.name, c.type, c.unit, c.doc] for c in cls.columns))
        lines.append("")
    return "\n".join(lines)


def render(classes: Iterable[tuple[type[Plugin], str]], title: str = "Plugin reference",
           intro: str = "") -> str:
    """Markdown for ``(class, origin)`` pairs, one section per kind, names sorted."""
    by_kind: dict[str, list[tuple[type[Plugin], str]]] = {k: [] for k in KINDS}
    for cls, origin in classes:
        by_kind[cls.kind].append((cls, origin))
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro.strip(), ""]
    present = [k for k in KINDS if by_kind[k]]
    lines += ["| kind | plugins |", "|---|---|"]
    lines += [f"| {KIND_TITLES[k]} | " + ", ".join(f"[`{c.name}`](#{c.name})" for c, _ in
                                                  sorted(by_kind[k], key=lambda x: x[0].name)) + " |"
              for k in present]
    lines.append("")
    for k in present:
        lines += [f"## {KIND_TITLES[k]} (`{k}`)", ""]
        for cls, origin in sorted(by_kind[k], key=lambda x: x[0].name):
            lines += [render_plugin(cls, origin).rstrip("\n"), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def generated_note(command: str) -> str:
    return f"<!-- Generated from the plugins' declarations by `{command}`; do not edit by hand. -->"


BUILTIN_COMMAND = "irqlab plugins docs --dist irqlab -o docs/plugins.md"

BUILTIN_INTRO = (
    "Every plugin irqlab ships, generated from its declarations. Each is registered in\n"
    "irqlab's `pyproject.toml` under the `irqlab.plugins` entry-point group, exactly as a\n"
    "third-party plugin is (see `docs/writing-plugins.md`). Parameters that *vary per lane*\n"
    "(numbers, times, frequencies) can be swept within one vectorized batch; the others are\n"
    "fixed per compiled program. A `time` is written with a unit (`ns`, `us`, `ms`, `s`, or\n"
    "`cycles` of the TSC), a `frequency` too (`Hz`, `kHz`, `MHz`, `GHz`); a `file` is a path\n"
    "relative to the scenario file.\n"
    "`irqlab plugins` lists what is installed, `irqlab plugins show NAME` prints one entry."
)


def render_registry(reg, dist: str | None = None) -> str:
    """Markdown for every ``ok`` plugin of a registry (of one distribution if ``dist``).

    For ``dist="irqlab"`` this is ``docs/plugins.md`` (origins left out: they are all
    irqlab, and its version would churn the file).
    """
    entries = [e for e in reg.entries() if e.cls is not None and e.status == "ok"
               and (dist is None or e.dist == dist)]
    if dist == "irqlab":
        return render(((e.cls, "") for e in entries), "Built-in plugins",
                      generated_note(BUILTIN_COMMAND) + "\n\n" + BUILTIN_INTRO)
    command = "irqlab plugins docs" + (f" --dist {dist}" if dist else "")
    return render(((e.cls, e.origin) for e in entries),
                  f"Plugins of {dist}" if dist else "Plugin reference", generated_note(command))
