"""A third-party mitigation with a kernel hook (irqlab.engine.kernel_api): the token-bucket
example runs on the kernel, with the lockstep executor's results."""

from __future__ import annotations

import sys

import pytest

from irqlab import engine
from irqlab.engine.kernelprog import kernel_support
from irqlab.plugins.registry import registry, reset
from tests.engine.scenarios import founding, ms, use
from tests.engine.test_kernel_mech import assert_same, both
from tests.plugins.conftest import EXAMPLES


@pytest.fixture
def token_bucket(monkeypatch):
    """The example package's TokenBucket, registered from the source tree."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "plugins" / "irqlab-tokenbucket"))
    from irqlab_tokenbucket import TokenBucket

    reset()
    registry().add_class(TokenBucket)
    yield TokenBucket
    reset()
    for name in [n for n in sys.modules if n.startswith("irqlab_tokenbucket")]:
        del sys.modules[name]


def bucket(rate, burst=5):
    return founding(mitigations=[use("mitigation", "token_bucket", rate=rate, burst=burst)], duration=ms(2))


def test_auto_runs_a_plugin_with_a_kernel_hook_on_the_kernel(token_bucket):
    """The token bucket names its kernel hook, so auto picks the kernel for it."""
    prog = engine.compile(bucket(1e4))
    assert kernel_support(prog) is None
    assert engine.run(prog, [engine.Lane(0)]).backend.startswith("kernel (")


@pytest.mark.parametrize("rate", [1e3, 1e5])
def test_token_bucket_kernel_hook_matches_its_numpy_hooks(token_bucket, rate):
    """The token bucket's kernel hook gives its NumPy hooks' metrics and records in the lockstep
    executor (deferred EOIs, timers, activations)."""
    a, b = both(bucket(rate), n=2)
    assert a.lane(0)["mitigation_activations"]["token_bucket"] > 0
    assert_same(a, b, 2)


def test_a_kernel_hook_that_fails_to_load_falls_back_to_the_numpy_hooks(token_bucket):
    """A kernel hook whose module cannot be imported: auto runs the plugin's NumPy hooks and says why."""
    broken = type("BrokenBucket", (token_bucket,), {"kernel_hook": "irqlab_no_such_module:hook",
                                                    "name": "broken_bucket", "__doc__": "A broken kernel hook."})
    registry().add_class(broken)
    prog = engine.compile(founding(mitigations=[use("mitigation", "broken_bucket", rate=1e4, burst=5)],
                                   duration=ms(0.2)))
    why = kernel_support(prog)
    assert why.startswith("the kernel hook 'irqlab_no_such_module:hook' failed to load (ModuleNotFoundError")
    assert engine.run(prog, [engine.Lane(0)]).backend.startswith(f"numpy ({why}")


def test_a_hook_cached_under_another_kernel_layout_is_compiled_again(token_bucket):
    """A hook inlines kernel_api's helpers, which read the lane at the offsets of
    kernel_ids.py: if its cache was written when the kernel's sources were other, the
    cached code is dropped and the hook compiled again (it used to read the wrong slots and
    crash the process after the layout grew)."""
    import os

    from numba.core import config

    from irqlab.engine import kernelrun
    from irqlab.engine.kernelprog import kernel_hook

    if config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT=1: nothing is cached")
    prog = engine.compile(bucket(1e4))
    hook = kernel_hook(prog)
    stamp = os.path.join(hook._cache._cache_path, "irqlab_hook.kernel.stamp")
    with open(stamp, "w", encoding="ascii") as f:
        f.write("the stamp of another kernel layout")
    again = kernel_hook(prog)
    assert again is not hook  # its module was imported again, and the hook compiled
    with open(stamp, encoding="ascii") as f:
        assert f.read() == kernelrun.source_stamp()
    assert kernel_hook(prog) is again  # now current: loaded as it is


def test_the_reference_backend_runs_a_kernel_hook_as_python(token_bucket):
    """Backend reference imports the hook's module with the JIT off too (its kernel_api
    helpers as Python) and gives the compiled hook's metrics and records."""
    prog = engine.compile(bucket(1e5))
    lanes = [engine.Lane(5)]
    a = engine.run(prog, lanes, trace_lanes=[0], backend="reference")
    b = engine.run(prog, lanes, trace_lanes=[0], backend="kernel")
    assert a.lane(0)["mitigation_activations"]["token_bucket"] > 0
    assert_same(a, b, 1)
    assert hasattr(sys.modules["irqlab_tokenbucket.kernel"].hook, "address")  # the compiled hook is kept
