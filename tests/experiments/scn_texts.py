"""Scenario texts for the command-line sweep tests."""

from __future__ import annotations


def tiny(duration: str = "1ms", thresholds: str = "10, 100, 1000", rates: str = "10kHz, 50kHz",
         replications: int = 2, seed: int = 3, backend: str = "auto") -> str:
    """A guest with one level-triggered Poisson device and the QEMU EOI throttle,
    swept over threshold x rate. Tests that must catch a sweep in the middle ask for
    ``backend="numpy"``: the lockstep executor's pace, not the compiled kernel's."""
    return f"""\
scenario tiny {{
    vcpu 0 {{ L1 linux {{ policy lower_then_eoi }} }}
    device nic {{
        gsi 10; vector 0x40; trigger level
        serviced_by L1 after 2us
        arrival poisson rate 20kHz
    }}
    mitigation qemu_eoi_throttle {{ threshold 100; delay 1ms }}
    run {{ duration {duration}; seed {seed}; backend {backend} }}
    sweep {{
        grid {{
            qemu_eoi_throttle.threshold = [{thresholds}]
            nic.arrival.rate = [{rates}]
        }}
        replications {replications}
    }}
}}
"""
