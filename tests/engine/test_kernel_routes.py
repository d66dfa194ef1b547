"""The kernel's port of guest actions that change routes (irqlab/engine/kernel_routes.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from irqlab import engine
from irqlab.engine import kernel_ids as K
from irqlab.engine.kernelprog import pack
from irqlab.ir import Action, Quantity, RouteWrite
from tests.engine.scenarios import device, guest, ms, us, use
from tests.engine.test_differential import compare


def ratelimited_move(irqchip: str, rte_update: str):
    """Two vCPUs; a screaming level pin under Xen's rate limit (its mask writes go through the
    redirection write's route update) is moved between the vCPUs every 7 us."""
    dev = device("d", 0x41, gsi=21, lowers_line=False, arrival=use("arrival", "periodic", period=us(5)))
    scn = guest(devices=[dev], vcpus=2, duration=ms(0.2), irqchip=irqchip, rte_update=rte_update,
                mitigations=[use("mitigation", "xen_irq_ratelimit", limit=3, window=us(60))])
    moves = (Action(at=us(3), every=Quantity(14e-6, "s"), writes=(RouteWrite("ioapic", gsi=21, dest=1),)),
             Action(at=us(10), every=Quantity(14e-6, "s"), writes=(RouteWrite("ioapic", gsi=21, dest=0),)))
    return replace(scn, actions=moves)


@pytest.mark.parametrize("irqchip", ["kernel", "split"])
@pytest.mark.parametrize("rte_update", ["routes_first", "service_first"])
def test_a_mitigations_mask_write_updates_the_routes_as_the_reference_does(irqchip, rte_update):
    """The kernel's Xen rate limit masks through the redirection write with its route update and
    rescans, record for record as the reference (the service loop's explicit stack)."""
    scn = ratelimited_move(irqchip, rte_update)
    compare(scn, n=2, others=("numpy", "untraced", "reference"))
    r = engine.run(engine.compile(scn), [engine.Lane(0)], trace_lanes=[0], backend="kernel")
    events = {e for _, _, _, e, _ in r.traces[0].sorted()}
    assert {"irqlab_xen_ratelimit", "irqlab_eoi_exitmap"} <= events


def test_a_program_without_actions_has_an_empty_routes_state():
    """Without guest actions the routes cost a lane its two offsets only: no program (offset 0), no state."""
    prog = engine.compile(guest(devices=[device("d", 0x41, gsi=21)]))
    packed = pack(prog)
    o = packed.o
    assert o[K.O_RT_P] == 0 and o[K.O_PI] + len(packed.paths) == o[K.O_STATE]
    assert o[K.O_ACC] == o[K.O_RT]  # the next state array (idle's, between them, is -1 without idle)
