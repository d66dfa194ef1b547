"""The lockstep executor against the per-lane kernel on random scenarios
with idle vCPUs (machine.idle: work, HLT, halt-polling, wake-up latency)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from irqlab.ir import LevelSpec, Quantity
from tests.engine.scenarios import device, guest, ms, us, use
from tests.engine.test_differential import compare, scenarios
from tests.engine.test_idle import idle_guest

SINGLE = (LevelSpec("L0", "l0"), LevelSpec("L1", "l1"))


def single_level(scn):
    """``scn`` (a random scenario of test_differential) as a single-level guest."""
    pol = next((lv.policy for v in scn.vcpus for lv in v.levels if lv.policy is not None), None)
    levels = (SINGLE[0], replace(SINGLE[1], policy=pol))
    return replace(scn, vcpus=tuple(replace(v, levels=levels) for v in scn.vcpus),
                   devices=tuple(replace(d, serviced_by="L1") for d in scn.devices),
                   mitigations=tuple(m for m in scn.mitigations if m.name != "preemption_timer_throttle"))


@st.composite
def idle_scenarios(draw, base=None):
    """A random scenario of test_differential (or ``base``'s) made a single-level guest with
    idle vCPUs: random device work (run by the servicing vCPU or handed to one with a
    reschedule IPI), halt-polling parameters and wake-up latency."""
    scn = single_level(draw(base if base is not None else scenarios()))
    cpus = list(range(len(scn.vcpus)))
    devices = tuple(replace(d, work=us(draw(st.sampled_from([0, 0.5, 5, 40]))),
                            work_on=draw(st.sampled_from([-1] + cpus))) for d in scn.devices)
    m = replace(scn.machine, idle=True,
                halt_poll=us(draw(st.sampled_from([0, 3, 50, 200]))),
                halt_poll_grow=draw(st.sampled_from([0, 2, 3])),
                halt_poll_grow_start=us(draw(st.sampled_from([1, 10]))),
                halt_poll_shrink=draw(st.sampled_from([0, 2])),
                wakeup=us(draw(st.sampled_from([0, 1, 10]))))
    return replace(scn, machine=m, devices=devices)


@pytest.mark.slow
@settings(max_examples=min(settings.default.max_examples, 120))  # CI time: 120 of the ci profile's 300
@given(idle_scenarios())
def test_executors_agree_with_idle_vcpus(scn):
    """Every metric and trace record of the lockstep executor and of the kernel (traced and
    untraced) equals the traced kernel's when vCPUs halt, poll and are woken."""
    compare(scn)


def _split_level_pin():
    """Two idle vCPUs, QEMU's IOAPIC, a level pin with random arrivals: halt_poll_ns grows and shrinks."""
    d = replace(device("disk", 0x50, gsi=10, service=us(3), arrival=use("arrival", "poisson", rate=2e4)), work=us(15))
    s = guest(devices=[d], irqchip="split", apicv=False, duration=ms(1), vcpus=2)
    return replace(s, machine=replace(s.machine, idle=True, halt_poll=us(40), wakeup=us(5), halt_poll_grow=3))


def _handed_over():
    """Work run by another vCPU, woken by a reschedule IPI."""
    s = idle_guest(halt_poll=us(0), vcpus=2)
    return replace(s, devices=(replace(s.devices[0], work_on=1),))


FIXED = {
    "blocked": lambda: idle_guest(halt_poll=us(0), wakeup=us(7)),
    "polling": lambda: idle_guest(halt_poll=us(200), wakeup=us(7), period=us(30), work=us(5)),
    "amd without apicv": lambda: idle_guest(vendor="amd", apicv=False),
    "split level pin": _split_level_pin,
    "reschedule ipi": _handed_over,
}


@pytest.mark.parametrize("case", sorted(FIXED))
def test_executors_agree_on_fixed_idle_cases(case):
    """Every metric and trace record of the lockstep executor and of the kernel equals the
    traced kernel's on hand-picked idle cases (blocking, polling, grow and shrink, AMD, IPIs)."""
    compare(FIXED[case](), n=2)
