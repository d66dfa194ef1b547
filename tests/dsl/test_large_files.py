"""Large scenario files are read lean: the statements of a file cost a bounded number of bytes per line."""

from __future__ import annotations

import tracemalloc

from irqlab.dsl.syntax import parse_statements


def test_parsed_statements_hold_no_per_node_dict():
    """4000 parsed param statements keep under 950 bytes per line (nodes share their
    class's key table; a dict per node made it about 1100)."""
    text = "".join(f"param p{i:06d} = {i % 997}.5us\n" for i in range(4000))
    parse_statements("param warm = 1us\n", "w.scn")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stmts = parse_statements(text, "big.scn")
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(stmts) == 4000
    assert kept / 4000 < 950, f"{kept / 4000:.0f} bytes per statement"
