"""Built-in executor backends."""

from __future__ import annotations

from irqlab.plugins.api import Backend


class Lockstep(Backend):
    """The vectorized NumPy executor: all lanes advance in lockstep, one event per
    lane per step, over arrays shaped ``[lanes, ...]``."""

    name = "numpy"
    version = "1.0"

    def run(self, program, lanes, *, trace_lanes=()):
        from irqlab.engine.lockstep import run_lockstep

        return run_lockstep(program, lanes, tuple(trace_lanes))


class Reference(Backend):
    """The readable reference: the per-lane kernel's own Python, run with the JIT off
    (:mod:`irqlab.engine.kernelpy`), one lane after the other. The same code as backend
    ``kernel``, so the same results, about 150 times slower; for reading and
    stepping through the semantics with a Python debugger. Runs what the kernel runs."""

    name = "reference"
    version = "2.0"

    def run(self, program, lanes, *, trace_lanes=()):
        from irqlab.engine.kernelrun import run_kernel

        _require_kernel_support(program, self.name)
        return run_kernel(program, lanes, tuple(trace_lanes), jit=False)


def _require_kernel_support(program, backend: str) -> None:
    """Raise the user error saying why the kernel cannot run ``program``, if it cannot."""
    from irqlab.engine.kernelprog import kernel_support
    from irqlab.errors import ScenarioError

    why = kernel_support(program)
    if why is not None:
        raise ScenarioError(f"backend {backend} cannot run scenario '{program.scenario.name}': {why} "
                            "(use backend auto or numpy)")


class Kernel(Backend):
    """The per-lane kernel: each lane runs its own event loop to completion in native code
    (Numba), lanes in parallel over the cores. Compiled once per installation (a few
    minutes on a loaded machine, see docs/implementations.md) and cached on disk; later
    processes load it in well under a second. Runs the scenarios whose plugins all have
    kernel support (every built-in one)."""

    name = "kernel"
    version = "1.0"

    def run(self, program, lanes, *, trace_lanes=(), notify=None):
        from irqlab.engine.kernelrun import run_kernel

        _require_kernel_support(program, self.name)
        return run_kernel(program, lanes, tuple(trace_lanes), notify=notify)


def choose(program) -> tuple[str, str]:
    """``(backend, why)``: what ``auto`` runs ``program`` with, and the reason, in words."""
    from irqlab.engine.kernelprog import kernel_support

    why = kernel_support(program)
    if why is None:
        try:
            import numba  # noqa: F401
        except ImportError:
            why = "numba is not installed"
        else:
            return "kernel", "every plugin of the scenario has kernel support"
    return "numpy", f"{why}; the lockstep executor runs it"


class Auto(Backend):
    """The default: the per-lane kernel when every plugin of the scenario supports it,
    otherwise the lockstep executor. Both give bit-identical results, so the choice only
    changes the speed; the result says which ran and why (``BatchResult.backend``)."""

    name = "auto"
    version = "3.0"

    def run(self, program, lanes, *, trace_lanes=(), notify=None):
        name, why = choose(program)
        if name == "kernel":
            result = Kernel().run(program, lanes, trace_lanes=trace_lanes, notify=notify)
        else:
            result = Lockstep().run(program, lanes, trace_lanes=trace_lanes)
        result.backend = f"{name} ({why})"
        return result


def describe_choice(program) -> str:
    """What the scenario's ``run.backend`` runs ``program`` with, and why, in words (for
    provenance): ``"kernel (every plugin ...)"``, or the backend the scenario names."""
    name = program.scenario.run.backend
    if name != "auto":
        return f"{name} (run.backend)"
    chosen, why = choose(program)
    return f"{chosen} ({why})"


def warm(program, notify) -> None:
    """Compile or load the kernel now if ``auto`` will run ``program`` with it, telling
    ``notify("compiling")`` when it has to compile (so a progress bar can say so)."""
    name = program.scenario.run.backend
    if name == "kernel" or (name == "auto" and choose(program)[0] == "kernel"):
        from irqlab.engine.kernelrun import kernel_module

        kernel_module(notify)

