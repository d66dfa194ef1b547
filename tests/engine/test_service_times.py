"""Random service times: their moments, their determinism, and their use in scenarios and sweeps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from irqlab import engine
from irqlab.engine.context import PluginContext
from irqlab.engine.rng import lane_keys, uniform
from irqlab.plugins.registry import registry
from tests.engine.scenarios import device, guest, ms, us, use

N = 40_000


class _Engine:
    """Just what a service distribution's context needs: parameters and the lanes' streams."""

    class program:
        n_pins, n_vcpus = 1, 1

    def __init__(self, params: dict[str, float]) -> None:
        self.params = {k: np.full(N, v) for k, v in params.items()}
        self.keys = lane_keys([(11, (i,)) for i in range(N)])
        self.counter = np.zeros(N, np.int64)

    def draw(self, lanes, stream):
        u = uniform(self.keys[lanes], stream, self.counter[lanes])
        self.counter[lanes] += 1
        return u


def samples(name: str, **params) -> np.ndarray:
    """One service time (ps) from each of N lanes."""
    cls = registry().get("service", name)
    eng = _Engine({f"s.{k}": v for k, v in params.items()})
    ctx = PluginContext(eng, label=name, path="s", stream=300, n_lanes=N)
    plugin = cls({}, label=name)
    plugin.init(ctx)
    return plugin.sample(ctx, np.arange(N)).astype(np.float64)


def raw_moments(name, **p):
    """E[X^k], k = 1..4, of each distribution (ps)."""
    if name == "exponential":
        m = p["mean"]
        return [math.factorial(k) * m ** k for k in range(1, 5)]
    if name == "uniform":
        a, b = p["low"], p["high"]
        return [(b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a)) for k in range(1, 5)]
    if name == "lognormal":
        s = p["sigma"]
        mu = math.log(p["mean"]) - s * s / 2
        return [math.exp(k * mu + k * k * s * s / 2) for k in range(1, 5)]
    if name == "gamma":
        k_, th = p["shape"], p["mean"] / p["shape"]
        return [th ** k * math.prod(k_ + i for i in range(k)) for k in range(1, 5)]
    raise KeyError(name)


CASES = [("exponential", dict(mean=20e6)), ("uniform", dict(low=5e6, high=35e6)),
         ("lognormal", dict(mean=20e6, sigma=0.6)), ("gamma", dict(mean=20e6, shape=2.5)),
         ("gamma", dict(mean=20e6, shape=0.4))]


@pytest.mark.parametrize("name,params", CASES)
def test_sample_mean_and_variance_match_within_confidence_bounds(name, params):
    """Over 40,000 draws the sample mean and variance lie within 4.5 standard errors of the truth."""
    x = samples(name, **params)
    m1, m2, m3, m4 = raw_moments(name, **params)
    var = m2 - m1 * m1
    mu4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1 ** 4  # central fourth moment
    assert abs(x.mean() - m1) < 4.5 * math.sqrt(var / N)
    assert abs(x.var(ddof=1) - var) < 4.5 * math.sqrt((mu4 - var * var) / N)


def test_constant_and_empirical_draw_what_they_are_given(tmp_path):
    """constant gives its mean; empirical draws each sample of its file about equally often."""
    assert set(samples("constant", mean=7e6)) == {7e6}
    f = tmp_path / "svc.txt"
    f.write_text("# measured\n2us\n4us\n9us\n")
    cls = registry().get("service", "empirical")
    eng = _Engine({})
    ctx = PluginContext(eng, label="empirical", path="s", stream=300, n_lanes=N)
    plugin = cls({"file": str(f)}, label="empirical")
    plugin.init(ctx)
    x = plugin.sample(ctx, np.arange(N))
    values, counts = np.unique(x, return_counts=True)
    assert list(values) == [2_000_000, 4_000_000, 9_000_000]
    assert all(abs(c - N / 3) < 4.5 * math.sqrt(N * (1 / 3) * (2 / 3)) for c in counts)


def _with_dist(name, **params):
    dist = use("service", name, **params)
    d = device("nic", 0x61, gsi=20, arrival=use("arrival", "poisson", rate=_hz(40e3)))
    from dataclasses import replace

    return guest(devices=[replace(d, service_dist=dist)], duration=ms(2))


def _hz(x):
    from irqlab.ir import Quantity

    return Quantity(x, "Hz")


def test_a_lane_draws_the_same_service_times_in_any_batch_and_backend():
    """Service times are drawn per job from the lane's own stream: a lane's trace and metrics are
    the same alone, in a batch of 5 and in the kernel."""
    prog = engine.compile(_with_dist("lognormal", mean=10e-6, sigma=0.8))
    lanes = [engine.Lane(4, (i,)) for i in range(5)]
    batch = engine.run(prog, lanes, trace_lanes=range(5), backend="numpy")
    for i in (0, 3):
        alone = engine.run(prog, [lanes[i]], trace_lanes=(0,), backend="numpy")
        ref = engine.run(prog, [lanes[i]], trace_lanes=(0,), backend="kernel")
        assert batch.traces[i].sorted() == alone.traces[0].sorted() == ref.traces[0].sorted()
        assert batch.lane(i) == alone.lane(0) == ref.lane(0)
    lat = [batch.lane(i)["devices"]["nic"]["latency_max_ns"] for i in range(5)]
    assert len(set(lat)) > 1  # the lanes' service times differ


def test_service_distribution_in_a_scenario_file_and_its_sweep():
    """`service exponential mean 20us` in a device block, and `device.nic.service.mean` as a sweep axis."""
    from irqlab.dsl import loads
    from irqlab.experiments.expand import expand
    from irqlab.resolve import resolve

    src = """scenario s {
    vcpu 0 { L1 guest {} }
    device nic {
        gsi 20; vector 0x61; trigger level
        serviced_by L1
        service exponential mean 20us
        arrival poisson rate 10kHz
    }
    run { duration 1ms }
    sweep { grid { device.nic.service.mean = [5us, 50us] } }
}
"""
    s = loads(src, "t.scn")
    assert s.devices[0].service_dist.name == "exponential"
    points = expand(s.sweep, s)
    means = []
    for p in points:
        prog = engine.compile(resolve(s, p))
        means.append(prog.params["device.nic.service.mean"])
    assert means == [5_000_000, 50_000_000]


@pytest.mark.parametrize("kind", ["exponential", "uniform", "lognormal", "gamma"])
def test_policy_body_times_have_the_mean_and_cv_asked_for(kind):
    """A policy's random body time (body_dist, body_cv): sample mean and standard deviation within
    4.5 standard errors of body and body x cv (cv 1 for exponential; a 4th moment bound of 9 sigma^4)."""
    from irqlab.plugins.builtin.services import sample_by_cv

    eng = _Engine({})
    ctx = PluginContext(eng, label=kind, path="s", stream=400, n_lanes=N)
    mean, cv = 3e6, 0.5
    x = sample_by_cv(kind, ctx, np.arange(N), np.full(N, mean), np.full(N, cv)).astype(np.float64)
    sd = mean * (1.0 if kind == "exponential" else cv)
    assert abs(x.mean() - mean) < 4.5 * sd / math.sqrt(N)
    assert abs(x.std(ddof=1) - sd) < 4.5 * sd * math.sqrt((9 - 1) / (4 * N))  # kurtosis <= 9


def test_a_random_body_time_changes_from_one_invocation_to_the_next():
    """body_dist exponential: the handler's first action comes a different time after each interrupt."""
    from tests.engine.helpers import events

    d = device("nic", 0x61, gsi=20, arrival=use("arrival", "periodic", period=us(50), count=6))
    s = guest(devices=[d], duration=ms(0.4), policy_args=dict(body_dist="exponential"))
    r = engine.run(engine.compile(s), [engine.Lane(1)], trace_lanes=(0,), backend="numpy")
    ev = events(r)
    gaps = []
    for i, (t, e, x) in enumerate(ev):
        if e == "kvm_inj_virq" or (e == "kvm_apic_accept_irq"):
            nxt = next((t2 for t2, e2, _ in ev[i + 1:] if e2 == "kvm_exit"), None)
            if nxt is not None:
                gaps.append(nxt - t)
    assert len(set(gaps)) > 3
