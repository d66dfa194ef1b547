"""A lane's result depends on its scenario, parameters and seed only."""

from __future__ import annotations

import pytest

import json

import numpy as np

from irqlab import engine
from irqlab.engine.rng import det_log, lane_keys, uniform
from irqlab.ir import Quantity
from tests.engine.scenarios import device, founding, guest, ms, us, use


def mixed_program():
    nic = device("nic", 0x61, gsi=20, service=us(2), arrival=use("arrival", "poisson", rate=Quantity(80e3, "Hz")))
    stuck = device("stuck", 0x72, gsi=21, lowers_line=False, service=us(1),
                   arrival=use("arrival", "bursty", rate=Quantity(1e5, "Hz"), on=us(40), off=us(200)))
    s = guest(devices=[nic, stuck], duration=ms(0.4), policy="eoi_before_lower",
              mitigations=[use("mitigation", "qemu_eoi_throttle", threshold=20, delay=us(30)),
                           use("mitigation", "xen_irq_ratelimit", limit=15, window=us(50))])
    return engine.compile(s)


def lane(prog, i):
    p = dict(prog.params)
    p["mitigation.qemu_eoi_throttle.threshold"] = 5 + i % 37
    p["device.nic.service"] = 1_000_000 + (i % 13) * 250_000
    return engine.Lane(1234, (i,), p)


@pytest.mark.slow
def test_lane_alone_equals_lane_in_a_batch_of_10000():
    """Bit-identical metrics for a lane run alone and at positions 0, 1, 4999, 9999 of 10,000."""
    prog = mixed_program()
    lanes = [lane(prog, i) for i in range(10_000)]
    batch = engine.run(prog, lanes)
    for pos in (0, 1, 4999, 9999):
        alone = engine.run(prog, [lanes[pos]])
        assert json.dumps(alone.lane(0), sort_keys=True) == json.dumps(batch.lane(pos), sort_keys=True)


def test_lane_result_does_not_depend_on_its_neighbours():
    """The same lane among different neighbours, in a different order, gives the same bits."""
    prog = mixed_program()
    target = lane(prog, 3)
    a = engine.run(prog, [target, lane(prog, 10), lane(prog, 11)])
    b = engine.run(prog, [lane(prog, 20), lane(prog, 21), lane(prog, 22), target])
    assert json.dumps(a.lane(0), sort_keys=True) == json.dumps(b.lane(3), sort_keys=True)


def test_seed_changes_random_arrivals_and_is_repeatable():
    """Different seeds give different Poisson arrivals; the same seed the same ones."""
    prog = mixed_program()
    r = engine.run(prog, [engine.Lane(1, (0,)), engine.Lane(1, (1,)), engine.Lane(1, (0,))])
    raised = r.metrics["interrupts_raised"]
    assert raised[0] == raised[2] and json.dumps(r.lane(0)) == json.dumps(r.lane(2))
    assert json.dumps(r.lane(0)) != json.dumps(r.lane(1))


def test_uniform_draws_depend_only_on_key_stream_and_counter():
    """A draw is a function of (lane key, stream, counter): batch size and position do not matter."""
    keys = lane_keys([(5, (i,)) for i in range(100)])
    all_at_once = uniform(keys, 3, np.arange(100))
    one_by_one = np.array([uniform(keys[i:i + 1], 3, np.array([i]))[0] for i in range(100)])
    assert np.array_equal(all_at_once, one_by_one)
    assert not np.array_equal(uniform(keys, 3, np.zeros(100)), uniform(keys, 4, np.zeros(100)))


def test_uniform_draws_are_uniform():
    """100,000 draws of one stream: mean 1/2 and variance 1/12 within sampling error."""
    keys = np.repeat(lane_keys([(9, ())]), 100_000, axis=0)
    u = uniform(keys, 0, np.arange(100_000))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002 and u.min() >= 0 and u.max() < 1


def test_det_log_agrees_with_numpy_log():
    """The machine-independent log is within 3e-16 (relative) of numpy's."""
    x = np.exp(np.linspace(-40, 40, 10001))
    assert np.max(np.abs(det_log(x) - np.log(x)) / np.maximum(1, np.abs(np.log(x)))) < 3e-16


def test_mode_times_add_up_to_the_simulated_time():
    """L0 + L1 + L2 + userspace time = simulated time x vCPUs, also when a run is truncated."""
    for s in (founding(duration=ms(1)), founding(duration=ms(1), max_events=777)):
        m = engine.run(engine.compile(s), [engine.Lane(0)]).lane(0)
        total = m["l0_time_ns"] + m["l1_time_ns"] + m["l2_time_ns"] + m["userspace_time_ns"]
        assert total == m["sim_time_ns"]


def test_event_cap_marks_the_run_truncated():
    """A lane stops at the event that brings its records to run.max_events (an event emits a
    few records), and is marked truncated."""
    m = engine.run(engine.compile(founding(duration=ms(5), max_events=1000)), [engine.Lane(0)]).lane(0)
    assert m["truncated"] and 1000 <= m["events"] < 1010 and m["sim_time_ns"] < 5e6
