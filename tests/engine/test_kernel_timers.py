"""The per-lane kernel runs issue 13's timers (PIT, RTC, SynIC stimer) and host contention
(``mitigation deschedule``) as the reference does (the random cases:
tests/engine/test_differential_timers.py)."""

from __future__ import annotations

import pytest

from irqlab import dsl, engine
from irqlab.engine.kernelprog import kernel_support
from tests.engine.test_differential import compare

TIMERS = """
scenario t {{
    machine {{ irqchip kernel; apicv off; vcpus 2 }}
    vcpu all {{ {levels} }}
    device pit0 {{ gsi 2; vector 0x30; trigger edge; dest 0; model pit {{ reinject {reinject} }}
                  serviced_by L1 after 90us; arrival periodic period 100us }}
    device rtc0 {{ gsi 8; vector 0x38; trigger edge; dest 1; model rtc {{ slew {slew} }}
                  serviced_by L1 after 70us; arrival periodic period 61us start 13us }}
    device st0 {{ msi; vector 0x91; dest 1; model stimer {{ retry {retry} }}
                 serviced_by L1 after 40us; arrival periodic period 83us start 5us }}
    device nic {{ msi; vector 0x51; dest 0; serviced_by L1 after 3us; arrival poisson rate 40kHz }}
    mitigation deschedule {{ vcpu {vcpu}; start 20us; period 170us; length 95us }}
    run {{ duration 3ms }}
}}
"""
SINGLE = "L1 linux { policy lower_then_eoi }"
NESTED = "L1 kvm { policy lower_then_eoi }; L2 linux { }"


def timers(levels=SINGLE, reinject=1, slew=1, retry=1, vcpu=1):
    """Two vCPUs with a PIT, an RTC and a SynIC stimer at once, an MSI device, and the host
    descheduling ``vcpu`` for 95 of every 170 us."""
    return dsl.loads(TIMERS.format(levels=levels, reinject=reinject, slew=slew, retry=retry, vcpu=vcpu))


@pytest.mark.parametrize("knobs", [dict(), dict(reinject=0, slew=0, retry=0, vcpu=0),
                                   dict(levels=NESTED, vcpu=0), dict(levels=NESTED, reinject=0, retry=0)])
def test_kernel_equals_the_reference_with_all_three_timers_and_a_descheduled_vcpu(knobs):
    """Every metric, trace record, mode change and counter of the kernel (traced and not)
    equals the reference's with the three timer models side by side (their slots, the RTC's
    coalesced-tick timer, the vCPUs' holds interleaved)."""
    scn = timers(**knobs)
    assert kernel_support(engine.compile(scn)) is None
    compare(scn, n=2, others=("numpy", "untraced", "reference"))


@pytest.mark.parametrize("model", ["pit { }", "rtc { }", "stimer { }"])
def test_auto_runs_each_timer_model_and_deschedule_on_the_kernel(model):
    """A program with a timer model and a deschedule plugin goes to the kernel under auto."""
    device = {"pit": "gsi 2; trigger edge", "rtc": "gsi 8; trigger edge", "stimer": "msi"}[model.split()[0]]
    scn = dsl.loads(f"""
scenario t {{
    machine {{ irqchip kernel; apicv off }}
    vcpu 0 {{ L1 linux {{ policy lower_then_eoi }} }}
    device tick {{ {device}; vector 0x30; model {model}; serviced_by L1 after 20us; arrival periodic period 1ms }}
    mitigation deschedule {{ vcpu 0; period 3ms; length 1ms }}
    run {{ duration 5ms }}
}}""")
    prog = engine.compile(scn)
    assert prog.mechanisms == {f"timers_{model.split()[0]}", "deschedule"}
    assert engine.run(prog, [engine.Lane(0)]).backend.startswith("kernel (")


def test_a_timer_program_with_idle_vcpus_runs_on_the_kernel_as_on_the_reference():
    """Timers and idle vCPUs together: the kernel runs the program (no mechanism keeps it
    off) and equals the reference."""
    from dataclasses import replace

    scn = timers()
    scn = replace(scn, machine=replace(scn.machine, idle=True))
    assert kernel_support(engine.compile(scn)) is None
    compare(scn, n=2, others=("numpy", "untraced", "reference"))


def test_a_zero_time_cycle_names_a_timer_slot_as_the_reference_does():
    """The decoder spells a timer slot's event in a zero-time cycle 'tslot i' (as Lockstep.event_name does)."""
    from types import SimpleNamespace

    from irqlab.engine import kernel_ids as K
    from irqlab.engine.kernelrun import Decoder

    code = ((K.EV_TSLOT * 65536 + 1) * 64 + 0) * 16 + 0  # kernel_mech.event_name of slot 1 (6 bits of phase)
    assert Decoder.event_name(SimpleNamespace(p=None), code) == "tslot 1"
