"""The lockstep executor against the per-lane kernel on random scenarios with timers
that catch up (PIT reinjection, RTC coalesced ticks, SynIC stimers) and descheduled vCPUs (issue 13, mechanism 3)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, strategies as st

from tests.engine.scenarios import device, guest, ms, us, use
from tests.engine.test_differential import compare


@st.composite
def timer_scenarios(draw):
    """A PIT (kernel irqchip, APICv off), an RTC (kernel irqchip) or a SynIC stimer serviced
    by the receiving level,
    maybe another device, and mostly a deschedule plugin on a random vCPU."""
    stack = draw(st.sampled_from([("L0", "L1"), ("L0", "L1", "L2")]))
    kind = draw(st.sampled_from(["pit", "stimer", "rtc"]))
    irqchip = "kernel" if kind != "stimer" else draw(st.sampled_from(["split", "kernel"]))
    apicv = False if kind == "pit" else draw(st.booleans())
    n_vcpus = draw(st.integers(1, 2))
    period = draw(st.integers(15, 250)) * 1e-6
    arrival = use("arrival", "periodic", period=period, start=draw(st.integers(0, 40)) * 1e-6)
    vector, gsi = {"pit": (0x30, 2), "rtc": (0x38, 8), "stimer": (0x91, None)}[kind]
    timer = device("tick", vector, gsi=gsi, trigger="edge",
                   arrival=arrival, serviced_by="L1", service=us(draw(st.sampled_from([1, 10, 60, 300]))),
                   dest=draw(st.integers(0, n_vcpus - 1)))
    model = {"pit": lambda: use("device", "pit", reinject=draw(st.integers(0, 1))),
             "rtc": lambda: use("device", "rtc", slew=draw(st.integers(0, 1))),
             "stimer": lambda: use("device", "stimer", retry=draw(st.integers(0, 1)))}[kind]()
    devices = [replace(timer, model=model)]
    if draw(st.booleans()):
        level = draw(st.booleans())
        devices.append(device("d1", 0x51, gsi=20 if level else None, trigger="level" if level else "edge",
                              arrival=use("arrival", "poisson", rate=draw(st.sampled_from([2e4, 2e5]))),
                              serviced_by=draw(st.sampled_from(["L1", stack[-1]])), service=us(2),
                              dest=draw(st.integers(0, n_vcpus - 1))))
    mits = []
    if draw(st.integers(0, 3)):
        mits.append(use("mitigation", "deschedule", vcpu=draw(st.integers(0, n_vcpus - 1)),
                        start=draw(st.integers(0, 300)) * 1e-6, period=draw(st.integers(50, 400)) * 1e-6,
                        length=draw(st.sampled_from([0, 7, 40, 150, 450])) * 1e-6))
    return guest(levels=stack, policy=draw(st.sampled_from(["lower_then_eoi", "eoi_before_lower"])),
                 devices=devices, mitigations=mits, duration=ms(0.6), vcpus=n_vcpus, irqchip=irqchip,
                 apicv=apicv, x2apic=draw(st.booleans()), l1_kind=draw(st.sampled_from(["hyperv", "kvm"])))


@pytest.mark.slow
@given(timer_scenarios())
def test_lockstep_matches_the_kernel_on_timer_and_deschedule_scenarios(scn):
    """Every metric and every trace record of the lockstep executor and of the kernel (traced
    and not) equals the traced kernel's on scenarios with catch-up timers (PIT, RTC, stimer) and
    descheduled vCPUs."""
    compare(scn)
