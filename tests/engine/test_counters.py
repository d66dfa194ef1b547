"""Counters that must agree with each other: per device and summed over devices."""

from __future__ import annotations

import pytest
from hypothesis import given

from irqlab.ir import Quantity
from tests.engine.helpers import run
from tests.engine.scenarios import device, guest, ms, us, use
from tests.engine.test_differential import scenarios


def check_books(m: dict) -> None:
    devs = m["devices"].values()
    for d in devs:
        assert d["raised"] == d["delivered"] + d["coalesced"] + d["lost"] + d["pending"], d
    assert m["interrupts_raised"] == sum(d["raised"] for d in devs)
    assert m["interrupts_coalesced"] == sum(d["coalesced"] for d in devs)
    assert m["interrupts_delivered"] == sum(d["delivered"] + d["redelivered"] for d in devs)


@pytest.mark.slow
@given(scenarios())
def test_device_counters_partition_arrivals_on_random_scenarios(scn):
    """Per device raised = delivered + coalesced + lost + pending, and the devices' sums are the run's."""
    r = run(scn, n=2, trace=False)
    for i in range(2):
        check_books(r.lane(i))


def test_msi_arrivals_merged_in_the_irr_count_as_the_devices_coalesced():
    """An MSI arriving while its vector is pending in IRR is coalesced at its device, not delivered."""
    d = device("nic", 0x61, gsi=None, trigger="edge", service=us(30),
               arrival=use("arrival", "periodic", period=us(4), count=20))
    m = run(guest(devices=[d], duration=ms(1))).lane(0)
    nic = m["devices"]["nic"]
    assert nic["coalesced"] > 0 and nic["coalesced"] == m["interrupts_coalesced"]
    assert nic["delivered"] == m["interrupts_delivered"] < nic["raised"] == 20
    check_books(m)


def test_ioapic_edge_arrivals_merged_are_not_counted_delivered():
    """An IOAPIC edge merged into a pending IRR bit counts as coalesced, not delivered."""
    d = device("e", 0x41, gsi=11, trigger="edge", service=us(30),
               arrival=use("arrival", "periodic", period=us(4), count=20))
    for irqchip in ("split", "kernel"):
        m = run(guest(devices=[d], irqchip=irqchip, duration=ms(1))).lane(0)
        e = m["devices"]["e"]
        assert e["coalesced"] > 0 and e["delivered"] + e["coalesced"] == 20
        check_books(m)


def test_level_redelivery_is_counted_apart_from_the_arrival():
    """The founding storm's re-deliveries of a line still high are 'redelivered', not arrivals delivered."""
    from tests.engine.scenarios import founding

    m = run(founding(duration=ms(0.2)), trace=False).lane(0)
    u = m["devices"]["uhci"]
    assert u["raised"] == u["delivered"] == 1 and u["redelivered"] > 10
    check_books(m)


def test_edges_on_a_masked_pin_are_counted_lost():
    """An edge that hits a masked pin is 'lost' at its device."""
    d = device("e", 0x41, gsi=11, trigger="edge", service=us(20),
               arrival=use("arrival", "periodic", period=us(10), count=3))
    for irqchip in ("split", "kernel"):
        m = run(guest(devices=[d], policy="irqf_oneshot", irqchip=irqchip, duration=ms(0.2))).lane(0)
        assert m["devices"]["e"]["lost"] == 2
        check_books(m)
