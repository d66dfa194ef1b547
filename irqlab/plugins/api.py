"""The plugin contract.

A plugin is a class with a ``kind``, a ``name``, a ``version``, a docstring
and a tuple of declared :class:`Param` s, registered through the
``irqlab.plugins`` entry-point group under the name ``KIND.NAME`` (see
:mod:`irqlab.plugins.registry`). It is validated when it registers, not when
it is first called. The scenario compiler validates every use of a plugin in
a ``.scn`` file against these declarations, so a wrong parameter is an error at
its line; the same declarations generate the reference docs (``irqlab plugins
show NAME``, ``irqlab plugins docs``). docs/writing-plugins.md walks through
writing one.

Lanes and the vectorized contract
---------------------------------
The engine runs many *lanes* (one parameter point and seed each) in lockstep;
a batch may hold a single lane (``L = 1``). The same plugin code runs for
every batch size. Every hook receives ``ev.lanes`` (device and arrival
methods: ``lanes``), an ``int64[n]`` array of the lane indices the event
happens in (sorted, never repeated, ``n >= 1``), and per-event arrays of the
same length ``n``, element ``i`` belonging to lane ``ev.lanes[i]``. Return
values are aligned the same way. A hook must:

* read and write only the rows ``ev.lanes`` of any ``[L, ...]`` array (narrowing
  them with masks is fine);
* keep all its state in arrays allocated with ``ctx.state.alloc`` in ``init``
  (shape ``[L, *tail]``) and in its timers, never in Python attributes: the
  instance is shared by every lane and every run of a compiled program, and
  ``self.config`` is read-only;
* draw randomness only from ``ctx.uniform`` / ``ctx.exponential`` (per-lane
  counter-based streams), never from a global generator;
* use only element-wise NumPy operations on lane rows (no reduction across
  lanes; reducing over one lane's own tail, e.g. its pins, is fine), so that a
  lane's result is bit-identical whether it runs alone or at any position in a
  batch of any size, in any backend;
* re-arm a timer in ``on_timer`` if it should fire again (a timer fires once).

Every ``ctx`` operation takes the lane array it acts on; pass only (subsets
of) ``ev.lanes``. :mod:`irqlab.plugins.testing` (``irqlab plugins check``)
checks a scenario's plugins against these rules.

Numeric parameters (``int``, ``float``, ``time``, ``frequency``) may differ
from lane to lane (they can be swept within one batch): read them with
``ctx.param(name, lanes)``, which returns an array aligned with ``lanes``
(times as ``int64`` picoseconds, frequencies in Hz as ``float64``). Other
parameters (``bool``, ``choice``, ``str``, ``file``) are fixed for a compiled
program and arrive in ``self.config``.

A hook that raises fails the runs of the lanes it was called for, with an
error naming the plugin; the batch's other lanes are re-run without them and
give the same results. A plugin that fails to import or to validate is listed
as broken and fails only the scenarios that use it.

Times are ``int64`` picoseconds. ``NEVER`` (the largest ``int64``) means "no
such time".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

KINDS = ("device", "arrival", "service", "policy", "mitigation", "metric", "backend")
PARAM_TYPES = ("int", "float", "time", "frequency", "bool", "choice", "str", "file")
NUMERIC_TYPES = ("int", "float", "time", "frequency")

NEVER = 2**63 - 1


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """A declared plugin parameter.

    ``type`` is one of :data:`PARAM_TYPES`. ``time`` accepts ns/us/ms/s and
    cycles; ``frequency`` accepts Hz/kHz/MHz/GHz. ``min``/``max`` are in base
    units (seconds, Hz, plain numbers) and inclusive. ``default`` is in the
    same form the user would write it (a number for ``time`` means seconds).
    ``validate`` (``file`` parameters): ``validate(absolute_path, span)`` checks
    the file's contents when the scenario is checked, raising a ScenarioError.
    """

    name: str
    type: str
    default: Any = REQUIRED
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    validate: Any = field(default=None, compare=False, repr=False)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES


class Plugin:
    """Base of every plugin. Subclasses set the class attributes below.

    ``config`` holds the non-numeric parameter values of one use (fixed per
    compiled program); numeric ones are read per lane through the context.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, config: Mapping[str, Any] | None = None, *, label: str = "") -> None:
        self.config: dict[str, Any] = dict(config or {})
        self.label = label or self.name

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip()

    @classmethod
    def param(cls, name: str) -> Param | None:
        for p in cls.params:
            if p.name == name:
                return p
        return None

    @classmethod
    def check(cls, site: "Site") -> Iterable[tuple[str, str | None]]:
        """Semantic checks that need the scenario: yield ``(message, param_or_None)``.

        Called when a scenario is lowered; each message becomes an error at the
        plugin's (or the parameter's) line.
        """
        return ()


@dataclass(frozen=True)
class Site:
    """What a plugin's ``check`` and a policy's ``program`` may know of the scenario."""

    irqchip: str = "split"  # split | kernel | none (bare metal: no KVM, the setting is ignored)
    apicv: bool = True
    x2apic: bool = True
    suppress_eoi_broadcast: str = "off"
    nested: bool = True  # the receiving level runs a deeper level (L2)
    receiving_level: str = "L1"
    serviced_locally: bool = False  # the device is serviced at the receiving level
    trigger: str = "level"
    delivery: str = "ioapic"
    levels: tuple[str, ...] = ("L0", "L1", "L2")


# --------------------------------------------------------------------------- devices


class DeviceModel(Plugin):
    """How a device turns arrivals into its interrupt line, and what service does.

    ``on_arrival`` runs for each arrival (work added); it returns ``bool[n]``:
    whether the device raises its interrupt now (asserts a level line or sends
    an edge/MSI). ``on_service`` runs when the servicing driver has finished;
    it returns ``(handled, lower)``: ``bool[n]`` each, whether the driver found
    work (``False`` counts as an unhandled interrupt) and whether the line goes
    low. ``ctx.pending(lanes)`` is the device's unserviced work count.
    """

    kind = "device"

    def init(self, ctx: Any) -> None:
        pass

    def on_arrival(self, ctx: Any, lanes: "np.ndarray") -> "np.ndarray":
        raise NotImplementedError

    def on_service(self, ctx: Any, lanes: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
        raise NotImplementedError


class ArrivalProcess(Plugin):
    """When a device has work: ``first`` gives each lane's first arrival time,
    ``next`` the arrival after one at ``now`` (``int64[n]`` picoseconds; ``NEVER``
    for none)."""

    kind = "arrival"

    def init(self, ctx: Any) -> None:
        pass

    def first(self, ctx: Any, lanes: "np.ndarray") -> "np.ndarray":
        raise NotImplementedError

    def next(self, ctx: Any, lanes: "np.ndarray", now: "np.ndarray") -> "np.ndarray":
        raise NotImplementedError


class ServiceTime(Plugin):
    """How long one service of a device takes: ``sample`` gives one time per lane
    (``int64[n]`` picoseconds, >= 0) for a job starting now. Draw only from
    ``ctx.uniform`` (the device's own service stream), so that a lane's times do
    not depend on the batch, its position or the backend."""

    kind = "service"

    def init(self, ctx: Any) -> None:
        pass

    def sample(self, ctx: Any, lanes: "np.ndarray") -> "np.ndarray":
        raise NotImplementedError


# --------------------------------------------------------------------------- policies

ACTIONS = ("SERVICE", "EOI", "IOAPIC_EOI", "MASK", "UNMASK", "FORWARD", "WAIT", "RETURN")


@dataclass(frozen=True)
class Step:
    """One action of an interrupt handler, done after ``before`` of handler time.

    ``before`` names a ``time`` parameter of the policy, a cost in the
    scenario's ``costs`` block (prefixed ``costs.``), or is ``None`` (no delay).

    Actions:

    ``SERVICE``     service the vector's devices here (their ``service`` time);
                    the driver lowers the line at the end.
    ``EOI``         write the LAPIC EOI register (exits, broadcasts, storms).
    ``IOAPIC_EOI``  write the IOAPIC's EOI register for the vector (directed EOI;
                    needs an IOAPIC with an EOI register: version 0x20, split).
    ``MASK``        mask the vector's IOAPIC pins (a redirection-entry write).
    ``UNMASK``      unmask them (a level pin still asserted fires at once).
    ``FORWARD``     hand the devices to the deeper level (L2) to service.
    ``WAIT``        resume the guest and continue with the next step only once
                    the deeper level has serviced the forwarded devices.
    ``RETURN``      end of handler: ``iret``, or L1's VMRESUME.
    """

    action: str
    before: str | None = None


class HandlerPolicy(Plugin):
    """What the receiving level's interrupt handler does, as a list of steps.

    ``program(site)`` returns the steps for one vector, given whether its
    devices are serviced here (``site.serviced_locally``) or by the deeper
    level. It is called once per vector at compile time, and at registration
    with sample sites to validate the plugin.
    """

    kind = "policy"

    def program(self, site: Site) -> tuple[Step, ...]:
        raise NotImplementedError


# --------------------------------------------------------------------------- mitigations

HOOKS = ("ioapic_eoi", "deliver", "redirect", "immediate_exit", "handler_done", "timer")


@dataclass
class EoiEvent:
    """An EOI broadcast reached a level pin whose Remote IRR it just cleared.

    ``asserted[n]``: the pin is unmasked and its line still high, so it would be
    re-delivered at once. Set ``defer[n] = True`` to hold that re-delivery back
    (the mitigation then owns it, usually through a timer). ``pin`` is the
    IOAPIC pin index (= gsi).
    """

    lanes: "np.ndarray"
    pin: "np.ndarray"
    asserted: "np.ndarray"
    defer: "np.ndarray"


@dataclass
class DeliverEvent:
    """The IOAPIC is about to deliver ``pin`` (already found deliverable).

    Set ``block[n] = True`` to suppress this delivery: the pin keeps its irr and
    the mitigation must later unmask or re-service it.
    """

    lanes: "np.ndarray"
    pin: "np.ndarray"
    block: "np.ndarray"


@dataclass
class RedirectEvent:
    """The guest wrote ``pin``'s redirection entry (masking or unmasking it)."""

    lanes: "np.ndarray"
    pin: "np.ndarray"


@dataclass
class ImmediateExitEvent:
    """L0 is entering L2 but must exit at once to reflect an interrupt to L1.

    ``rip[n]`` identifies L2's current instruction (it changes whenever L2
    has executed anything). Set ``timer[n]`` (picoseconds, default 0) to let
    L2 run that long before the preemption-timer exit.
    """

    lanes: "np.ndarray"
    vcpu: "np.ndarray"
    rip: "np.ndarray"
    timer: "np.ndarray"


@dataclass
class HandlerEvent:
    """An interrupt handler finished servicing ``pin``'s devices here.

    ``handled[n]``: some device had work (False: an unhandled interrupt).
    """

    lanes: "np.ndarray"
    vcpu: "np.ndarray"
    pin: "np.ndarray"
    handled: "np.ndarray"


@dataclass
class TimerEvent:
    """One of the mitigation's timers (index ``timer``) expired in ``lanes``."""

    lanes: "np.ndarray"
    timer: int


class Mitigation(Plugin):
    """A storm mitigation: hooks on the interrupt path plus its own timers.

    Declare the hooks you implement in ``hooks`` (a subset of :data:`HOOKS`;
    each one ``on_<hook>(self, ctx, ev)``, and no other ``on_*`` defined) and
    how many timers you own in ``timers`` (then ``timer`` is a hook too; a
    timer fires once, disarmed, and ``on_timer`` re-arms it if needed).
    ``init(ctx)`` allocates the per-lane state. The context offers:

    * ``ctx.param(name, lanes)`` per-lane parameter values;
    * ``ctx.state.alloc(name, tail, dtype, fill)`` per-lane state ``[L, *tail]``;
    * ``ctx.now(lanes)``; ``ctx.set_timer(lanes, k, t)`` (``t`` int64 ps,
      ``NEVER`` cancels), ``ctx.timer(lanes, k)``;
    * ``ctx.n_pins``; ``ctx.line(lanes, pins)``, ``ctx.irr(lanes, pins)``,
      ``ctx.remote_irr(lanes, pins)``, ``ctx.masked(lanes, pins)``;
    * ``ctx.service_ioapic(lanes)``: deliver every unmasked pin with irr set
      (and, if level, Remote IRR clear), as QEMU's ``ioapic_service`` does;
    * ``ctx.set_mask(lanes, pins, masked)``: write the redirection entries'
      mask bit (unmasking a pending pin delivers it; the ``redirect`` hooks run,
      this mitigation's included);
    * ``ctx.poll(lanes, pins)``: service the pins' devices now, without an
      interrupt (Linux's irqpoll);
    * ``ctx.activated(lanes)``: count an activation in the run's metrics
      (``mitigation_activations_<name>``);
    * ``ctx.trace(lanes, event, text)``: a trace record (``text``: a ``str`` or
      a list of ``n`` strings), shown by ``irqlab trace``.
    """

    kind = "mitigation"
    hooks: ClassVar[frozenset[str]] = frozenset()
    timers: ClassVar[int] = 0
    # kernel support (docs/writing-plugins.md): "module:function" of a kernel_api.kernel_hook
    kernel_hook: ClassVar[str] = ""

    def kernel_state(self, n_pins: int, n_vcpus: int) -> int:
        """The int64 state slots a lane needs for the kernel hook (``kernel_api.state``)."""
        return 0

    def init(self, ctx: Any) -> None:
        pass

    def on_ioapic_eoi(self, ctx: Any, ev: EoiEvent) -> None:
        pass

    def on_deliver(self, ctx: Any, ev: DeliverEvent) -> None:
        pass

    def on_redirect(self, ctx: Any, ev: RedirectEvent) -> None:
        pass

    def on_immediate_exit(self, ctx: Any, ev: ImmediateExitEvent) -> None:
        pass

    def on_handler_done(self, ctx: Any, ev: HandlerEvent) -> None:
        pass

    def on_timer(self, ctx: Any, ev: TimerEvent) -> None:
        pass


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Column:
    """A result column a metric plugin adds: name, ``int``/``float``/``bool``, unit."""

    name: str
    type: str = "float"
    unit: str = ""
    doc: str = ""


class Metric(Plugin):
    """Extra per-run metrics computed from the final state of a batch.

    ``compute(view)`` returns ``{column: array[L]}`` for the declared
    ``columns``. ``view`` offers the built-in per-lane metrics as arrays
    (``view.metric(name)``) and the raw counters (``view.counter(name)``).
    """

    kind = "metric"
    columns: ClassVar[tuple[Column, ...]] = ()

    def compute(self, view: Any) -> dict[str, "np.ndarray"]:
        raise NotImplementedError


# --------------------------------------------------------------------------- backends


class Backend(Plugin):
    """An executor: ``run(program, lanes, trace_lanes=())`` -> ``BatchResult``."""

    kind = "backend"

    def run(self, program: Any, lanes: Any, *, trace_lanes: Iterable[int] = ()) -> Any:
        raise NotImplementedError


BASES: dict[str, type[Plugin]] = {
    "device": DeviceModel,
    "arrival": ArrivalProcess,
    "service": ServiceTime,
    "policy": HandlerPolicy,
    "mitigation": Mitigation,
    "metric": Metric,
    "backend": Backend,
}
