"""Plugin discovery through the ``irqlab.plugins`` entry-point group.

Built-in plugins are registered in irqlab's own ``pyproject.toml`` exactly as
a third-party package registers its own: there is no private path. Each entry
point is named ``KIND.NAME`` and names a class (``module:Class``) whose
``kind`` and ``name`` are those::

    [project.entry-points."irqlab.plugins"]
    "mitigation.token_bucket" = "irqlab_tokenbucket:TokenBucket"

Discovery loads every entry point once per process and validates each class
against its kind's contract when it registers, not when it is first used:

* a class that fails to import or to validate is listed as ``broken`` with
  its reason, and breaks nothing that does not use it (a scenario that uses
  it gets an error at the line that names it);
* two classes of one kind with one name are both marked ``conflict``; using
  that name is an error naming both distributions.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import Iterable

from irqlab.errors import ScenarioError, Span, did_you_mean
from irqlab.ir import COSTS, Quantity
from irqlab.plugins.api import (
    ACTIONS,
    BASES,
    HOOKS,
    KINDS,
    PARAM_TYPES,
    Column,
    HandlerPolicy,
    Metric,
    Mitigation,
    Param,
    Plugin,
    Site,
)

GROUP = "irqlab.plugins"


@dataclass
class Entry:
    """One registered (or broken) plugin."""

    kind: str
    name: str
    cls: type[Plugin] | None
    version: str
    origin: str  # distribution name and version, or "<runtime>"
    target: str  # module:Class
    status: str = "ok"  # ok | broken | conflict
    reason: str = ""
    rivals: list[str] = field(default_factory=list)
    dist: str = ""  # the distribution's name alone ("" for classes added at runtime)

    @property
    def summary(self) -> str:
        """The first sentence of the plugin's documentation ("" if broken)."""
        if self.cls is None:
            return ""
        para = " ".join(self.cls.doc().split("\n\n", 1)[0].split())
        end = para.find(". ")
        return para[: end + 1] if end >= 0 else para


class PluginValidationError(Exception):
    """A plugin class does not honour its kind's contract."""


class Registry:
    """Every plugin known to this process, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        self._conflicts: dict[tuple[str, str], list[Entry]] = {}  # rivals of _entries[key]
        self._broken: list[Entry] = []

    # ------------------------------------------------------------------ building

    def add_class(self, cls: type[Plugin], origin: str = "<runtime>", target: str = "",
                  dist: str = "", ep_name: str = "") -> Entry:
        """Validate and register a plugin class (used by discovery and by tests).

        ``ep_name`` is the entry point's name (``KIND.NAME``), checked against the
        class; a class that fails validation is registered as ``broken``.
        """
        target = target or f"{getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', repr(cls))}"
        try:
            validate(cls)
            if ep_name and ep_name != f"{cls.kind}.{cls.name}":
                raise PluginValidationError(
                    f"entry point '{ep_name}' must be named '{cls.kind}.{cls.name}' "
                    f"(KIND.NAME of the class it loads)")
        except Exception as e:  # noqa: BLE001 - whatever is wrong with it, the plugin is broken
            if not isinstance(e, PluginValidationError):
                e = PluginValidationError(f"validation raised {type(e).__name__}: {e}")
            kind, name = _split_ep_name(ep_name)
            kind = kind or _attr(cls, "kind") or "?"
            name = name or _attr(cls, "name") or target
            entry = Entry(kind, name, None, str(_attr(cls, "version") or "?"), origin, target,
                          "broken", str(e), dist=dist)
            self._broken.append(entry)
            return entry
        entry = Entry(cls.kind, cls.name, cls, str(cls.version), origin, target, dist=dist)
        key = (cls.kind, cls.name)
        old = self._entries.get(key)
        if old is not None and old.target != target:
            group = [old, *self._conflicts.get(key, [])]
            for e in group:
                e.status = "conflict"
                e.rivals.append(origin)
            entry.status = "conflict"
            entry.rivals.extend(e.origin for e in group)
            self._conflicts.setdefault(key, []).append(entry)
            return entry
        self._entries[key] = entry
        return entry

    def add_broken(self, ep_name: str, origin: str, target: str, reason: str, dist: str = "") -> Entry:
        """Record a plugin that could not be loaded (``ep_name``: ``KIND.NAME``)."""
        kind, name = _split_ep_name(ep_name)
        entry = Entry(kind or "?", name or ep_name, None, "?", origin, target, "broken", reason, dist=dist)
        self._broken.append(entry)
        return entry

    # ------------------------------------------------------------------ queries

    def entries(self) -> list[Entry]:
        """Every plugin, registered, conflicting or broken, by kind then name."""
        rank = {k: i for i, k in enumerate(KINDS)}
        out = list(self._entries.values()) + [e for c in self._conflicts.values() for e in c]
        out += self._broken
        return sorted(out, key=lambda e: (rank.get(e.kind, len(KINDS)), e.name, e.status != "ok", e.origin))

    def names(self, kind: str) -> list[str]:
        return sorted(n for (k, n) in self._entries if k == kind)

    def find(self, kind: str, name: str) -> Entry | None:
        return self._entries.get((kind, name))

    def get(self, kind: str, name: str, span: Span | None = None) -> type[Plugin]:
        """The class for ``kind``/``name``, or a ScenarioError at ``span``."""
        entry = self._entries.get((kind, name))
        if entry is None:
            broken = [b for b in self._broken if b.name == name and b.kind in (kind, "?")]
            if broken:
                raise ScenarioError(
                    f"{kind} plugin '{name}' is installed but broken: {broken[0].reason}", span,
                    hint=f"from {broken[0].origin} ({broken[0].target}); see 'irqlab plugins'")
            raise ScenarioError(f"unknown {kind} '{name}'", span,
                                hint=did_you_mean(name, self.names(kind)) or
                                f"known {kind}s: {', '.join(self.names(kind)) or 'none'}")
        if entry.status == "conflict":
            who = " and ".join([entry.origin, *entry.rivals])
            raise ScenarioError(f"two plugins are registered as {kind} '{name}': {who}", span,
                                hint="uninstall one of the distributions")
        assert entry.cls is not None
        return entry.cls

    def lookup(self, name: str) -> list[Entry]:
        """Every entry (any kind, any status) with this name."""
        return [e for e in self.entries() if e.name == name]


def _split_ep_name(ep_name: str) -> tuple[str, str]:
    """``"mitigation.token_bucket"`` -> ``("mitigation", "token_bucket")``; ``("", "")``
    if the name does not start with a kind."""
    kind, _, name = ep_name.partition(".")
    return (kind, name) if kind in KINDS and name else ("", "")


def _attr(cls: object, name: str) -> str:
    v = getattr(cls, name, "")
    return v if isinstance(v, str) else ""


# --------------------------------------------------------------------------- validation


def validate(cls: type) -> None:
    """Check a plugin class against its kind's contract; raise PluginValidationError."""
    if not isinstance(cls, type) or not issubclass(cls, Plugin):
        raise PluginValidationError(f"{cls!r} is not a subclass of irqlab.plugins.api.Plugin")
    if cls.kind not in KINDS:
        raise PluginValidationError(f"kind {cls.kind!r} is not one of {', '.join(KINDS)}")
    base = BASES[cls.kind]
    if not issubclass(cls, base):
        raise PluginValidationError(f"a {cls.kind} plugin must subclass {base.__name__}")
    if not isinstance(cls.name, str) or not cls.name.isidentifier() or not cls.name[0].isalpha():
        raise PluginValidationError(f"name {cls.name!r} is not an identifier")
    if not isinstance(cls.version, str) or not cls.version:
        raise PluginValidationError(f"version {cls.version!r} must be a non-empty string")
    if not cls.doc():
        raise PluginValidationError("a plugin needs a docstring (its documentation)")
    if not isinstance(cls.params, tuple):
        raise PluginValidationError("params must be a tuple of irqlab.plugins.api.Param")
    seen = set()
    for p in cls.params:
        if not isinstance(p, Param):
            raise PluginValidationError(f"params holds {p!r}, which is not a Param")
        if p.name in seen:
            raise PluginValidationError(f"parameter {p.name!r} is declared twice")
        seen.add(p.name)
        validate_param(p)
    if issubclass(cls, HandlerPolicy):
        _validate_policy(cls)
    if issubclass(cls, Mitigation):
        hooks = cls.hooks
        if not isinstance(hooks, (frozenset, set, tuple)):
            raise PluginValidationError("hooks must be a frozenset of hook names")
        unknown = set(hooks) - set(HOOKS)
        if unknown:
            raise PluginValidationError(f"unknown hooks {sorted(unknown)}; hooks are {HOOKS}")
        for hook in HOOKS:
            defined = getattr(cls, f"on_{hook}") is not getattr(Mitigation, f"on_{hook}")
            if hook in hooks and not defined:
                raise PluginValidationError(f"declares hook {hook!r} but does not define on_{hook}")
            if defined and hook not in hooks:
                raise PluginValidationError(f"defines on_{hook} but does not declare hook {hook!r} "
                                            f"in hooks (it would never be called)")
        if not isinstance(cls.timers, int) or isinstance(cls.timers, bool) or cls.timers < 0:
            raise PluginValidationError(f"timers must be a whole number >= 0, not {cls.timers!r}")
        if cls.timers and "timer" not in hooks:
            raise PluginValidationError("owns timers but does not declare the 'timer' hook")
        if "timer" in hooks and not cls.timers:
            raise PluginValidationError("declares the 'timer' hook but owns no timers (set timers = N)")
    if issubclass(cls, Metric):
        if not cls.columns:
            raise PluginValidationError("a metric plugin must declare its columns")
        names = set()
        for c in cls.columns:
            if not isinstance(c, Column):
                raise PluginValidationError(f"columns holds {c!r}, which is not a Column")
            if c.type not in ("int", "float", "bool"):
                raise PluginValidationError(f"column {c.name!r}: type {c.type!r} is not int, float or bool")
            if not c.name.isidentifier() or c.name in names:
                raise PluginValidationError(f"column name {c.name!r} is not a new identifier")
            names.add(c.name)
    for method in _required_methods(cls.kind):
        if getattr(cls, method) is getattr(base, method):
            raise PluginValidationError(f"a {cls.kind} plugin must define {method}()")
    _validate_signatures(cls)


def validate_param(p: Param) -> None:
    """Check one declared parameter: type, name, choices, range, and the default
    against them (raise PluginValidationError)."""
    where = f"parameter {p.name!r}"
    if not isinstance(p.name, str) or not p.name.isidentifier():
        raise PluginValidationError(f"{where}: the name is not an identifier")
    if p.type not in PARAM_TYPES:
        raise PluginValidationError(f"{where}: type {p.type!r} is not one of {', '.join(PARAM_TYPES)}")
    if p.type == "choice":
        if not p.choices or not all(isinstance(c, str) for c in p.choices):
            raise PluginValidationError(f"{where}: a choice parameter needs its choices (strings)")
    elif p.choices:
        raise PluginValidationError(f"{where}: only a choice parameter has choices")
    if (p.min is not None or p.max is not None) and not p.numeric:
        raise PluginValidationError(f"{where}: only numeric parameters have a range")
    for bound in (p.min, p.max):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                  or math.isnan(bound)):
            raise PluginValidationError(f"{where}: range bounds must be numbers, not {bound!r}")
    if p.min is not None and p.max is not None and p.min > p.max:
        raise PluginValidationError(f"{where}: min {p.min} is above max {p.max}")
    if p.required:
        return
    d = p.default
    if p.type == "choice":
        if d not in p.choices:
            raise PluginValidationError(f"{where}: default {d!r} is not one of its choices "
                                        f"{', '.join(p.choices)}")
        return
    if p.type == "bool":
        if not isinstance(d, bool):
            raise PluginValidationError(f"{where}: default {d!r} is not a bool")
        return
    if p.type in ("str", "file"):
        if not isinstance(d, str):
            raise PluginValidationError(f"{where}: default {d!r} is not a string")
        return
    if p.type == "time" and isinstance(d, str) and d.startswith("costs."):
        if d[6:] not in COSTS:
            raise PluginValidationError(f"{where}: default {d!r} names no cost "
                                        f"(costs: {', '.join(COSTS)})")
        return
    unit = {"int": "", "float": "", "time": "s", "frequency": "Hz"}[p.type]
    if isinstance(d, Quantity):
        if d.unit != unit and not (p.type == "time" and d.unit == "cycles"):
            raise PluginValidationError(f"{where}: default {d} is not a {p.type}")
        value = d.value
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        value = float(d)
    else:
        raise PluginValidationError(f"{where}: default {d!r} is not a number "
                                    f"({'seconds' if unit == 's' else unit or 'plain'})")
    if math.isnan(value):
        raise PluginValidationError(f"{where}: default is NaN")
    if p.type == "int" and not float(value).is_integer():
        raise PluginValidationError(f"{where}: default {d!r} is not a whole number")
    if isinstance(d, Quantity) and d.unit == "cycles":
        return  # its value in seconds depends on the machine's TSC
    if (p.min is not None and value < p.min) or (p.max is not None and value > p.max):
        raise PluginValidationError(f"{where}: default {d!r} is outside its range "
                                    f"[{p.min if p.min is not None else '-inf'}, "
                                    f"{p.max if p.max is not None else 'inf'}]")


def _required_methods(kind: str) -> tuple[str, ...]:
    return {
        "device": ("on_arrival", "on_service"),
        "arrival": ("first", "next"),
        "service": ("sample",),
        "policy": ("program",),
        "metric": ("compute",),
        "backend": ("run",),
    }.get(kind, ())


# How the engine calls each method: positional arguments after self, then keywords.
_CALLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "__init__": (("config",), ("label",)),
    "init": (("ctx",), ()),
    "on_arrival": (("ctx", "lanes"), ()),
    "on_service": (("ctx", "lanes"), ()),
    "first": (("ctx", "lanes"), ()),
    "sample": (("ctx", "lanes"), ()),
    "next": (("ctx", "lanes", "now"), ()),
    "program": (("site",), ()),
    "compute": (("view",), ()),
    "run": (("program", "lanes"), ("trace_lanes",)),
    "open": (("target",), ()),
    **{f"on_{h}": (("ctx", "ev"), ()) for h in HOOKS},
}


def _validate_signatures(cls: type[Plugin]) -> None:
    """Every method the plugin overrides accepts the arguments the engine passes it,
    and ``check`` is still a classmethod."""
    base = BASES[cls.kind]
    for method, (args, kwargs) in _CALLS.items():
        fn = getattr(cls, method, None)
        if fn is None or fn is getattr(base, method, None) or fn is getattr(Plugin, method, None):
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue  # a builtin or C callable: nothing to check
        try:
            sig.bind(None, *args, **{k: None for k in kwargs})
        except TypeError as e:
            want = ", ".join(("self", *args, *(f"{k}=..." for k in kwargs)))
            raise PluginValidationError(f"{method}{sig} cannot be called as {method}({want}): {e}") from None
    if not isinstance(inspect.getattr_static(cls, "check"), classmethod):
        raise PluginValidationError("check must be a classmethod: check(cls, site)")


def sample_sites() -> Iterable[Site]:
    """Representative sites a policy's program must handle."""
    for irqchip, local, trigger, suppress, apicv in itertools.product(
        ("kernel", "split"), (True, False), ("edge", "level"), ("off", "quirk", "on"), (True, False)
    ):
        yield Site(irqchip=irqchip, apicv=apicv, suppress_eoi_broadcast=suppress, nested=not local,
                   serviced_locally=local, trigger=trigger,
                   levels=("L0", "L1") if local else ("L0", "L1", "L2"))


def _validate_policy(cls: type[HandlerPolicy]) -> None:
    time_params = {p.name for p in cls.params if p.type == "time"}
    defaults = {p.name: p.default for p in cls.params if not p.required}
    try:
        inst = cls(defaults)
    except Exception as e:  # noqa: BLE001 - reported as a broken plugin
        raise PluginValidationError(f"cannot be constructed with its defaults: {e}") from e
    for site in sample_sites():
        try:
            steps = tuple(inst.program(site))
        except Exception as e:  # noqa: BLE001
            raise PluginValidationError(f"program({site}) raised {type(e).__name__}: {e}") from e
        check_program(steps, site, time_params)


def check_program(steps: tuple, site: Site, time_params: set[str]) -> None:
    """The rules every handler program obeys (raises PluginValidationError)."""
    if not steps or steps[-1].action != "RETURN":
        raise PluginValidationError(f"program for {site} must end with RETURN")
    for s in steps:
        if s.action not in ACTIONS:
            raise PluginValidationError(f"unknown action {s.action!r}; actions are {ACTIONS}")
        if s.before is not None:
            if s.before.startswith("costs."):
                if s.before[6:] not in COSTS:
                    raise PluginValidationError(f"step waits on unknown cost {s.before!r}")
            elif s.before not in time_params:
                raise PluginValidationError(f"step waits on {s.before!r}, which is not a time parameter")
    actions = [s.action for s in steps]
    if actions.count("RETURN") != 1:
        raise PluginValidationError("RETURN must appear exactly once, at the end")
    if site.serviced_locally and ("FORWARD" in actions or "WAIT" in actions):
        raise PluginValidationError("FORWARD/WAIT make no sense when the device is serviced locally")
    if not site.serviced_locally and "SERVICE" in actions:
        raise PluginValidationError("SERVICE makes no sense when the device is serviced by a deeper level")
    if "WAIT" in actions and "FORWARD" not in actions[: actions.index("WAIT")]:
        raise PluginValidationError("WAIT must come after FORWARD")
    if actions.count("WAIT") > 1:
        raise PluginValidationError("at most one WAIT")


# --------------------------------------------------------------------------- discovery

_REGISTRY: Registry | None = None


def discover(group: str = GROUP) -> Registry:
    """Load every entry point of ``group`` into a fresh registry."""
    reg = Registry()
    eps = metadata.entry_points(group=group)
    for ep in sorted(eps, key=lambda e: (e.dist.name if e.dist else "", e.name)):
        dist = ep.dist
        name = dist.name if dist else ""
        origin = f"{dist.name} {dist.version}" if dist else "<unknown distribution>"
        try:
            obj = ep.load()
        except BaseException as e:  # noqa: BLE001 - a broken plugin must not break the others
            if isinstance(e, (KeyboardInterrupt, GeneratorExit)):
                raise
            reg.add_broken(ep.name, origin, ep.value, f"import failed: {type(e).__name__}: {e}", dist=name)
            continue
        reg.add_class(obj, origin=origin, target=ep.value, dist=name, ep_name=ep.name)
    return reg


def registry() -> Registry:
    """The process-wide registry (discovered on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = discover()
    return _REGISTRY


def reset() -> None:
    """Forget the discovered registry (tests that install plugins call this)."""
    global _REGISTRY
    _REGISTRY = None
    importlib.invalidate_caches()


def instantiate(kind: str, use, label: str = "") -> Plugin:
    """An instance of the plugin for an ``ir.PluginUse``, configured with its
    non-numeric parameters."""
    cls = registry().get(kind, use.name, use.span)
    config = {}
    for p in cls.params:
        if not p.numeric:
            config[p.name] = use.get(p.name, None if p.required else p.default)
    return cls(config, label=label or use.name)
