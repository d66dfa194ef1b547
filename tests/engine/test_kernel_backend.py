"""The per-lane kernel backend: what `auto` picks, and the kernel's results against the
lockstep executor where the random differential tests do not reach."""

from __future__ import annotations

import json

import pytest

from irqlab import engine
from irqlab.errors import ScenarioError
from irqlab.plugins.builtin.mitigations import QemuEoiThrottle
from tests.engine.scenarios import founding, ms, us, use
from tests.engine.test_determinism import lane, mixed_program


class ThirdPartyThrottle(QemuEoiThrottle):
    """The same hooks, as a third-party plugin would inherit them: no kernel support."""

    name = "third_party_throttle"


def throttled():
    return engine.compile(founding(mitigations=[use("mitigation", "qemu_eoi_throttle", threshold=5,
                                                    delay=us(40))]))


def same(a, b, n):
    return all(json.dumps(a.lane(i), sort_keys=True) == json.dumps(b.lane(i), sort_keys=True)
               for i in range(n))


def test_auto_runs_the_kernel_when_every_plugin_supports_it():
    """`auto` picks the kernel for built-in plugins and says why."""
    result = engine.run(throttled(), [engine.Lane(0)])
    assert result.backend.startswith("kernel (every plugin")


def test_auto_falls_back_for_a_plugin_without_kernel_support():
    """A plugin class without its own kernel_kind makes `auto` pick the lockstep executor, even
    for one lane, naming the plugin; its results equal the kernel's for the same hooks."""
    prog = throttled()
    kernel = engine.run(prog, [engine.Lane(0)], backend="kernel")
    m = prog.mitigations[0]
    m.plugin = ThirdPartyThrottle(m.plugin.config, label=m.plugin.label)
    result = engine.run(prog, [engine.Lane(0)])
    assert result.backend.startswith("numpy (mitigation plugin 'third_party_throttle' has no kernel support")
    assert same(result, kernel, 1)


def test_kernel_backend_refuses_what_it_cannot_run():
    """Asking for the kernel with an unsupported plugin is a user error naming the plugin."""
    prog = throttled()
    m = prog.mitigations[0]
    m.plugin = ThirdPartyThrottle(m.plugin.config, label=m.plugin.label)
    with pytest.raises(ScenarioError, match="third_party_throttle"):
        engine.run(prog, [engine.Lane(0)], backend="kernel")


def test_lanes_with_their_own_parameters_match_the_lockstep_executor():
    """Lanes whose parameters differ (the kernel's per-lane parameter columns) give the
    lockstep executor's results, lane by lane."""
    prog = mixed_program()
    lanes = [lane(prog, i) for i in range(6)]
    assert same(engine.run(prog, lanes, backend="kernel"), engine.run(prog, lanes, backend="numpy"), 6)


def test_a_trace_longer_than_the_record_buffer_streams(monkeypatch):
    """A traced lane whose records overflow the kernel's buffer many times over resumes and
    gives exactly the lockstep executor's records, modes and counters."""
    from irqlab.engine import kernelrun

    monkeypatch.setattr(kernelrun, "TRACE_BUFFER", 64)
    prog = engine.compile(founding(duration=ms(0.3)))
    a = engine.run(prog, [engine.Lane(3)], trace_lanes=[0], backend="numpy")
    b = engine.run(prog, [engine.Lane(3)], trace_lanes=[0], backend="kernel")
    assert len(b.traces[0].records) > 400  # about 14 buffers of 32
    assert b.traces[0].sorted() == a.traces[0].sorted()
    assert b.traces[0].modes == a.traces[0].modes and b.traces[0].counters == a.traces[0].counters
    assert same(a, b, 1)


def test_run_says_which_backend_ran_and_why(capsys):
    """`irqlab run` prints the backend auto picked, with its reason, in the table and in --json."""
    from tests.plugins.conftest import EXAMPLES, cli

    status, out, _ = cli(capsys, "run", str(EXAMPLES / "founding_case.scn"), "--set", "run.duration=1ms", "-n", "2")
    assert status == 0 and "backend: kernel (every plugin of the scenario has kernel support)" in out
    status, out, _ = cli(capsys, "run", str(EXAMPLES / "founding_case.scn"), "--set", "run.duration=1ms", "--json")
    assert json.loads(out)["backend"].startswith("kernel (")


def test_a_sweep_stores_which_backend_ran_and_why(tmp_path):
    """A sweep's provenance names auto's choice and its reason (plugin_versions["backend"])."""
    import sqlite3

    from irqlab.experiments.driver import SweepRequest, run_sweep
    from tests.plugins.conftest import EXAMPLES

    text = (EXAMPLES / "founding_case.scn").read_text().replace("duration 100ms", "duration 1ms")
    run_sweep(SweepRequest(text=text, file="f.scn", out_dir=str(tmp_path), launcher="inline", progress=False))
    (row,) = sqlite3.connect(tmp_path / "results.db").execute("SELECT plugin_versions FROM sweeps").fetchall()
    assert json.loads(row[0])["backend"] == "kernel (every plugin of the scenario has kernel support)"


def test_a_kernel_cache_from_other_sources_is_dropped(tmp_path, monkeypatch):
    """Cached kernel code compiled from other kernel sources is deleted before use (Numba would load it:
    it checks only each function's own file); the other files and an up-to-date cache stay."""
    from types import SimpleNamespace

    from irqlab.engine import kernelrun

    for name in ("kernel_base.draw-79.py311.nbi", "kernel.run_lanes-600.py311.1.nbc", "other.f-1.py311.nbi"):
        (tmp_path / name).write_text("x")
    (tmp_path / kernelrun.STAMP).write_text("old sources")
    fake = SimpleNamespace(run_lanes=SimpleNamespace(_cache=SimpleNamespace(_cache_path=str(tmp_path))))
    kernelrun.drop_stale_cache(fake)
    assert sorted(p.name for p in tmp_path.iterdir()) == [kernelrun.STAMP, "other.f-1.py311.nbi"]
    assert (tmp_path / kernelrun.STAMP).read_text() == kernelrun.source_stamp()
    (tmp_path / "kernel.run_lanes-600.py311.nbi").write_text("x")
    kernelrun.drop_stale_cache(fake)
    assert (tmp_path / "kernel.run_lanes-600.py311.nbi").exists()
