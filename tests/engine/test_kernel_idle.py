"""The kernel's idle vCPUs (kernel_idle): what the differential tests do not state on their own."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from irqlab import engine
from irqlab.engine import kernel_ids as K
from irqlab.engine.idle import HALT_WAKE
from irqlab.engine.kernelprog import pack
from tests.engine.scenarios import us
from tests.engine.test_idle import idle_guest


def test_a_program_without_idle_vcpus_has_no_idle_arrays():
    """Without machine.idle the idle offsets are -1 and cost no state; with it they are laid out."""
    scn = idle_guest()
    plain = engine.compile(replace(scn, machine=replace(scn.machine, idle=False)))
    idle = engine.compile(scn)
    o_plain, o_idle = pack(plain).o, pack(idle).o
    assert o_plain[K.O_IDLE_P] == -1 and o_plain[K.O_IDLE] == -1
    assert 0 < o_idle[K.O_IDLE_P] < o_idle[K.O_STATE] <= o_idle[K.O_IDLE]


def test_a_zero_time_cycle_names_an_idle_phase():
    """kernel_mech.event_name's integer of a vCPU in an idle phase decodes to the phase's name."""
    from irqlab.engine.kernel_mech import event_name
    from irqlab.engine.kernelrun import Decoder

    prog = engine.compile(idle_guest())
    packed = pack(prog)
    s = np.zeros(packed.size, np.int64)
    s[: len(packed.tmpl)] = packed.tmpl
    s[s[K.O_PHASE] + 0] = HALT_WAKE
    code = getattr(event_name, "py_func", event_name)(s, K.EV_VCPU, 0)  # as Python, JIT on or off
    assert Decoder(prog, None).event_name(code) == "vcpu 0 HALT_WAKE"


def test_the_series_of_idle_lanes_equal_the_lockstep_executors():
    """A run with series (each lane alone, samples as records) of idle vCPUs gives the lockstep executor's samples."""
    from irqlab.ir import Quantity, SeriesSpec

    scn = idle_guest(halt_poll=us(50), period=us(30), work=us(5))
    fields = ("l1_time_ns", "l0_time_ns", "exits_total", "interrupts_delivered", "irr")
    prog = engine.compile(replace(scn, run=replace(scn.run, series=SeriesSpec(every=Quantity(7e-6, "s"),
                                                                              fields=fields))))
    lanes = [engine.Lane(5, (i,)) for i in range(2)]
    a = engine.run(prog, lanes, backend="numpy")
    b = engine.run(prog, lanes, backend="kernel")
    assert set(b.series) == set(a.series) and a.series["t_ns"].shape[1] > 100
    for f in a.series:
        np.testing.assert_array_equal(a.series[f], b.series[f])
    assert [a.lane(i) for i in range(2)] == [b.lane(i) for i in range(2)]
