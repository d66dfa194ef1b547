"""A plugin that raises during a run fails that run, with an error naming the plugin; the
other runs go on (in a batch, in both backends, through `irqlab run` and `irqlab sweep`)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from irqlab import engine
from irqlab.dsl import loads
from irqlab.plugins.api import NEVER, ArrivalProcess, DeviceModel, Mitigation, Param

from .conftest import FRAGILE, cli, founding_with

FAIL = Param("fail", "int", 0, "1 makes the hook raise in that lane", min=0, max=1)


def _raise_where(ctx, lanes):
    if (ctx.param("fail", lanes) == 1).any():
        raise RuntimeError("boom")


class BoomEoi(Mitigation):
    """Raises in its ioapic_eoi hook."""
    name, version, params, hooks = "boom_eoi", "1", (FAIL,), frozenset({"ioapic_eoi"})

    def on_ioapic_eoi(self, ctx, ev):
        _raise_where(ctx, ev.lanes)


class BoomDeliver(Mitigation):
    """Raises in its deliver hook."""
    name, version, params, hooks = "boom_deliver", "1", (FAIL,), frozenset({"deliver"})

    def on_deliver(self, ctx, ev):
        _raise_where(ctx, ev.lanes)


class BoomTimer(Mitigation):
    """Arms its timer 1us after each EOI and raises when it expires."""
    name, version, params, hooks, timers = "boom_timer", "1", (FAIL,), frozenset({"ioapic_eoi", "timer"}), 1

    def on_ioapic_eoi(self, ctx, ev):
        idle = ev.lanes[ctx.timer(ev.lanes, 0) == NEVER]
        ctx.set_timer(idle, 0, ctx.now(idle) + 1_000_000)

    def on_timer(self, ctx, ev):
        _raise_where(ctx, ev.lanes)


class BoomDevice(DeviceModel):
    """A generic device that raises when serviced."""
    name, version, params = "boom_device", "1", (FAIL,)

    def on_arrival(self, ctx, lanes):
        return np.ones(len(lanes), dtype=bool)

    def on_service(self, ctx, lanes):
        _raise_where(ctx, lanes)
        ctx.set_pending(lanes, np.zeros(len(lanes), dtype=np.int64))
        return np.ones(len(lanes), dtype=bool), np.ones(len(lanes), dtype=bool)


class BoomArrival(ArrivalProcess):
    """One arrival at 0; raises when asked for the next one."""
    name, version, params = "boom_arrival", "1", (FAIL,)

    def first(self, ctx, lanes):
        return np.zeros(len(lanes), dtype=np.int64)

    def next(self, ctx, lanes, now):
        _raise_where(ctx, lanes)
        return np.full(len(lanes), NEVER, dtype=np.int64)


CASES = {  # plugin -> (scenario body, parameter path, kind in the message)
    BoomEoi: ("    mitigation boom_eoi {}", "mitigation.boom_eoi.fail", "mitigation"),
    BoomDeliver: ("    mitigation boom_deliver {}", "mitigation.boom_deliver.fail", "mitigation"),
    BoomTimer: ("    mitigation boom_timer {}", "mitigation.boom_timer.fail", "mitigation"),
    BoomDevice: ("    device uhci { model boom_device }\n    mitigation qemu_eoi_throttle { threshold 10 }",
                 "device.uhci.model.fail", "device"),
    BoomArrival: ("    device uhci { arrival boom_arrival }", "device.uhci.arrival.fail", "arrival"),
}


@pytest.mark.parametrize("backend", ["numpy", "auto"])  # auto: lockstep, the plugin has no kernel hooks
@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.name)
def test_raising_hook_fails_only_its_lanes(fresh_registry, cls, backend):
    """Lanes 1 and 4 (fail=1) are failed with '<kind> plugin '<name>' raised RuntimeError: boom';
    the others are ok and equal to the same lane run alone."""
    fresh_registry.add_class(cls)
    body, path, kind = CASES[cls]
    prog = engine.compile(loads(founding_with(body, duration="1ms"), "t.scn"))
    fails = [0, 1, 0, 0, 1, 0]
    lanes = [engine.Lane(0, (i,), {**prog.params, path: f}) for i, f in enumerate(fails)]
    r = engine.run(prog, lanes, backend=backend)
    assert r.status == ["failed" if f else "ok" for f in fails]
    for i, f in enumerate(fails):
        if f:
            assert r.error[i] == f"{kind} plugin '{cls.name}' raised RuntimeError: boom"
        else:
            alone = engine.run(prog, [lanes[i]], backend=backend)
            assert json.dumps(alone.lane(0), sort_keys=True) == json.dumps(r.lane(i), sort_keys=True)


def test_irqlab_run_reports_the_failed_runs(fake_dists, tmp_path, capsys):
    """`irqlab run --json` of a scenario whose plugin raises: exit 1, each run failed with an
    error naming the plugin."""
    fake_dists.add("fragile-dist", "fragile_mod", FRAGILE, {"mitigation.fragile": "fragile_mod:Fragile"})
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation fragile { fail 1 }"))
    status, out, _ = cli(capsys, "run", str(f), "--json")
    runs = json.loads(out)["runs"]
    assert status == 1 and len(runs) == 2
    assert all(r["status"] == "failed" and r["error"] == "mitigation plugin 'fragile' raised RuntimeError: boom"
               for r in runs)


@pytest.mark.parametrize("backend", ["numpy", "auto"])  # auto: lockstep, the plugin has no kernel hooks
def test_sweep_stores_the_failed_runs_and_goes_on(fake_dists, tmp_path, capsys, backend):
    """`irqlab sweep` over fail = [0, 1] x 2 replications: exit 0; the two fail=1 runs are
    stored failed with the plugin's error, the two fail=0 runs ok with their metrics."""
    fake_dists.add("fragile-dist", "fragile_mod", FRAGILE, {"mitigation.fragile": "fragile_mod:Fragile"})
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation fragile { fail 0 }\n"
                               "    sweep { grid { fragile.fail = [0, 1] } }"))
    out_dir = tmp_path / "out"
    status, out, err = cli(capsys, "sweep", str(f), "--out", str(out_dir), "--launcher", "inline",
                           "--no-progress", "--set", f"run.backend={backend}")
    assert status == 0, err
    assert "2 ok, 2 failed" in out
    con = sqlite3.connect(out_dir / "results.db")
    try:
        rows = con.execute("SELECT fail, status, error, l2_time_ns IS NOT NULL FROM sweep_1 "
                           "ORDER BY fail, replication").fetchall()
    finally:
        con.close()
    assert rows == [(0.0, "ok", None, 1), (0.0, "ok", None, 1),
                    (1.0, "failed", "mitigation plugin 'fragile' raised RuntimeError: boom", 0),
                    (1.0, "failed", "mitigation plugin 'fragile' raised RuntimeError: boom", 0)]
