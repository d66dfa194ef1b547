"""Field parsers of the kvm events, across the kernel versions' formats."""

from __future__ import annotations

import pytest

from irqlab.traces.fields import FieldError, parse_fields

RIP = 0xFFFFF80006A17E1A


@pytest.mark.parametrize("text", [
    "reason EOI_INDUCED rip 0xfffff80006a17e1a info 50 0",
    "reason EOI_INDUCED rip 0xfffff80006a17e1a info1 0x0000000000000050 info2 0x0000000000000000 "
    "intr_info 0x00000000 error_code 0x00000000",
    "vcpu 0 reason EOI_INDUCED rip 0xfffff80006a17e1a info1 0x0000000000000050 info2 "
    "0x0000000000000000 intr_info 0x00000000 error_code 0x00000000",
])
def test_kvm_exit_reads_the_same_in_every_kernel_format(text):
    """kvm_exit's reason, RIP and info1 read the same from the v4, v5.10 and v5.12+ formats."""
    f = parse_fields("kvm_exit", text)
    assert (f["reason"], f["rip"], f["info1"], f["info2"]) == ("EOI_INDUCED", RIP, 0x50, 0)


def test_new_kvm_exit_gives_the_vcpu_and_interrupt_info():
    """The v5.12+ kvm_exit carries the vCPU, intr_info and error_code as columns."""
    f = parse_fields("kvm_exit", "vcpu 3 reason EXTERNAL_INTERRUPT rip 0x10 info1 0x0 info2 0x0 "
                                 "intr_info 0x800000ec error_code 0x00000000")
    assert (f["vcpu"], f["intr_info"], f["error_code"]) == (3, 0x800000EC, 0)


@pytest.mark.parametrize("text", [
    "rip fffff8022f3d8350 reason PREEMPTION_TIMER info1 0 info2 0 int_info 0 int_info_err 0",
    "vcpu 0 reason PREEMPTION_TIMER rip 0xfffff8022f3d8350 info1 0x0000000000000000 info2 "
    "0x0000000000000000 intr_info 0x00000000 error_code 0x00000000",
    "rip: 0xfffff8022f3d8350 reason: PREEMPTION_TIMER ext_inf1: 0x0000000000000000 "
    "ext_inf2: 0x0000000000000000 ext_int: 0x00000000 ext_int_err: 0x00000000",
])
def test_kvm_nested_vmexit_reads_the_same_in_every_format(text):
    """kvm_nested_vmexit's old (hex without 0x), 'rip:' and kvm_exit-template formats agree."""
    f = parse_fields("kvm_nested_vmexit", text)
    assert (f["reason"], f["rip"], f["intr_info"]) == ("PREEMPTION_TIMER", 0xFFFFF8022F3D8350, 0)


@pytest.mark.parametrize("text", [
    "reason EXTERNAL_INTERRUPT info1 0 info2 0 int_info 80000050 int_info_err 0",
    "reason: EXTERNAL_INTERRUPT ext_inf1: 0x0000000000000000 ext_inf2: 0x0000000000000000 "
    "ext_int: 0x80000050 ext_int_err: 0x00000000",
])
def test_nested_vmexit_inject_gives_the_reflected_vector(text):
    """The vector reflected to L1 is read from a valid int_info, old format or new."""
    f = parse_fields("kvm_nested_vmexit_inject", text)
    assert (f["reason"], f["intr_info"], f["vector"]) == ("EXTERNAL_INTERRUPT", 0x80000050, 0x50)


@pytest.mark.parametrize("text,rip,imm", [
    ("vcpu 0", None, False),
    ("vcpu 1, rip 0xffffffff81000000", 0xFFFFFFFF81000000, False),
    ("vcpu 1, rip 0xffffffff81000000[immediate exit]", 0xFFFFFFFF81000000, True),
])
def test_kvm_entry_with_and_without_rip(text, rip, imm):
    """kvm_entry reads with the RIP added in v5.9 and the immediate-exit flag of v6.9."""
    f = parse_fields("kvm_entry", text)
    assert (f.get("rip"), f["immediate_exit"]) == (rip, imm)


@pytest.mark.parametrize("text,coalesced", [
    ("apicid 0 vec 80 (Fixed|edge)", False),
    ("apicid 0 vec 80 (Fixed|level) (coalesced)", True),
])
def test_apic_accept_irq_with_and_without_coalesced(text, coalesced):
    """kvm_apic_accept_irq reads both with the old '(coalesced)' suffix and without it."""
    f = parse_fields("kvm_apic_accept_irq", text)
    assert (f["vector"], f["delivery"], f["coalesced"]) == (80, "Fixed", coalesced)


@pytest.mark.parametrize("text,vector,soft,reinjected", [
    ("irq 80", 80, False, False),
    ("IRQ 0x50", 0x50, False, False),
    ("Soft/INTn 0x80 [reinjected]", 0x80, True, True),
])
def test_inj_virq_old_and_new(text, vector, soft, reinjected):
    """kvm_inj_virq's 'irq N' (old) and 'IRQ 0xV [reinjected]' (new) forms."""
    f = parse_fields("kvm_inj_virq", text)
    assert (f["vector"], f["soft"], f["reinjected"]) == (vector, soft, reinjected)


@pytest.mark.parametrize("event,text,expect", [
    ("kvm_eoi", "apicid 0 vector 80", {"dest": 0, "vector": 80}),
    ("kvm_set_irq", "gsi 23 level 1 source 0", {"gsi": 23, "level": 1, "source": 0}),
    ("kvm_msi_set_irq", "dst 1 vec 80 (Fixed|physical|level)",
     {"dest": 1, "vector": 80, "dest_mode": "physical", "trigger": "level"}),
    ("kvm_ioapic_set_irq", "pin 11 dst 1 vec 80 (Fixed|logical|level) (coalesced)",
     {"pin": 11, "vector": 80, "dest_mode": "logical", "coalesced": True}),
    ("kvm_ioapic_delayed_eoi_inj", "dst 0 vec 80 (Fixed|physical|level|rh)",
     {"vector": 80, "rh": True}),
    ("kvm_userspace_exit", "reason KVM_EXIT_IOAPIC_EOI (26)",
     {"reason": "KVM_EXIT_IOAPIC_EOI", "reason_code": 26}),
    ("kvm_apic", "apic_write APIC_EOI = 0x0", {"rw": "write", "reg": "APIC_EOI", "value": 0}),
    ("kvm_msr", "msr_write 80b = 0x0", {"rw": "write", "msr": 0x80B, "gp": False}),
    ("kvm_msr", "msr_read 3a = 0x0 (#GP)", {"rw": "read", "msr": 0x3A, "gp": True}),
    ("kvm_mmio", "mmio write len 4 gpa 0xfec00040 val 0x50",
     {"rw": "write", "length": 4, "gpa": 0xFEC00040, "value": 0x50}),
    ("kvm_pic_set_irq", "chip 0 pin 1 (edge|masked)", {"irqchip": "PIC0", "pin": 1, "masked": True}),
    ("kvm_ack_irq", "irqchip IOAPIC pin 23", {"irqchip": "IOAPIC", "pin": 23}),
    ("kvm_nested_vmenter", "rip: 0x0000000000401000 vmcs: 0x0000000123456000 nested_rip: "
     "0x0000000000402000 int_ctl: 0x00000000 event_inj: 0x80000050 nested_ept=y nested_eptp: "
     "0x000000000010005e", {"rip": 0x401000, "event_inj": 0x80000050, "tdp": True}),
    ("kvm_nested_vmenter", "rip: 0x0000000000401000 vmcb: 0x0000000123456000 nrip: "
     "0x0000000000402000 int_ctl: 0x00000000 event_inj: 0x00000000 npt: off",
     {"rip": 0x401000, "nested_rip": 0x402000, "tdp": False}),
])
def test_each_event_has_typed_columns(event, text, expect):
    """Every event in the issue's list gets its fields as typed columns."""
    f = parse_fields(event, text)
    assert {k: f.get(k) for k in expect} == expect


@pytest.mark.parametrize("event,text", [
    ("kvm_exit", "rip 0x10 info 0 0"),
    ("kvm_eoi", "apicid 0"),
    ("kvm_userspace_exit", "KVM_EXIT_IOAPIC_EOI"),
    ("kvm_set_irq", "gsi x23 level 1"),
])
def test_a_known_event_missing_its_fields_is_an_error(event, text):
    """A known event whose text lacks what every version prints is a FieldError."""
    with pytest.raises(FieldError):
        parse_fields(event, text)


def test_unknown_events_have_no_typed_fields():
    """An event without a parser yields no columns (its text stays raw)."""
    assert parse_fields("kvm_fpu", "unload") == {}
