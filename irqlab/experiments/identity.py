"""Run identity, sweep identity and seeds.

Seeds and common random numbers
-------------------------------
A sweep has one *base seed* (``run.seed`` of the resolved scenario, so
``--set run.seed=7`` changes it). Replication ``r`` of every parameter point
runs as ``Lane(seed=base_seed, spawn_key=(r,))``: the engine draws its streams
from ``numpy.random.SeedSequence(entropy=base_seed, spawn_key=(r,))``. So one
replication index gets the *same* random streams at every point (common
random numbers: differences between points are not blurred by different
arrival draws), different replications get independent streams, and a run's
streams never depend on which batch, lane position or worker ran it.

The point index is deliberately *not* part of the seed; it is part of the
run's identity only.

Run identity
------------
``run_id`` is a stable hash (16 hex digits of SHA-256) of everything the
run's resolved scenario and streams are made of: the ``sweep_id`` (scenario
text, ``--set`` overrides, ``--grid`` axes, base seed, irqlab version), the
point's resolved parameter values and its index, the seed, the spawn key
and the versions of the plugins the scenario uses. The resolved scenario is
a pure function of these, so hashing them identifies it without hashing the
whole scenario at every point. Rerunning a sweep gives every run the same
id (that is how resume finds what is missing); two runs with equal ids
produce equal results.

Runs of different sweeps never share an id, on purpose: a results database
keys runs by ``run_id`` across all the sweeps it holds, and two sweeps that
share a point (an axis extended and run again into the same ``--out``) must
not share a row, or the second sweep could never complete.

``sweep_id`` hashes the scenario text, the command-line overrides and axes,
the base seed and the irqlab version: running the same sweep into the same
output resumes it; a new irqlab version starts a new sweep rather than mixing
two models' results under one id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Iterable, Mapping

from irqlab import __version__
from irqlab.ir import PluginUse, Quantity

ID_HEX = 16


def canonical(obj: Any) -> Any:
    """A JSON-able canonical form of an IR value: dataclass fields that take part
    in equality only (no spans, no spelling), floats by ``repr``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"@": type(obj).__name__}
        for f in dataclasses.fields(obj):
            if f.compare:
                out[f.name] = canonical(getattr(obj, f.name))
        return out
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj) and obj.is_integer():
            return {"f": str(int(obj))}
        return {"f": repr(obj)}
    if isinstance(obj, (tuple, list)):
        return [canonical(x) for x in obj]
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if hasattr(obj, "item"):  # numpy scalar
        return canonical(obj.item())
    return {"repr": repr(obj)}


def digest(obj: Any, n: int = ID_HEX) -> str:
    """``n`` hex digits of the SHA-256 of the canonical JSON of ``obj``."""
    text = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def text_hash(text: str) -> str:
    """SHA-256 of a scenario's text (full length: it names the exact source)."""
    return hashlib.sha256(text.encode()).hexdigest()


def plugin_uses(scenario: Any) -> set[tuple[str, str]]:
    """Every ``(kind, name)`` of a plugin the scenario uses."""
    found: set[tuple[str, str]] = set()

    def walk(x: Any) -> None:
        if isinstance(x, PluginUse):
            found.add((x.kind, x.name))
        if dataclasses.is_dataclass(x) and not isinstance(x, type) and not isinstance(x, Quantity):
            for f in dataclasses.fields(x):
                if f.compare:
                    walk(getattr(x, f.name))
        elif isinstance(x, (tuple, list)):
            for y in x:
                walk(y)

    walk(scenario)
    return found


def plugin_versions(uses: Iterable[tuple[str, str]] | None = None) -> dict[str, str]:
    """``{"kind.name": "version (distribution)"}`` for the given plugins (all if None)."""
    from irqlab.plugins.registry import registry

    reg = registry()
    out: dict[str, str] = {}
    if uses is None:
        for e in reg.entries():
            if e.status == "ok":
                out[f"{e.kind}.{e.name}"] = f"{e.version} ({e.origin})"
        return out
    for kind, name in sorted(uses):
        e = reg.find(kind, name)
        out[f"{kind}.{name}"] = f"{e.version} ({e.origin})" if e is not None else "?"
    return out


def point_digest(sweep: str, params: Mapping[str, Any], point: int,
                 plugins: Mapping[str, str] | None = None, version: str = __version__) -> str:
    """The part of a run's identity its replications share (hashed once per point)."""
    return digest({
        "sweep": sweep,
        "params": dict(params),
        "point": point,
        "plugins": dict(plugins or {}),
        "irqlab": version,
    }, 32)


def replication_id(point_id: str, seed: int, spawn_key: tuple[int, ...]) -> str:
    """A run's id from its point's digest, its seed and its spawn key."""
    text = f"{point_id}|{int(seed)}|{','.join(str(int(k)) for k in spawn_key)}"
    return hashlib.sha256(text.encode()).hexdigest()[:ID_HEX]


def run_id(sweep: str, params: Mapping[str, Any], point: int, seed: int,
           spawn_key: tuple[int, ...], plugins: Mapping[str, str] | None = None,
           version: str = __version__) -> str:
    """The stable identity of one run (see the module docstring)."""
    return replication_id(point_digest(sweep, params, point, plugins, version), seed, spawn_key)


def sweep_id(scenario_text: str, overrides: Mapping[str, str], axes: Iterable[tuple[str, Iterable[str]]],
             base_seed: int, version: str = __version__) -> str:
    """The stable identity of a sweep: same inputs, same id, so a rerun resumes."""
    return digest({
        "text": text_hash(scenario_text),
        "set": dict(overrides),
        "grid": [[p, list(v)] for p, v in axes],
        "seed": base_seed,
        "irqlab": version,
    })


def lane_seed(base_seed: int, replication: int) -> tuple[int, tuple[int, ...]]:
    """``(seed, spawn_key)`` of replication ``replication``: the same at every point (CRN)."""
    return base_seed, (replication,)
