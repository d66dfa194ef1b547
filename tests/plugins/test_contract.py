"""The vectorized contract: plugins that keep it are bit-identical across backends, batches and
positions; irqlab.plugins.testing catches those that break it; and the engine's hooks and
context operations behave the same in a batch and alone."""

from __future__ import annotations

import numpy as np
import pytest

from irqlab import engine
from irqlab.dsl import loads
from irqlab.plugins.api import NEVER, DeviceModel, Mitigation, Param
from irqlab.plugins.testing import assert_contract, contract_problems

from .conftest import cli, founding_with

PERIOD = (Param("period", "int", 20, "every period-th EOI is held back", min=1),)


def compile_with(body: str, duration: str = "1ms"):
    return engine.compile(loads(founding_with(body, duration=duration), "t.scn"))


def lanes_varying(program, path: str, values, seeds: int = 1):
    return [engine.Lane(3, (s,), {**program.params, path: v}) for v in values for s in range(seeds)]


POISSON = "    device uhci { arrival poisson rate 20kHz }\n"


def lanes_out_of_step(program, n: int = 3):
    """Lanes that differ only in their seed, for a scenario with Poisson arrivals: their
    event sequences differ, so their hooks are called at different lockstep steps."""
    return [engine.Lane(3, (s,), dict(program.params)) for s in range(n)]


class HoldEvery(Mitigation):
    """A well-behaved mitigation: holds back every period-th re-injection for 50us."""

    name, version, params = "hold_every", "1", PERIOD
    hooks, timers = frozenset({"ioapic_eoi", "timer"}), 1

    def init(self, ctx):
        ctx.state.alloc("n", (), np.int64, 0)

    def count(self, ctx, ev):
        n = ctx.state["n"]
        n[ev.lanes] += 1
        return n[ev.lanes]

    def on_ioapic_eoi(self, ctx, ev):
        hold = ev.asserted & (self.count(ctx, ev) % ctx.param("period", ev.lanes) == 0)
        ev.defer |= hold
        lanes = ev.lanes[hold]
        ctx.set_timer(lanes, 0, ctx.now(lanes) + 50_000_000)
        ctx.activated(lanes)

    def on_timer(self, ctx, ev):
        ctx.service_ioapic(ev.lanes)


class Leaky(HoldEvery):
    """Breaks the contract: counts EOIs in every lane's row, not only ev.lanes."""

    name = "leaky"

    def count(self, ctx, ev):
        n = ctx.state["n"]
        n[:] += 1
        return n[ev.lanes]


class Sticky(HoldEvery):
    """Breaks the contract: counts hook calls in a Python attribute."""

    name = "sticky"
    calls = 0

    def count(self, ctx, ev):
        self.calls += 1
        return np.full(len(ev.lanes), self.calls)


class GlobalRandom(HoldEvery):
    """Breaks the contract: draws from NumPy's global generator."""

    name = "global_random"

    def count(self, ctx, ev):
        return (np.random.random(len(ev.lanes)) * 40).astype(np.int64)


@pytest.fixture
def reg(fresh_registry):
    for cls in (HoldEvery, Leaky, Sticky, GlobalRandom):
        fresh_registry.add_class(cls)
    return fresh_registry


def test_a_plugin_that_keeps_the_contract_passes(reg):
    """hold_every with periods 3..50 in one batch, then with lanes out of step: no problem."""
    prog = compile_with("    mitigation hold_every {}")
    assert contract_problems(prog, lanes_varying(prog, "mitigation.hold_every.period", [3, 7, 20, 50])) == []
    prog = compile_with(POISSON + "    mitigation hold_every { period 5 }")
    assert contract_problems(prog, lanes_out_of_step(prog)) == []


@pytest.mark.parametrize("body, path, values", [
    ("mitigation qemu_eoi_throttle { threshold 10; delay 100us }", "mitigation.qemu_eoi_throttle.threshold",
     [3, 10, 1000]),
    ("mitigation preemption_timer_throttle { threshold 5; delay 100 }",
     "mitigation.preemption_timer_throttle.threshold", [2, 5, 1000]),
    ("mitigation xen_irq_ratelimit { limit 10; window 100us }", "mitigation.xen_irq_ratelimit.limit",
     [3, 10, 1000]),
    ("mitigation linux_spurious { window 20; threshold 0; poll 100us }",
     "mitigation.linux_spurious.window", [5, 20, 100000]),
], ids=["qemu_eoi_throttle", "preemption_timer_throttle", "xen_irq_ratelimit", "linux_spurious"])
def test_builtin_mitigations_keep_the_contract(fresh_registry, body, path, values):
    """Each built-in split-irqchip mitigation, lanes that do and do not trigger it in one batch."""
    prog = compile_with("    " + body)
    assert_contract(prog, lanes_varying(prog, path, values))


def test_kvm_eoi_delay_keeps_the_contract(fresh_registry):
    """KVM's delay needs the in-kernel irqchip."""
    prog = compile_with("    machine { irqchip kernel }\n    mitigation kvm_eoi_delay { threshold 10; delay 100us }")
    assert_contract(prog, lanes_varying(prog, "mitigation.kvm_eoi_delay.threshold", [3, 10, 1000]))


def test_writing_rows_outside_the_event_lanes_is_caught(reg):
    """leaky changes other lanes' rows: lanes out of step differ alone and in a batch."""
    prog = compile_with(POISSON + "    mitigation leaky { period 5 }")
    problems = contract_problems(prog, lanes_out_of_step(prog), ["numpy"])
    assert any("run alone differs from the lane in a batch" in p for p in problems)


def test_state_in_python_attributes_is_caught(reg):
    """sticky's attribute changes during a run: the engine fails the run, the check reports it."""
    prog = compile_with("    mitigation sticky {}")
    problems = contract_problems(prog, lanes_varying(prog, "mitigation.sticky.period", [3, 7]), ["numpy"])
    assert any("sticky" in p and "changed its own attributes" in p for p in problems)


def test_global_random_generator_is_caught(reg):
    """global_random's draws depend on what ran before: the same batch run twice differs."""
    np.random.seed(0)
    prog = compile_with(POISSON + "    mitigation global_random { period 5 }")
    problems = contract_problems(prog, lanes_out_of_step(prog, 2), ["numpy"])
    assert any("differs when the same batch runs again" in p for p in problems)


def test_check_command_passes_a_builtin(fresh_registry, capsys, tmp_path):
    """`irqlab plugins check` on the founding case with QEMU's throttle, thresholds varied: exit 0."""
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation qemu_eoi_throttle { delay 100us }", duration="1ms"))
    status, out, err = cli(capsys, "plugins", "check", str(f), "--vary", "qemu_eoi_throttle.threshold=3,10,1000",
                           "-n", "1")
    assert status == 0, err
    assert "ok: 3 lane(s) x 2 backend(s) (numpy, kernel) agree" in out


def test_check_command_reports_a_broken_contract(reg, capsys, tmp_path):
    """`irqlab plugins check` on leaky: exit 1 and the differing lanes."""
    f = tmp_path / "t.scn"
    f.write_text(founding_with(POISSON + "    mitigation leaky { period 5 }", duration="1ms"))
    status, out, _ = cli(capsys, "plugins", "check", str(f), "-n", "3", "--backend", "numpy")
    assert status == 1
    assert "the vectorized contract is broken" in out and "run alone differs" in out


def test_check_command_refuses_a_structural_parameter(fresh_registry, capsys, tmp_path):
    """Varying the irqchip changes the program: a user error, exit 2."""
    f = tmp_path / "t.scn"
    f.write_text(founding_with("", duration="1ms"))
    status, _, err = cli(capsys, "plugins", "check", str(f), "--vary", "machine.irqchip=split,kernel")
    assert status == 2 and "changes the compiled program's structure" in err


# --------------------------------------------------------------------------- engine findings


class SparseDraws(Mitigation):
    """Draws from its stream only in the lanes whose EOI count is even (sometimes none),
    and counts the draws below 0.5 in its state (no crash whatever length comes back)."""

    name, version, hooks = "sparse_draws", "1", frozenset({"ioapic_eoi"})

    def init(self, ctx):
        ctx.state.alloc("n", (), np.int64, 0)
        ctx.state.alloc("low", (), np.int64, 0)

    def on_ioapic_eoi(self, ctx, ev):
        n = ctx.state["n"]
        n[ev.lanes] += 1
        sel = ev.lanes[n[ev.lanes] % 2 == 0]
        u = ctx.uniform(sel)
        ctx.state["low"][sel] += int((u[: len(sel)] < 0.5).sum()) if len(sel) == 1 else (u < 0.5)
        ctx.activated(sel[u[: len(sel)] < 0.5])


class QuietTimer(Mitigation):
    """Reads its timer for the lanes whose pin is not asserted (usually none)."""

    name, version = "quiet_timer", "1"
    hooks, timers = frozenset({"ioapic_eoi", "timer"}), 1

    def on_ioapic_eoi(self, ctx, ev):
        quiet = ev.lanes[~ev.asserted]
        ctx.activated(quiet[ctx.timer(quiet, 0) == NEVER])

    def on_timer(self, ctx, ev):
        pass


class EmptyPending(DeviceModel):
    """A generic device that clears its work only in the lanes that had some (via masks)."""

    name, version = "empty_pending", "1"

    def on_arrival(self, ctx, lanes):
        return np.ones(len(lanes), dtype=bool)

    def on_service(self, ctx, lanes):
        idle = lanes[ctx.pending(lanes) == 0]
        ctx.set_pending(idle, np.zeros(len(idle), dtype=np.int64))  # usually no lanes
        busy = lanes[ctx.pending(lanes) > 0]
        ctx.set_pending(busy, np.zeros(len(busy), dtype=np.int64))
        return np.ones(len(lanes), dtype=bool), np.ones(len(lanes), dtype=bool)


def _batch_and_alone_agree(prog, n=3):
    """The lockstep executor gives each lane the same bits in a batch of ``n`` and alone (a
    batch of one: the hooks see ``L = 1``)."""
    lanes = [engine.Lane(1, (i,), dict(prog.params)) for i in range(n)]
    a = engine.run(prog, lanes, backend="numpy")
    assert a.status == ["ok"] * n, a.error
    for i in range(n):
        b = engine.run(prog, [lanes[i]], backend="numpy")
        assert b.status == ["ok"], b.error
        assert a.lane(i) == b.lane(0)


def test_uniform_on_no_lanes_draws_nothing_in_a_batch_or_alone(fresh_registry):
    """ctx.uniform(lanes) with no lanes returns [] and leaves the stream where it was, in a batch or alone."""
    fresh_registry.add_class(SparseDraws)
    _batch_and_alone_agree(compile_with("    mitigation sparse_draws {}", duration="0.2ms"))


def test_timer_of_no_lanes_is_empty_in_a_batch_or_alone(fresh_registry):
    """ctx.timer(lanes, k) with no lanes returns [] in a batch or alone."""
    fresh_registry.add_class(QuietTimer)
    _batch_and_alone_agree(compile_with("    mitigation quiet_timer {}", duration="0.2ms"))


def test_pending_of_no_lanes_is_empty_in_a_batch_or_alone(fresh_registry):
    """ctx.pending / ctx.set_pending with no lanes are no-ops in a batch or alone."""
    fresh_registry.add_class(EmptyPending)
    _batch_and_alone_agree(compile_with("    device uhci { model empty_pending }\n"
                                 "    mitigation qemu_eoi_throttle { threshold 10 }", duration="0.5ms"))


def test_state_in_python_attributes_fails_the_run(reg):
    """A plugin that changes its attributes during a run fails its runs with an error naming it."""
    prog = compile_with("    mitigation sticky {}")
    r = engine.run(prog, lanes_varying(prog, "mitigation.sticky.period", [3, 7]))
    assert r.status == ["failed", "failed"] and "sticky" in r.error[0]
