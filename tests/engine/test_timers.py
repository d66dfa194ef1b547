"""Rules of issue 13's mechanism 3: timers that catch up, and a descheduled vCPU
(docs/model.md, "Timers that catch up, and host contention")."""

from __future__ import annotations

import pytest

from irqlab import dsl
from irqlab.errors import ScenarioError
from tests.engine.helpers import events, names, run

BACKENDS = ("reference", "numpy", "kernel")


def scenario(model: str, *, machine: str = "irqchip kernel; apicv off", service: str = "20us",
             period: str = "1ms", desched: str = "start 2500us; period 10ms; length 4ms",
             device: str = "gsi 2; vector 0x30; trigger edge", duration: str = "20ms"):
    return dsl.loads(f"""
scenario t {{
    machine {{ {machine} }}
    vcpu 0 {{ L1 linux {{ policy lower_then_eoi }} }}
    device tick {{
        {device}
        model {model}
        serviced_by L1 after {service}
        arrival periodic period {period}
    }}
    mitigation deschedule {{ vcpu 0; {desched} }}
    run {{ duration {duration} }}
}}
""")


def tick(result):
    return result.lane(0)["devices"]["tick"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_pit_reinjects_the_ticks_missed_while_the_vcpu_was_descheduled(backend):
    """With reinject, ticks that expire while the guest cannot ack are held and each is
    injected at the EOI of the one before (kvm_pit_ack_irq): 3 of the 4 ticks of each 4 ms
    stretch come late, none is lost."""
    d = tick(run(scenario("pit { reinject 1 }"), backend=backend))
    assert (d["raised"], d["delivered"], d["redelivered"], d["coalesced"]) == (20, 14, 6, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pit_without_reinject_loses_the_ticks_that_find_the_vector_pending(backend):
    """Without reinject every expiry pulses the line; ticks that find the vector still in
    the descheduled vCPU's IRR are coalesced."""
    d = tick(run(scenario("pit { reinject 0 }"), backend=backend))
    assert (d["raised"], d["delivered"], d["redelivered"], d["coalesced"]) == (20, 14, 0, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pit_ack_notifier_runs_at_the_guests_eoi(backend):
    """The PIT's ack notifier (kvm_ack_irq) follows KVM's EOI of the tick's vector."""
    r = run(scenario("pit { reinject 1 }", desched="length 0; period 10ms", duration="1500us"), backend=backend)
    seq = names(r, keep={"kvm_eoi", "kvm_ack_irq"})
    assert seq == ["kvm_eoi", "kvm_ack_irq"] * 2


RTC = dict(machine="irqchip kernel; apicv on", device="gsi 8; vector 0xd1; trigger edge")


@pytest.mark.parametrize("backend", BACKENDS)
def test_rtc_with_slew_reinjects_the_ticks_kvm_reported_coalesced(backend):
    """With driftfix=slew, ticks raised while the last RTC interrupt awaits its EOI (KVM's
    RTC EOI tracking) are counted in irq_coalesced and all reinjected once the vCPU runs."""
    d = tick(run(scenario("rtc { slew 1 }", **RTC), backend=backend))
    assert (d["raised"], d["delivered"], d["redelivered"], d["coalesced"]) == (20, 14, 6, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rtc_without_slew_loses_those_ticks(backend):
    """Without slew the same ticks are lost."""
    d = tick(run(scenario("rtc { slew 0 }", **RTC), backend=backend))
    assert (d["raised"], d["delivered"], d["redelivered"], d["coalesced"]) == (20, 14, 0, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rtc_reinjection_on_register_c_read_waits_for_the_eoi(backend):
    """The handler reads register C before its EOI, so the reinjection on ack finds the
    tick still pending EOI; the coalesced timer (every period / (min(n, 7) + 1)) delivers it."""
    r = run(scenario("rtc { slew 1 }", desched="start 2500us; period 10ms; length 2ms", duration="6ms", **RTC),
            backend=backend)
    coalesced = [(t, x) for t, e, x in events(r) if e == "irqlab_rtc_coalesced"]
    # the 4 ms tick is coalesced (3 ms's awaits its EOI); the retries at 4.5 ms (timer and
    # register C) and 5 ms (timer; the 5 ms tick came first) find a tick pending EOI
    assert coalesced == [(4_000_000_000, "irq_coalesced 1"), (5_500_000_000, "irq_coalesced 0")]


STIMER = dict(machine="irqchip kernel; apicv on", device="msi; vector 0x91")


@pytest.mark.parametrize("backend", BACKENDS)
def test_stimer_ticks_passed_while_descheduled_are_lost_and_one_comes_late(backend):
    """A stimer that expired while its vCPU was descheduled is processed when it runs again:
    that tick is delivered late, the boundaries passed meanwhile are lost (lazy policy)."""
    d = tick(run(scenario("stimer {}", **STIMER), backend=backend))
    assert (d["raised"], d["delivered"], d["redelivered"], d["coalesced"]) == (20, 12, 2, 6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stimer_without_retry_drops_a_tick_that_finds_the_slot_busy(backend):
    """Since 7deec5e0df74 a periodic stimer whose message slot is still busy drops the tick."""
    d = tick(run(scenario("stimer { retry 0 }", service="300us", period="200us",
                          desched="length 0; period 10ms", duration="2ms", **STIMER), backend=backend))
    assert d["redelivered"] == 0 and d["coalesced"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_stimer_with_retry_piles_ticks_onto_the_guests_eoi(backend):
    """Before 7deec5e0df74 a busy slot makes KVM retry at the guest's EOI: no tick is dropped
    at its expiry, each comes as soon as the last one's handler ends."""
    r = run(scenario("stimer { retry 1 }", service="300us", period="200us",
                     desched="length 0; period 10ms", duration="2ms", **STIMER), backend=backend)
    d = tick(r)
    assert d["redelivered"] > 0 and d["coalesced"] < d["redelivered"]
    assert "kvm_hv_stimer_expiration" in names(r)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_descheduled_vcpu_spends_the_stretch_in_l0_and_its_guest_stalls(backend):
    """The stretches (2 of 4 ms) are host time, not guest time, and the guest's longest
    stall covers one."""
    lane = run(scenario("pit { reinject 1 }"), backend=backend).lane(0)
    assert lane["l0_time_ns"] >= 8e6
    assert lane["livelock_max_ns"] >= 4e6


def test_the_pit_needs_apicv_off():
    """KVM inhibits APICv while the PIT reinjects: a PIT with APICv on is an error."""
    with pytest.raises(ScenarioError, match="APICV_INHIBIT_REASON_PIT_REINJ"):
        scenario("pit {}", machine="irqchip kernel; apicv on")


def test_a_stimer_needs_a_periodic_arrival():
    """A stimer restarts at its period's next boundary: another arrival is an error."""
    with pytest.raises(ScenarioError, match="needs 'arrival periodic"):
        dsl.loads("""
scenario t {
    vcpu 0 { L1 linux {} }
    device tick { msi; vector 0x91; model stimer {}; serviced_by L1 after 1us; arrival once at 0 }
}""")


def test_deschedule_names_an_existing_vcpu():
    """A deschedule of a vCPU the machine does not have is an error at its value."""
    with pytest.raises(ScenarioError, match="deschedule vcpu 2 does not exist"):
        dsl.loads("""
scenario t {
    vcpu 0 { L1 linux {} }
    device d { msi; vector 0x91; serviced_by L1 after 1us; arrival once at 0 }
    mitigation deschedule { vcpu 2; period 1ms; length 1us }
}""")


def test_programs_with_timers_or_deschedule_name_their_mechanisms():
    """auto keeps such programs off the kernel: Program.mechanisms names them."""
    from irqlab import engine

    assert {"timers_pit", "deschedule"} <= engine.compile(scenario("pit {}")).mechanisms


@pytest.mark.parametrize("backend", ["numpy", "kernel"])
def test_a_batch_of_lanes_with_different_contention_and_retry_matches_each_lane_alone(backend):
    """Determinism: lanes of one lockstep (or kernel) batch with different stretch lengths, vCPUs
    and retry settings give what each gives alone in the other executor."""
    import json

    from irqlab import engine

    s = dsl.loads("""
scenario t {
    machine { irqchip kernel; apicv on; vcpus 2 }
    vcpu all { L1 windows { policy lower_then_eoi } }
    device tick { msi; vector 0x91; dest 1; model stimer {}; serviced_by L1 after 300us; arrival periodic period 500us }
    mitigation deschedule { vcpu 1; period 130us; length 60us }
    run { duration 8ms }
}""")
    prog = engine.compile(s)
    points = [{"mitigation.deschedule.length": ln, "device.tick.model.retry": rt, "mitigation.deschedule.vcpu": v}
              for ln, rt, v in ((0, 0, 1), (60_000_000, 1, 1), (60_000_000, 0, 1), (45_000_000, 1, 0))]
    batch = engine.run(prog, [engine.Lane(3, (i,), p) for i, p in enumerate(points)], backend=backend)
    for i, p in enumerate(points):
        alone = engine.run(prog, [engine.Lane(3, (i,), p)], backend="kernel" if backend == "numpy" else "numpy")
        assert json.dumps(batch.lane(i), sort_keys=True) == json.dumps(alone.lane(0), sort_keys=True)
