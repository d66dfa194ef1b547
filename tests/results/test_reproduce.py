"""irqlab reproduce: rerun from what is stored and compare every metric bit for bit."""

from __future__ import annotations

import math

import numpy as np

import irqlab.results.reproduce as rp
from irqlab.cli.main import main
from tests.results.results_helpers import fake_rerun


def test_identical_rerun_exits_zero(written, monkeypatch, capsys):
    """A rerun that gives the same metrics (NaN included) is reported reproduced, status 0."""
    calls = []
    monkeypatch.setattr(rp, "load_rerun", lambda: fake_rerun(calls))
    assert main(["reproduce", str(written), "r000009"]) == 0
    assert "bit-identical" in capsys.readouterr().out
    text, file, params, seed, key = calls[0]
    assert (text, file, seed, key) == ("run { duration 1ms }\n", "storm.scn", 1009, (4, 1))
    assert params == {"mitigation.qemu_eoi_throttle.threshold": 100,
                      "mitigation.qemu_eoi_throttle.delay": 0.01}


def test_nan_metrics_compare_equal(written, monkeypatch):
    """A metric that is NaN (stored as NULL) counts as reproduced when it is NaN again."""
    monkeypatch.setattr(rp, "load_rerun", lambda: fake_rerun())
    rec, diffs = rp.reproduce(str(written), "r000006")  # lane 0: time_to_l2_progress_ns NaN
    stored = dict((p, v) for p, _, v, _, _ in rec.metrics)
    assert stored["time_to_l2_progress_ns"] is None and diffs == []


def test_one_ulp_difference_is_reported(written, monkeypatch, capsys):
    """A metric one ulp off is a difference: printed, status 1."""
    def tweak(res):
        res.metrics["l2_time_ns"] = np.nextafter(res.metrics["l2_time_ns"], math.inf)

    monkeypatch.setattr(rp, "load_rerun", lambda: fake_rerun(tweak=tweak))
    assert main(["reproduce", str(written), "r000001"]) == 1
    out = capsys.readouterr().out
    assert "NOT reproduced: 1 of" in out and "l2_time_ns" in out


def test_changed_count_and_status_are_reported(written, monkeypatch):
    """A changed integer count and a changed status are both listed."""
    def tweak(res):
        res.exits["VMRESUME"] = res.exits["VMRESUME"] + 1
        res.status[0] = "failed"

    monkeypatch.setattr(rp, "load_rerun", lambda: fake_rerun(tweak=tweak))
    _, diffs = rp.reproduce(str(written), "r000002")
    assert sorted(d.name for d in diffs) == ["exits.VMRESUME", "status"]


def test_same_is_bitwise():
    """same() is bit equality with NaN == NaN and NULL == NaN."""
    assert rp.same(None, float("nan")) and rp.same(1.5, np.float64(1.5))
    assert not rp.same(0.0, -0.0) and not rp.same(1.0, np.nextafter(1.0, 2.0))
    assert rp.same(3, np.int64(3)) and not rp.same(None, 0.0)
