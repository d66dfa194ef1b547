"""The two implementations of the semantics against each other on random scenarios: the
lockstep executor and the per-lane kernel (traced, and untraced). The kernel's own Python
(backend ``reference``) is held to the compiled kernel in tests/engine/test_kernel_python.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from irqlab import engine
from irqlab.ir import Quantity
from tests.engine.scenarios import device, guest, ms, us, use

NS = 1e-9


@st.composite
def service_dists(draw):
    """None (the constant service time), or a random service-time distribution."""
    kind = draw(st.sampled_from([None, "exponential", "uniform", "lognormal", "gamma"]))
    mean = draw(st.sampled_from([0.5e-6, 2e-6, 20e-6]))
    if kind is None:
        return None
    if kind == "uniform":
        return use("service", kind, low=mean / 2, high=mean * 1.5)
    if kind == "lognormal":
        return use("service", kind, mean=mean, sigma=draw(st.sampled_from([0.2, 1.0])))
    if kind == "gamma":
        return use("service", kind, mean=mean, shape=draw(st.sampled_from([0.5, 3.0])))
    return use("service", kind, mean=mean)


@st.composite
def scenarios(draw, issue12: bool = False, dists: bool = True):
    """Random scenarios; ``issue12`` draws mostly VFIO INTx, shared pins and lazy EOI (kernel
    irqchip); ``dists=False``: constant service and body times, Intel, lazy EOI of edge vectors
    only and no VFIO (what the kernel runs)."""
    stack = draw(st.sampled_from([("L0", "L1"), ("L0", "L1", "L2")] if issue12 else
                                 [("L0",), ("L0", "L1"), ("L0", "L1", "L2")]))
    irqchip = "kernel" if issue12 else draw(st.sampled_from(["split", "kernel"]))
    apicv = draw(st.booleans())
    x2apic = draw(st.booleans())
    suppress = "off"
    if x2apic and len(stack) > 1:
        suppress = draw(st.sampled_from(["off", "quirk", "on"] if irqchip == "split" else ["off", "on"]))
    policies = ["lower_then_eoi", "eoi_before_lower", "irqf_oneshot"]
    if suppress != "off":
        policies.append("directed_eoi")
    policy = draw(st.sampled_from(policies))
    # one device may run Directed EOI while the others do not: SPIV bit 12 is LAPIC-wide
    directed_one = suppress != "off" and draw(st.booleans())
    serviced = {("L0",): ["L0"], ("L0", "L1"): ["L1"], ("L0", "L1", "L2"): ["L1", "L2"]}[stack]
    by = draw(st.sampled_from(serviced))
    devices, vectors, gsis = [], [0x30, 0x51, 0x52, 0x91], [5, 8, 20, 23]  # 8: the RTC (EOI-exit bitmap)
    n_vcpus = draw(st.integers(1, 2))
    vfio_ok = dists and irqchip == "kernel" and len(stack) > 1  # issue 12: VFIO INTx through the resampler
    share = draw(st.booleans())  # device 1 shares device 0's level pin (a second source on the GSI)
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["level", "level", "edge"] if issue12 else ["level", "edge", "msi"]))
        vfio = vfio_ok and kind == "level" and draw(st.booleans())
        arrival = draw(st.sampled_from(["once", "periodic", "poisson", "bursty"]))
        if arrival == "once":
            arr = use("arrival", "once", at=draw(st.integers(0, 200)) * 1e-6)
        elif arrival == "periodic":
            arr = use("arrival", "periodic", period=draw(st.integers(3, 300)) * 1e-6,
                      count=draw(st.integers(0, 5)))
        elif arrival == "poisson":
            arr = use("arrival", "poisson", rate=Quantity(draw(st.sampled_from([5e3, 5e4, 2e5])), "Hz"))
        else:
            arr = use("arrival", "bursty", rate=Quantity(1e5, "Hz"), on=us(50), off=us(150))
        vec, gsi, dest = vectors[i], None if kind == "msi" else gsis[i], draw(st.integers(0, n_vcpus - 1))
        if i == 1 and share and kind == "level" and devices[0].trigger == "level" and devices[0].gsi is not None:
            vec, gsi, dest = devices[0].vector, devices[0].gsi, devices[0].dest
        devices.append(device(
            f"d{i}", vec, gsi=gsi,
            trigger="edge" if kind in ("edge", "msi") else "level", arrival=arr, serviced_by=by,
            service=us(draw(st.sampled_from([0.5, 2, 20]))), lowers_line=draw(st.booleans()) or kind != "level",
            model=draw(st.sampled_from(["generic", "queue"])), dest=dest,
            policy=use("policy", "directed_eoi") if directed_one and i == 0 else None,
            service_dist=draw(service_dists()) if dists else None, vfio=vfio))
    mits = []
    if irqchip == "split" and len(stack) > 1 and draw(st.booleans()):
        mits.append(use("mitigation", "qemu_eoi_throttle", threshold=draw(st.integers(1, 30)), delay=us(40)))
    if irqchip == "kernel" and len(stack) > 1 and draw(st.booleans()):
        mits.append(use("mitigation", "kvm_eoi_delay", threshold=draw(st.integers(1, 30)),
                        hz=draw(st.sampled_from([250, 1000, 100_000])), delay=draw(st.sampled_from([0, 40e-6]))))
    if len(stack) == 3 and draw(st.booleans()):
        mits.append(use("mitigation", "preemption_timer_throttle", threshold=draw(st.integers(0, 5)), delay=200))
    if draw(st.booleans()):
        mits.append(use("mitigation", "linux_spurious", window=draw(st.integers(5, 50)), threshold=3, poll=us(80),
                        pre_5_13=draw(st.integers(0, 1))))
    if draw(st.booleans()):
        mits.append(use("mitigation", "xen_irq_ratelimit", limit=draw(st.integers(2, 20)), window=us(60)))
    return guest(levels=stack, policy=policy, devices=devices, mitigations=mits, duration=ms(0.6), vcpus=n_vcpus,
                 l1_kind=draw(st.sampled_from(["hyperv", "kvm"])),
                 policy_args=dict(body_dist=draw(st.sampled_from(["constant", "exponential", "uniform", "lognormal",
                                                                  "gamma"] if dists else ["constant"])),
                                  body_cv=draw(st.sampled_from([0.3, 1.5]))),
                 irqchip=irqchip, apicv=apicv, x2apic=x2apic, suppress_eoi_broadcast=suppress,
                 ack_on_exit=draw(st.booleans()),
                 vendor=draw(st.sampled_from(["intel", "amd"] if dists else ["intel"])),
                 resample_on_unmask=draw(st.booleans()),
                 lazy_eoi=draw(st.sampled_from(["edge", "all"] if dists else ["edge"])))


def compare(scn, n=4, others=("numpy", "untraced")):
    """Run ``n`` lanes of ``scn`` (at most 4000 events, histograms on) traced with the compiled
    kernel, and assert that each of ``others`` gives the same bits: every metric and, for a
    traced backend, every trace record, mode change and counter sample. ``others`` are
    backend names (``"numpy"``: the lockstep executor, the independent implementation;
    ``"reference"``: the kernel's own Python, JIT off) and ``"untraced"``, the compiled
    kernel without tracing."""
    from dataclasses import replace

    from irqlab.engine.kernelprog import kernel_support

    scn = replace(scn, run=replace(scn.run, max_events=4000, histograms=True))
    prog = engine.compile(scn)
    assert kernel_support(prog) is None, kernel_support(prog)
    lanes = [engine.Lane(7, (i,)) for i in range(n)]
    a = engine.run(prog, lanes, trace_lanes=range(n), backend="kernel")
    for other in others:
        traced = other != "untraced"
        b = engine.run(prog, lanes, trace_lanes=range(n) if traced else (),
                       backend="kernel" if other == "untraced" else other)
        for i in range(n):
            assert json.dumps(a.lane(i), sort_keys=True) == json.dumps(b.lane(i), sort_keys=True), other
            if traced:
                ra = [(t, th, e, x) for t, _, th, e, x in a.traces[i].sorted()]
                rb = [(t, th, e, x) for t, _, th, e, x in b.traces[i].sorted()]
                assert ra == rb, other
                assert sorted(a.traces[i].modes) == sorted(b.traces[i].modes), other
                assert a.traces[i].counters == b.traces[i].counters, other


@pytest.mark.slow
@given(scenarios())
def test_lockstep_matches_the_kernel_on_random_scenarios(scn):
    """Every metric and every trace record of the lockstep executor, and every metric of the
    untraced kernel, equals the traced kernel's (service-time distributions and random body
    times too)."""
    compare(scn)


@pytest.mark.slow
@given(scenarios(issue12=True))
def test_lockstep_matches_the_kernel_on_vfio_shared_pin_and_lazy_eoi_scenarios(scn):
    """The same on scenarios drawn for issue 12's mechanisms (VFIO INTx, shared pins, lazy EOI, AMD)."""
    compare(scn)
