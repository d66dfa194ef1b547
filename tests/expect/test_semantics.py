"""What an expectation means over a run's replications (irqlab.expect.check)."""

from __future__ import annotations

import math
from pathlib import Path

from irqlab import dsl
from irqlab.expect import check
from irqlab.resolve import resolve

FOUNDING = Path(__file__).resolve().parents[2] / "examples" / "founding_case_qemu_throttle.scn"


def outcomes(expect: str, runs: list[dict]):
    """Check ``expect`` (one assertion a line) against fabricated runs of the QEMU-throttle case."""
    body = "\n".join(f"        {line}" for line in expect.strip().split("\n"))
    s = dsl.loads(f'import "{FOUNDING}"\nscenario t extends founding_case_qemu_throttle {{\n'
                  f"    run {{ duration 200ms }}\n    expect {{\n{body}\n    }}\n}}\n", "t.scn")
    return check(s.expect, runs, resolve(s))


def run(**metrics) -> dict:
    base = {"livelock": False, "eoi_count": 100, "time_to_l2_progress_ns": 1e6, "l2_fraction": 0.5,
            "device.uhci.serviced": 1, "device.uhci.latency_p50_ns": 1e4,
            "mitigation_activations.qemu_eoi_throttle": 0}
    base.update({k.replace("__", "."): v for k, v in metrics.items()})
    return base


def test_a_bare_assertion_must_hold_in_every_replication():
    """livelock == false fails if one of three replications livelocked, naming that one."""
    (o,) = outcomes("livelock == false", [run(), run(livelock=True), run()])
    assert not o.passed and o.failed == (1,)
    assert o.measured == "livelock = true (replication 1)"


def test_all_and_any_range_over_replications():
    """all(e) needs e in every replication, any(e) in one."""
    runs = [run(), run(livelock=True)]
    a, b = outcomes("all(livelock)\nany(livelock)", runs)
    assert (a.passed, b.passed) == (False, True)


def test_fraction_is_the_share_of_replications_where_it_holds():
    """fraction(livelock) over 1 livelock in 4 runs is 0.25."""
    runs = [run(livelock=True), run(), run(), run()]
    ok, bad = outcomes("fraction(livelock) == 0.25\nfraction(livelock) >= 0.9", runs)
    assert ok.passed and not bad.passed and bad.measured == "fraction(livelock) = 0.25"


def test_mean_keeps_the_metrics_unit():
    """mean(time_to_l2_progress_ns) of 1 ms and 3 ms is 2 ms, a time."""
    (o,) = outcomes("mean(time_to_l2_progress_ns) within 1us of 2ms",
                    [run(time_to_l2_progress_ns=1e6), run(time_to_l2_progress_ns=3e6)])
    assert o.passed and o.measured == "mean(time_to_l2_progress_ns) = 2ms"


def test_a_percentage_tolerance_is_relative_to_the_target():
    """eoi_count 10100 is within 1% of 10000 (100 allowed), not of 9990 (99.9), nor within 99 of 10000."""
    ok, rel_bad, abs_bad = outcomes("eoi_count within 1% of 10000\neoi_count within 1% of 9990\n"
                                    "eoi_count within 99 of 10000", [run(eoi_count=10100)])
    assert (ok.passed, rel_bad.passed, abs_bad.passed) == (True, False, False)


def test_scenario_values_are_names_too():
    """duration (run.duration) and threshold (the mitigation's) are the scenario's values."""
    (o,) = outcomes("eoi_count within 1% of duration / 20us + qemu_eoi_throttle.threshold",
                    [run(eoi_count=20000)])
    assert o.passed


def test_never_is_later_than_any_time():
    """A null time_to_l2_progress_ns (L2 never ran) is greater than any time and shows as never."""
    ok, bad = outcomes("time_to_l2_progress_ns > 1s\ntime_to_l2_progress_ns < 1s",
                       [run(time_to_l2_progress_ns=math.nan)])
    assert ok.passed and not bad.passed and bad.measured == "time_to_l2_progress_ns = never"


def test_a_null_metric_compares_false():
    """A null latency (nothing serviced) makes both < and > false, shown as null."""
    a, b = outcomes("devices.uhci.latency_p50_ns < 1s\ndevices.uhci.latency_p50_ns > 1s",
                    [run(device__uhci__latency_p50_ns=math.nan)])
    assert not a.passed and not b.passed and a.measured == "devices.uhci.latency_p50_ns = null"


def test_names_outside_a_quantifier_are_per_replication():
    """eoi_count > mean(eoi_count) holds in the replication above the mean only."""
    (o,) = outcomes("eoi_count > mean(eoi_count)", [run(eoi_count=10), run(eoi_count=30)])
    assert o.failed == (0,)


def test_a_flag_alone_asserts_it_is_true():
    """A line holding only a true-or-false metric (livelock) asserts that it is true."""
    (o,) = outcomes("livelock", [run(livelock=True), run(livelock=False)])
    assert o.failed == (1,)
