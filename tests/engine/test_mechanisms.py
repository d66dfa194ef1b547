"""Issue 12's mechanisms, one rule per test: VFIO INTx through KVM's resampling irqfd,
the oneshot flow against QEMU's throttle, and the AMD immediate exit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from irqlab import engine
from irqlab.errors import ScenarioError
from tests.engine.helpers import events, names, run
from tests.engine.scenarios import device, founding, guest, ms, us, use

VFIO_NS = 5000  # costs.vfio: 12500 cycles at 2.5 GHz


def screaming(vfio: bool, **kw):
    """A level device whose driver never lowers the line, with KVM's in-kernel IOAPIC and
    its successive-EOI delay at a low threshold."""
    d = device("nic", 0x61, gsi=11, lowers_line=False, vfio=vfio)
    mit = use("mitigation", "kvm_eoi_delay", threshold=20, hz=1000)
    return guest(devices=[d], irqchip="kernel", mitigations=[mit], duration=ms(2), **kw)


def test_vfio_resampler_deasserts_before_the_irr_test_so_kvm_eoi_delay_never_engages():
    """VFIO INTx: the EOI's ack notifier lowers the GSI first, the counter resets, the delay never fires."""
    emulated = run(screaming(False), trace=False).lane(0)
    vfio = run(screaming(True), trace=False).lane(0)
    assert emulated["mitigation_activations"]["kvm_eoi_delay"] >= 1
    assert vfio["eoi_count"] > 20 * 10  # a storm, far past the threshold
    assert vfio["mitigation_activations"]["kvm_eoi_delay"] == 0


def test_vfio_refires_asynchronously_after_the_host_latency():
    """After the EOI unmasks the host line with the device still asserting, the GSI rises costs.vfio later."""
    r = run(with_duration(screaming(True), us(40)))
    ev = events(r)
    unmask = next(t for t, e, x in ev if e == "irqlab_vfio_unmask" and x.endswith("line 1"))
    rise = next(t for t, e, x in ev if e == "kvm_set_irq" and x == "gsi 11 level 1 source 1" and t > unmask)
    assert rise - unmask == VFIO_NS * 1000
    ack = [e for t, e, _ in ev if t == unmask]
    assert ack.index("kvm_ack_irq") < ack.index("irqlab_vfio_unmask")


def with_duration(s, d):
    return replace(s, run=replace(s.run, duration=d))


def oneshot_vfio(**kw):
    d = device("nic", 0x61, gsi=11, vfio=True, service=us(5),
               arrival=use("arrival", "periodic", period=us(200)))
    return guest(devices=[d], irqchip="kernel", policy="irqf_oneshot", duration=ms(1), **kw)


def test_unmask_resamples_a_vfio_pin_so_oneshot_gets_no_extra_interrupt():
    """KVM fef8f2b90edb: unmasking a pin whose irr went stale notifies the resampler instead of delivering."""
    fixed = run(oneshot_vfio(), trace=False).lane(0)
    assert fixed["spurious_count"] == 0 and fixed["interrupts_delivered"] == 5


def test_without_the_unmask_resample_every_oneshot_unmask_injects_an_extra_interrupt():
    """Before fef8f2b90edb: the stale irr is delivered at each unmask, one spurious interrupt per interrupt."""
    old = run(oneshot_vfio(resample_on_unmask=False), trace=False).lane(0)
    assert old["spurious_count"] == 5 and old["interrupts_delivered"] == 10


def test_oneshot_redirection_writes_reset_qemu_throttle_so_it_never_trips():
    """QEMU ioapic_mem_write zeroes the pin's EOI count: a mask/unmask guest never trips the throttle."""
    mit = use("mitigation", "qemu_eoi_throttle", threshold=20, delay=us(100))

    def storm(policy):
        d = device("nic", 0x61, gsi=11, lowers_line=False)
        return guest(devices=[d], irqchip="split", policy=policy, mitigations=[mit], duration=ms(2))

    early = run(storm("eoi_before_lower"), trace=False).lane(0)
    oneshot = run(storm("irqf_oneshot"), trace=False).lane(0)
    assert early["mitigation_activations"]["qemu_eoi_throttle"] >= 1
    assert oneshot["eoi_count"] > 100 and oneshot["mitigation_activations"]["qemu_eoi_throttle"] == 0


def test_oneshot_thread_delay_runs_between_the_eoi_and_the_service():
    """irqf_oneshot's thread parameter delays the device's service after the EOI by exactly that time."""
    def latency(thread):
        d = device("nic", 0x61, gsi=11, service=us(5), policy=use("policy", "irqf_oneshot", thread=thread))
        return run(guest(devices=[d], irqchip="kernel", duration=ms(1)), trace=False).lane(0)
    a, b = latency(0.0), latency(20e-6)
    assert b["devices"]["nic"]["latency_max_ns"] - a["devices"]["nic"]["latency_max_ns"] == pytest.approx(20000)


def test_amd_immediate_exit_lets_l2_run_the_self_ipi_slice():
    """SVM: with an interrupt pending for L1, L2 runs costs.self_ipi before the self-IPI exits it."""
    intel = run(founding(duration=ms(0.3)), trace=False).lane(0)
    amd = run(founding(duration=ms(0.3), vendor="amd"), trace=False).lane(0)
    assert intel["l2_time_ns"] == 0
    assert amd["devices"]["uhci"]["serviced"] == 0  # 20 us of service need 100 slices
    assert amd["l2_time_ns"] == pytest.approx(amd["immediate_exits"] * 200.0, abs=200)  # 500 cycles at 2.5 GHz


def test_amd_traces_print_svm_exit_names_and_no_vmx_ones():
    """On AMD kvm_exit and kvm_nested_vmexit print SVM_EXIT_REASONS names (interrupt, vmrun, ...)."""
    r = run(founding(duration=us(30), vendor="amd"))
    reasons = {x.split()[1] for _, e, x in events(r) if e in ("kvm_exit", "kvm_nested_vmexit_inject")}
    reasons |= {x.split()[3] for _, e, x in events(r) if e == "kvm_nested_vmexit"}
    assert reasons and reasons <= {"interrupt", "vmrun", "avic_unaccelerated_access", "npf", "msr", "vintr"}
    assert "PREEMPTION_TIMER" not in " ".join(x for _, _, x in events(r))


def test_program_mechanisms_name_what_the_kernel_backend_cannot_run():
    """Program.mechanisms lists vfio and amd, so a backend without them can fall back."""
    assert engine.compile(founding()).mechanisms == frozenset()
    assert engine.compile(founding(vendor="amd")).mechanisms == {"amd"}
    assert engine.compile(screaming(True)).mechanisms == {"vfio"}
    assert engine.compile(shared_vfio_pin("all")).mechanisms == {"vfio", "amd", "lazy_eoi"}


def test_vfio_needs_the_in_kernel_ioapic():
    """A VFIO INTx device with the split irqchip is a located error."""
    from irqlab.dsl import loads

    src = ("scenario s {\n  machine { irqchip split }\n  vcpu 0 { L1 g {} }\n"
           "  device d { gsi 5; vector 0x41; trigger level; vfio\n"
           "    serviced_by L1 after 1us; arrival once at 0 }\n}\n")
    with pytest.raises(ScenarioError, match="in-kernel IOAPIC"):
        loads(src, "t.scn")


def shared_vfio_pin(lazy_eoi: str):
    """A VFIO device and an emulated one on the same level pin (two sources on one GSI)."""
    hba = device("hba", 0x41, gsi=16, vfio=True, service=us(5), arrival=use("arrival", "periodic", period=us(100)))
    uhci = device("uhci", 0x41, gsi=16, service=us(5), arrival=use("arrival", "once", at=30e-6))
    return guest(devices=[hba, uhci], irqchip="kernel", vendor="amd", lazy_eoi=lazy_eoi, duration=ms(1))


def test_lazy_eoi_on_level_pins_recurses_through_the_resampler_into_a_zero_time_loop():
    """f458d039db7e: set_irq -> lazy EOI -> resampler ack -> set_irq ... at one instant: outcome zero_time_loop."""
    r = run(shared_vfio_pin("all"))
    lane = r.lane(0)
    assert lane["zero_time_loop"] and lane["zero_time_cycle"] == 3
    assert lane["sim_time_ns"] == 30000.0 and not lane["truncated"]
    loop = [x for _, e, x in events(r) if e == "irqlab_zero_time_loop"]
    assert loop == ["3 records per turn, 8 turns nested: irqlab_lazy_eoi pin 16 vec 65 -> "
                    "kvm_ack_irq irqchip IOAPIC pin 16 -> kvm_set_irq gsi 16 level 0 source 1"]


def test_lazy_eoi_restricted_to_edge_pins_has_no_loop():
    """8be8f932e3db: with the lazy EOI for edge pins only, the same machine runs its whole duration."""
    lane = run(shared_vfio_pin("edge"), trace=False).lane(0)
    assert not lane["zero_time_loop"] and lane["zero_time_cycle"] == 0 and lane["sim_time_ns"] == 1e6
    assert lane["devices"]["uhci"]["serviced"] == 1


def zero_cost_storm():
    """A screaming level device on a guest whose every transition costs nothing."""
    from tests.engine.scenarios import costs

    d = device("nic", 0x41, gsi=11, lowers_line=False, service=us(0), arrival=use("arrival", "once", at=1e-6))
    zero = {k: us(0) for k in ("vmexit", "vmentry", "eoi", "ioapic", "handler", "resume")}
    return replace(guest(devices=[d], irqchip="kernel", duration=ms(1)), costs=costs(**zero))


@pytest.mark.slow
def test_events_recurring_at_one_instant_end_the_run_as_a_zero_time_loop_with_its_cycle():
    """100000 events of a lane at one instant stop the run: zero_time_loop, records per turn, the cycle named."""
    r = run(zero_cost_storm())
    lane = r.lane(0)
    assert lane["zero_time_loop"] and not lane["truncated"] and lane["sim_time_ns"] == 1000.0
    assert lane["zero_time_cycle"] == 5
    last = events(r)[-1]
    assert last[1] == "irqlab_zero_time_loop"
    assert last[2] == ("5 records per turn, 100000 events at one instant: vcpu 0 EOI_L0 -> vcpu 0 ACT RETURN -> "
                       "vcpu 0 TAKE -> vcpu 0 ACT SERVICE -> vcpu 0 SERVICE_DONE -> vcpu 0 ACT EOI")


@pytest.mark.slow
def test_both_executors_stop_a_zero_time_loop_identically():
    """The lockstep executor reports the same zero-time loop, records and metrics as the kernel."""
    a = run(zero_cost_storm(), backend="kernel")
    b = run(zero_cost_storm(), backend="numpy")
    assert a.lane(0) == b.lane(0)
    assert [r[2:] for r in a.traces[0].sorted()] == [r[2:] for r in b.traces[0].sorted()]
