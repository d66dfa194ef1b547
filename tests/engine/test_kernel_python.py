"""The kernel's own Python (backend ``reference``, JIT off) against the compiled kernel, on the
random scenarios of every mechanism: the same code run by Python's integers and NumPy's
scalars, or by LLVM, must give the same bits (docs/implementations.md)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from irqlab import engine
from tests.engine.scenarios import founding, with_run, us
from tests.engine.test_differential import compare, scenarios
from tests.engine.test_differential_destinations import compiles, dest_scenarios
from tests.engine.test_differential_idle import idle_scenarios
from tests.engine.test_differential_routes import route_scenarios
from tests.engine.test_differential_timers import timer_scenarios
from tests.engine.test_differential_tpr import tpr_scenarios

STRATEGIES = {
    "base": scenarios(),
    "issue 12": scenarios(issue12=True),
    "routes": route_scenarios(),
    "idle": idle_scenarios(),
    "timers": timer_scenarios(),
    "tpr": tpr_scenarios(),
    "nested vppr": tpr_scenarios(nested=True),
    "destinations": dest_scenarios().filter(compiles),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", STRATEGIES)
def test_the_kernels_python_equals_the_compiled_kernel(name):
    """Every metric, trace record, mode change and counter of the reference backend equals the
    compiled kernel's, on one lane of random scenarios of each mechanism."""

    @settings(max_examples=min(settings.default.max_examples, 15))  # about 0.3 s each as Python
    @given(STRATEGIES[name])
    def check(scn):
        compare(scn, n=1, others=("reference",))

    check()


def test_the_reference_backend_runs_in_process_beside_the_compiled_kernel():
    """backend reference runs the kernel's Python without replacing the compiled kernel: the
    modules the process imported stay compiled, and both give the founding storm's bits."""
    import irqlab.engine.kernel as kernel

    prog = engine.compile(with_run(founding(), duration=us(100)))
    a = engine.run(prog, [engine.Lane(5)], trace_lanes=[0], backend="reference")
    b = engine.run(prog, [engine.Lane(5)], trace_lanes=[0], backend="kernel")
    import irqlab.engine.kernel as again

    assert again is kernel and hasattr(kernel.run_lanes, "py_func")  # still Numba's dispatcher
    assert json.dumps(a.lane(0), sort_keys=True) == json.dumps(b.lane(0), sort_keys=True)
    assert a.traces[0].sorted() == b.traces[0].sorted() and len(a.traces[0].sorted()) > 20


def test_a_thread_importing_the_kernel_meanwhile_gets_the_compiled_module(monkeypatch):
    """While the kernel's modules are imported with the JIT off, another thread that imports
    the kernel waits, and then gets the compiled module (not one made with the JIT off)."""
    import importlib
    import threading

    import irqlab.engine.kernel as compiled
    from irqlab.engine import kernelpy

    real, got, threads = importlib.import_module, {}, []

    def other():
        got["kernel"] = real("irqlab.engine.kernel")

    def spy(name, *args):
        if not threads:  # inside the window: sys.modules lacks the kernel's modules
            threads.append(threading.Thread(target=other))
            threads[0].start()
            threads[0].join(0.5)  # it finishes now only if nothing holds it back
        return real(name, *args)

    monkeypatch.setattr(kernelpy.importlib, "import_module", spy)
    kernelpy._import_without_jit(None)
    threads[0].join(30)
    assert got["kernel"] is compiled and hasattr(got["kernel"].run_lanes, "py_func")
