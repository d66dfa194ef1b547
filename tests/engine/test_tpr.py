"""Issue 13, mechanism 4: task and processor priority (SDM 10.8.3.1), one rule per test."""

from __future__ import annotations

import pytest

from irqlab import engine
from tests.engine.helpers import run, same_everything
from tests.engine.scenarios import device, guest, ms, us, use

BACKENDS = ("reference", "numpy")


def msi_guest(vector: int, tpr: int, **kw):
    """A single-level guest with one MSI device at ``vector`` raising once at 10 us."""
    d = device("nic", vector, gsi=None, trigger="edge", arrival=use("arrival", "once", at=10e-6))
    return guest(devices=[d], duration=ms(1), tpr=tpr, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_vector_of_the_tpr_class_or_below_is_never_delivered(backend):
    """With TPR 0x50 a vector 0x5x stays pending in IRR: its class is not above PPR[7:4]."""
    lane = run(msi_guest(0x58, 0x50), backend=backend, trace=False).lane(0)
    assert lane["devices"]["nic"]["serviced"] == 0
    assert lane["devices"]["nic"]["delivered"] == 1  # accepted into IRR, never dispatched


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_vector_of_a_class_above_the_tpr_is_delivered(backend):
    """With TPR 0x50 a vector 0x61 is dispatched and serviced."""
    lane = run(msi_guest(0x61, 0x50), backend=backend, trace=False).lane(0)
    assert lane["devices"]["nic"]["serviced"] == 1


def test_tpr_sends_the_program_to_the_numpy_executors():
    """A nonzero TPR is a mechanism the compiled kernel does not run (Program.mechanisms names it)."""
    assert "tpr" in engine.compile(msi_guest(0x61, 0x50)).mechanisms
    assert "tpr" not in engine.compile(msi_guest(0x61, 0)).mechanisms


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_service_class_above_the_tpr_sets_ppr(backend):
    """PPR[7:4] is the larger of TPR[7:4] and the in-service class: with TPR 0x20 and 0x61 in
    service, a second MSI at 0x41 waits for 0x61's EOI (trapped: APICv off), then is delivered."""
    hi = device("hi", 0x61, gsi=None, trigger="edge", arrival=use("arrival", "once", at=10e-6),
                service=us(20))
    lo = device("lo", 0x41, gsi=None, trigger="edge", arrival=use("arrival", "once", at=15e-6))
    r = run(guest(devices=[hi, lo], duration=ms(1), tpr=0x20, apicv=False), backend=backend)
    ev = [(t, e, x) for t, _, _, e, x in r.traces[0].sorted()]
    eoi_hi = next(t for t, e, x in ev if e == "kvm_eoi" and x.endswith("vector 97"))
    take_lo = next(t for t, e, x in ev if e == "kvm_eoi" and x.endswith("vector 65"))
    assert eoi_hi < take_lo
    assert r.lane(0)["devices"]["lo"]["serviced"] == 1


def test_tpr_zero_changes_nothing():
    """``machine.tpr`` 0 (the default) gives the same results as a scenario that never names it."""
    a = run(msi_guest(0x58, 0), trace=False)
    b = run(guest(devices=[device("nic", 0x58, gsi=None, trigger="edge",
                                  arrival=use("arrival", "once", at=10e-6))], duration=ms(1)), trace=False)
    assert same_everything(a, b, 0)
