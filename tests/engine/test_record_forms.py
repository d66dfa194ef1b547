"""One table of record texts (trace.FORMATS) for every executor."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from irqlab import engine
from irqlab.dsl import load
from irqlab.engine import kernel_ids as K
from irqlab.engine.kernelprog import kernel_support
from irqlab.engine.kernelrun import ARGS, Decoder
from irqlab.engine.trace import FORMATS, Trace
from irqlab.resolve import resolve

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENARIOS = sorted([*EXAMPLES.glob("*.scn"), *EXAMPLES.glob("casebook/*/*.scn")])


def form_pattern(template: str) -> re.Pattern:
    """A regex matching the texts ``template`` formats (any value in each field)."""
    out = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if field is not None:
            out.append("[0-9a-f]+" if spec == "x" else ".+?")
    return re.compile("".join(out))


PATTERNS: dict[str, list[re.Pattern]] = {}
for _form, _template in FORMATS.items():
    PATTERNS.setdefault(_form.partition(" ")[0], []).append(form_pattern(_template))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_record_of_every_executor_has_a_form_in_the_table(path):
    """Each record any executor writes for an example is one of trace.FORMATS' forms of its event."""
    prog = engine.compile(resolve(load(str(path)), {"run.duration": "200us"}))
    backends = ["reference", "numpy"] + (["kernel"] if kernel_support(prog) is None else [])
    for backend in backends:
        trace = engine.run(prog, [engine.Lane(0)], trace_lanes=[0], backend=backend).traces[0]
        for _, _, _, event, text in trace.records:
            assert any(p.fullmatch(text) for p in PATTERNS.get(event, ())), (backend, event, text)


def test_every_kernel_record_code_decodes_through_the_table():
    """Every record code of the kernel has a form in trace.FORMATS (the decoder has no texts)."""
    prog = engine.compile(load(str(EXAMPLES / "founding_case.scn")))
    decode = Decoder(prog, Trace())
    codes = [v for k, v in vars(K).items() if k.startswith("E_") and isinstance(v, int)]
    named = {K.E_HANDLER_ENTRY, K.E_VFIO_INTX, K.E_VFIO_UNMASK, K.E_ZERO_TIME_LOOP}  # decoded by hand
    named |= {K.E_RT_MSI_WRITE, K.E_RT_EXITMAP}  # a device's name, a bitmap's vectors
    assert set(codes) == set(ARGS) | named
    for code in codes:
        for b in (0,) if code in named else (0, 1):  # a1: a device, or a flag
            decode.recent = ["kvm_eoi apicid 0 vector 48"]  # a nested zero-time turn of one record
            event, text = decode.text(code, 1 if code == K.E_ZERO_TIME_LOOP else 0, b, 0, 0)
            assert any(p.fullmatch(text) for p in PATTERNS[event]), (code, event, text)
