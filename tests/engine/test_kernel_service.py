"""The per-lane kernel's random times and replayed arrivals against the lockstep executor: service-time
distributions, random handler body times, the `trace` arrival (the random cases:
tests/engine/test_differential.py's kernel tests)."""

from __future__ import annotations

import pytest

from irqlab import engine
from irqlab.engine.kernelprog import kernel_support
from tests.engine.scenarios import device, guest, ms, use
from tests.engine.test_kernel_mech import assert_same, both


@pytest.mark.parametrize("dist", [use("service", "exponential", mean=2e-6), use("service", "uniform", low=1e-6, high=3e-6),
                                  use("service", "lognormal", mean=2e-6, sigma=1.0),
                                  use("service", "gamma", mean=2e-6, shape=0.5),
                                  use("service", "gamma", mean=2e-6, shape=3.0),
                                  use("service", "constant", mean=2e-6)])
def test_kernel_draws_the_lockstep_executors_service_times(dist):
    """Every built-in service-time distribution: the kernel's draws, and so every metric and record, are the lockstep executor's."""
    d = device("nic", 0x41, gsi=11, service_dist=dist, arrival=use("arrival", "poisson", rate=1e5))
    scn = guest(devices=[d], duration=ms(0.3))
    assert kernel_support(engine.compile(scn)) is None
    a, b = both(scn, n=2)
    assert a.lane(0)["devices"]["nic"]["serviced"] > 5
    assert_same(a, b, 2)


@pytest.mark.parametrize("body", ["exponential", "uniform", "lognormal", "gamma"])
def test_kernel_draws_the_lockstep_executors_body_times(body):
    """A policy's random body time (body_dist, body_cv): the kernel equals the lockstep executor."""
    d = device("nic", 0x41, gsi=11, arrival=use("arrival", "poisson", rate=1e5))
    scn = guest(devices=[d], duration=ms(0.3), policy_args=dict(body_dist=body, body_cv=1.5))
    a, b = both(scn, n=2)
    assert_same(a, b, 2)


def test_kernel_replays_a_trace_arrival(tmp_path):
    """The `trace` arrival runs on the kernel (auto picks it) and replays the file's timestamps, offset, as the lockstep executor does."""
    f = tmp_path / "t.txt"
    f.write_text("# arrivals\n1us\n2.5us\n40us\n41us\n300us\n")
    d = device("nic", 0x41, gsi=11, arrival=use("arrival", "trace", file=str(f), offset=3e-6))
    scn = guest(devices=[d], duration=ms(0.2))
    assert kernel_support(engine.compile(scn)) is None
    a, b = both(scn)
    assert b.lane(0)["devices"]["nic"]["raised"] == 4  # the fifth, at 303us, is past the end
    assert_same(a, b)


def test_kernel_records_the_lockstep_executors_series():
    """`series` on the kernel (auto picks it): every field of every sample equals the lockstep executor's, traced or not."""
    from dataclasses import replace

    import numpy as np

    from irqlab.ir import Quantity, SeriesSpec

    d = device("nic", 0x41, gsi=11, arrival=use("arrival", "poisson", rate=1e5))
    scn = guest(devices=[d], duration=ms(0.3))
    fields = ("l2_time_ns", "l1_time_ns", "l0_time_ns", "userspace_time_ns", "eoi_count", "exits_total",
              "interrupts_raised", "interrupts_delivered", "pending", "irr", "line")
    scn = replace(scn, run=replace(scn.run, series=SeriesSpec(every=Quantity(7e-6, "s"), fields=fields)))
    assert kernel_support(engine.compile(scn)) is None
    prog = engine.compile(scn)
    lanes = [engine.Lane(5, (i,)) for i in range(3)]
    a = engine.run(prog, lanes, backend="numpy")
    for b in (engine.run(prog, lanes, backend="kernel"), engine.run(prog, lanes, trace_lanes=[1], backend="kernel")):
        assert set(b.series) == set(a.series) and a.series["t_ns"].shape == (3, 43)
        for f in a.series:
            assert np.array_equal(a.series[f], b.series[f], equal_nan=True), f
        assert_same(a, b, 0)


def test_kernel_draws_the_lockstep_executors_empirical_service_times(tmp_path):
    """The empirical service time (samples from a file) runs on the kernel and draws the lockstep executor's samples."""
    f = tmp_path / "s.txt"
    f.write_text("0.5us\n2us\n# a comment\n7us\n3.25us\n")
    d = device("nic", 0x41, gsi=11, service_dist=use("service", "empirical", file=str(f)),
               arrival=use("arrival", "poisson", rate=1e5))
    scn = guest(devices=[d], duration=ms(0.3))
    assert kernel_support(engine.compile(scn)) is None
    a, b = both(scn, n=2)
    assert a.lane(0)["devices"]["nic"]["serviced"] > 5
    assert_same(a, b, 2)
