"""The context object a plugin's hooks receive.

One class serves every executor backend: it forwards to a small set of
*engine operations* (``op_*`` methods, ``now``, ``params``, ``draw``) that each
backend implements over lane arrays. A plugin therefore sees the same API in
the lockstep executor, with any number of lanes (one included).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from irqlab.engine.rng import exponential
from irqlab.plugins.api import NEVER


class PluginState:
    """Per-lane arrays a plugin owns: ``alloc(name, tail, dtype, fill)`` -> ``[L, *tail]``."""

    def __init__(self, n_lanes: int) -> None:
        self.n_lanes = n_lanes
        self._arrays: dict[str, np.ndarray] = {}

    def alloc(self, name: str, tail: tuple[int, ...] = (), dtype: Any = np.int64, fill: Any = 0) -> np.ndarray:
        arr = np.full((self.n_lanes, *tail), fill, dtype=dtype)
        self._arrays[name] = arr
        return arr

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self._arrays

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def take(self, rows: np.ndarray) -> "PluginState":
        """A copy holding only ``rows`` (for rerunning a subset of lanes)."""
        out = PluginState(len(rows))
        out._arrays = {k: v[rows].copy() for k, v in self._arrays.items()}
        return out


class PluginContext:
    """What a plugin may touch. See :mod:`irqlab.plugins.api` for the contract.

    ``label`` names the plugin in errors; ``path`` is the prefix of its
    parameters (``mitigation.qemu_eoi_throttle``); ``stream`` its random stream.
    """

    NEVER = NEVER

    def __init__(self, engine: Any, *, label: str, path: str, stream: int, n_lanes: int,
                 index: int = -1, timer_base: int = 0, device: int = -1) -> None:
        self.engine = engine
        self.label = label
        self.path = path
        self.stream = stream
        self.index = index
        self.timer_base = timer_base
        self.device = device
        self.state = PluginState(n_lanes)
        self.n_pins: int = engine.program.n_pins
        self.n_vcpus: int = engine.program.n_vcpus

    # parameters and randomness
    def param(self, name: str, lanes: np.ndarray) -> np.ndarray:
        return self.engine.params[f"{self.path}.{name}"][lanes]

    def uniform(self, lanes: np.ndarray) -> np.ndarray:
        return self.engine.draw(lanes, self.stream)

    def exponential(self, lanes: np.ndarray, mean: np.ndarray) -> np.ndarray:
        return exponential(self.uniform(lanes), np.asarray(mean, dtype=np.float64))

    def timer_unit_ps(self, lanes: np.ndarray) -> np.ndarray:
        """Picoseconds per VMX preemption-timer unit (2**rate TSC cycles)."""
        p = self.engine.params
        return np.ldexp(1e12, p["machine.preemption_timer_rate"][lanes]) / p["machine.tsc"][lanes]

    # time and timers
    def now(self, lanes: np.ndarray) -> np.ndarray:
        return self.engine.now[lanes]

    def timer(self, lanes: np.ndarray, k: int) -> np.ndarray:
        return self.engine.op_timer(lanes, self.timer_base + k)

    def set_timer(self, lanes: np.ndarray, k: int, t: np.ndarray) -> None:
        self.engine.op_set_timer(lanes, self.timer_base + k, np.asarray(t, dtype=np.int64))

    # the IOAPIC
    def line(self, lanes, pins):
        return self.engine.op_pin(lanes, pins, "line")

    def irr(self, lanes, pins):
        return self.engine.op_pin(lanes, pins, "irr")

    def remote_irr(self, lanes, pins):
        return self.engine.op_pin(lanes, pins, "remote_irr")

    def masked(self, lanes, pins):
        return self.engine.op_pin(lanes, pins, "masked")

    def service_ioapic(self, lanes: np.ndarray, level_only: bool = False) -> None:
        self.engine.op_service_all(lanes, level_only)

    def set_mask(self, lanes: np.ndarray, pins: np.ndarray, masked: bool) -> None:
        self.engine.op_set_mask(lanes, np.asarray(pins, dtype=np.int64), bool(masked))

    def poll(self, lanes: np.ndarray, pins: np.ndarray) -> None:
        self.engine.op_poll(lanes, np.asarray(pins, dtype=np.int64))

    # bookkeeping
    def activated(self, lanes: np.ndarray) -> None:
        self.engine.op_activated(lanes, self.index)

    def trace(self, lanes: np.ndarray, event: str, text: Any) -> None:
        self.engine.op_trace(lanes, event, text)

    # device models
    def pending(self, lanes: np.ndarray) -> np.ndarray:
        return self.engine.op_pending(lanes, self.device)

    def set_pending(self, lanes: np.ndarray, values: np.ndarray) -> None:
        self.engine.op_set_pending(lanes, self.device, np.asarray(values, dtype=np.int64))


class PluginFailure(Exception):
    """A plugin raised during a run; carries the plugin's label."""

    def __init__(self, label: str, kind: str, error: BaseException) -> None:
        self.label = label
        self.kind = kind
        self.error = error
        super().__init__(f"{kind} plugin '{label}' raised {type(error).__name__}: {error}")


def call_plugin(ctx: PluginContext, kind: str, fn, *args):
    """Call a plugin hook, turning any exception into a :class:`PluginFailure`."""
    try:
        return fn(ctx, *args)
    except PluginFailure:
        raise
    except Exception as e:  # noqa: BLE001 - a plugin's bug fails its runs, not the sweep
        raise PluginFailure(ctx.label, kind, e) from e


def plugin_contexts(engine: Any, n_lanes: int):
    """The contexts of a program's plugins for one executor: ``(arrival, model,
    mitigation)`` lists, each context with its own random stream (device d's arrival
    process: stream d, its model: 100 + d, mitigation m: 200 + m). Both executors
    build them here, so a lane draws the same numbers in either."""
    p = engine.program

    def ctx(label, path, stream, **kw):
        return PluginContext(engine, label=label, path=path, stream=stream, n_lanes=n_lanes, **kw)

    arrival = [ctx(d.arrival.label, d.arrival_path, d.index, device=d.index) for d in p.devices]
    model = [ctx(d.model.label, d.model_path, 100 + d.index, device=d.index) for d in p.devices]
    mitigation = [ctx(m.label, m.path, 200 + m.index, index=m.index, timer_base=m.timer_base)
                  for m in p.mitigations]
    return arrival, model, mitigation


def body_contexts(engine: Any, n_lanes: int) -> list[PluginContext | None]:
    """Per vector group, the context its random body times are drawn from (stream 400 + g), or
    None for a constant body."""
    return [None if g.body_dist == "constant" else
            PluginContext(engine, label=g.policy, path=g.body_path, stream=400 + g.index, n_lanes=n_lanes)
            for g in engine.program.groups]


def is_body_step(group: Any, pc: int) -> bool:
    """Whether step ``pc`` of ``group`` waits for a random body time."""
    return group.body_dist != "constant" and group.before[pc] == f"{group.body_path}.body"


def service_contexts(engine: Any, n_lanes: int) -> list[PluginContext | None]:
    """Per device, the context of its service-time distribution (stream 300 + d), or None
    for a constant service time."""
    return [None if d.service_dist is None else
            PluginContext(engine, label=d.service_dist.label, path=d.service, stream=300 + d.index,
                          n_lanes=n_lanes, device=d.index)
            for d in engine.program.devices]


def init_plugins(engine: Any, lanes: np.ndarray) -> list[np.ndarray]:
    """Run every plugin's ``init`` (arrival processes, device models, mitigations, in that
    order) and return each device's first arrival times (``int64[n]``)."""
    p = engine.program
    for d in p.devices:
        call_plugin(engine.ctx_arrival[d.index], "arrival", d.arrival.init)
        call_plugin(engine.ctx_model[d.index], "device", d.model.init)
    for m in p.mitigations:
        call_plugin(engine.ctx_mit[m.index], "mitigation", m.plugin.init)
    for d in p.devices:
        if d.service_dist is not None:
            call_plugin(engine.ctx_service[d.index], "service", d.service_dist.init)
    return [np.asarray(call_plugin(engine.ctx_arrival[d.index], "arrival", d.arrival.first, lanes),
                       dtype=np.int64) for d in p.devices]


def _plugins(program: Any):
    for d in program.devices:
        yield d.arrival_path, "arrival", d.arrival
        yield d.model_path, "device", d.model
    for m in program.mitigations:
        yield m.path, "mitigation", m.plugin
    for d in program.devices:
        if d.service_dist is not None:
            yield d.service, "service", d.service_dist


def _fingerprint(plugin: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for key in sorted(vars(plugin)):
        value = vars(plugin)[key]
        h.update(key.encode())
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def plugin_fingerprints(program: Any) -> dict[str, str]:
    """A digest of every plugin instance's attributes, taken after ``init``."""
    return {path: _fingerprint(p) for path, _, p in _plugins(program)}


def check_fingerprints(program: Any, before: dict[str, str]) -> None:
    """Fail the run (a PluginFailure) if a plugin changed its own attributes during it: a
    plugin instance is shared by every run of a program, so its per-run state must live in
    ``ctx.state``, or a run's result would depend on which runs came before it."""
    for path, kind, plugin in _plugins(program):
        if _fingerprint(plugin) != before.get(path):
            raise PluginFailure(plugin.label, kind, RuntimeError(
                "it changed its own attributes during the run; per-run state must live in ctx.state"))
