"""Plugin discovery through the ``irqlab.plugins`` entry-point group.

Built-in plugins are registered in irqlab's own ``pyproject.toml`` exactly as
a third-party package registers its own: there is no private path. Each entry
point names a class (``module:Class``). Discovery loads every entry point
once per process and validates each class against its kind's contract when it
registers, not when it is first used:

* a class that fails to import or to validate is listed as ``broken`` with
  its reason, and breaks nothing that does not use it;
* two classes of one kind with one name are both marked ``conflict``; using
  that name is an error naming both distributions.
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass, field
from importlib import metadata
from typing import Iterable

from irqlab.errors import ScenarioError, Span, did_you_mean
from irqlab.ir import COSTS
from irqlab.plugins.api import (
    ACTIONS,
    BASES,
    HOOKS,
    KINDS,
    PARAM_TYPES,
    HandlerPolicy,
    Metric,
    Mitigation,
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


class PluginValidationError(Exception):
    """A plugin class does not honour its kind's contract."""


class Registry:
    """Every plugin known to this process, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        self._broken: list[Entry] = []

    # ------------------------------------------------------------------ building

    def add_class(self, cls: type[Plugin], origin: str = "<runtime>", target: str = "") -> Entry:
        """Validate and register a plugin class (used by discovery and by tests)."""
        target = target or f"{cls.__module__}:{cls.__qualname__}"
        try:
            validate(cls)
        except PluginValidationError as e:
            entry = Entry(getattr(cls, "kind", "?") or "?", getattr(cls, "name", "?") or target,
                          None, str(getattr(cls, "version", "?")), origin, target, "broken", str(e))
            self._broken.append(entry)
            return entry
        entry = Entry(cls.kind, cls.name, cls, str(cls.version), origin, target)
        key = (cls.kind, cls.name)
        old = self._entries.get(key)
        if old is not None and old.target != target:
            old.status = entry.status = "conflict"
            old.rivals.append(origin)
            entry.rivals.extend([old.origin, *old.rivals[:-1]])
            return old
        self._entries[key] = entry
        return entry

    def add_broken(self, name: str, origin: str, target: str, reason: str) -> None:
        self._broken.append(Entry("?", name, None, "?", origin, target, "broken", reason))

    # ------------------------------------------------------------------ queries

    def entries(self) -> list[Entry]:
        ok = sorted(self._entries.values(), key=lambda e: (KINDS.index(e.kind), e.name))
        return ok + sorted(self._broken, key=lambda e: e.name)

    def names(self, kind: str) -> list[str]:
        return sorted(n for (k, n) in self._entries if k == kind)

    def find(self, kind: str, name: str) -> Entry | None:
        return self._entries.get((kind, name))

    def get(self, kind: str, name: str, span: Span | None = None) -> type[Plugin]:
        """The class for ``kind``/``name``, or a ScenarioError at ``span``."""
        entry = self._entries.get((kind, name))
        if entry is None:
            broken = [b for b in self._broken if b.name == name]
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
    if not cls.name or not cls.name.replace("_", "a").isalnum() or not cls.name[0].isalpha():
        raise PluginValidationError(f"name {cls.name!r} is not an identifier")
    if not cls.doc():
        raise PluginValidationError("a plugin needs a docstring (its documentation)")
    seen = set()
    for p in cls.params:
        if p.type not in PARAM_TYPES:
            raise PluginValidationError(f"parameter {p.name!r}: type {p.type!r} is not one of {PARAM_TYPES}")
        if p.name in seen:
            raise PluginValidationError(f"parameter {p.name!r} is declared twice")
        seen.add(p.name)
        if p.type == "choice" and not p.choices:
            raise PluginValidationError(f"choice parameter {p.name!r} has no choices")
        if p.type == "choice" and not p.required and p.default not in p.choices:
            raise PluginValidationError(f"default of {p.name!r} is not one of its choices")
    if issubclass(cls, HandlerPolicy):
        _validate_policy(cls)
    if issubclass(cls, Mitigation):
        unknown = set(cls.hooks) - set(HOOKS)
        if unknown:
            raise PluginValidationError(f"unknown hooks {sorted(unknown)}; hooks are {HOOKS}")
        for hook in cls.hooks:
            if getattr(cls, f"on_{hook}") is getattr(Mitigation, f"on_{hook}"):
                raise PluginValidationError(f"declares hook {hook!r} but does not define on_{hook}")
        if cls.timers and "timer" not in cls.hooks:
            raise PluginValidationError("owns timers but does not declare the 'timer' hook")
    if issubclass(cls, Metric):
        if not cls.columns:
            raise PluginValidationError("a metric plugin must declare its columns")
    for method in _required_methods(cls.kind):
        if getattr(cls, method) is getattr(base, method):
            raise PluginValidationError(f"a {cls.kind} plugin must define {method}()")


def _required_methods(kind: str) -> tuple[str, ...]:
    return {
        "device": ("on_arrival", "on_service"),
        "arrival": ("first", "next"),
        "policy": ("program",),
        "metric": ("compute",),
        "backend": ("run",),
        "sink": ("open",),
    }.get(kind, ())


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
        origin = f"{dist.name} {dist.version}" if dist else "<unknown distribution>"
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the others
            reg.add_broken(ep.name, origin, ep.value, f"import failed: {type(e).__name__}: {e}")
            continue
        reg.add_class(obj, origin=origin, target=ep.value)
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
