"""The expect block in the language: parsing, lowering, checks, inheritance, fmt and dumps."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqlab import dsl, ir
from irqlab.cli.main import main
from irqlab.errors import ScenarioError

FOUNDING = Path(__file__).resolve().parents[2] / "examples" / "founding_case.scn"
HEAD = f'import "{FOUNDING}"\n'


def scn(body: str, extra: str = "") -> str:
    return HEAD + extra + "scenario t extends founding_case {\n" + body + "}\n"


def error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as ei:
        dsl.loads(text, "t.scn")
    return ei.value


def test_expect_block_lowers_to_expectations_with_spans():
    """Each statement of expect { } becomes one Expectation, spanned at its line and column."""
    s = dsl.loads(scn("    expect {\n        livelock == true\n"
                      "        eoi_count within 1% of duration / 8.84us\n"
                      "        fraction(livelock) >= 0.9\n    }\n"), "t.scn")
    assert [x.text for x in s.expect] == ["livelock == true", "eoi_count within 1% of duration / 8.84us",
                                          "fraction(livelock) >= 0.9"]
    assert [(x.span.line, x.span.col) for x in s.expect] == [(4, 9), (5, 9), (6, 9)]
    assert isinstance(s.expect[1].expr, ir.Within)
    assert s.expect[1].expr.tolerance == ir.Unary(op="%", operand=ir.Num(value=ir.Quantity(1.0)))


def test_unknown_metric_is_a_located_error_with_did_you_mean():
    """A misspelt metric is an error at check time, at the name, with a did-you-mean."""
    e = error(scn("    expect { devices.uhci.servicd >= 1 }\n"))
    (d,) = e.diagnostics
    assert d.message == "unknown metric 'devices.uhci.servicd'"
    assert (d.span.line, d.span.col) == (3, 14)
    assert d.hint == "did you mean 'device.uhci.serviced'?"


def test_known_metrics_follow_the_engine_tables(monkeypatch):
    """A metric added to the engine's METRICS table is known to expectations at once."""
    from irqlab.engine import result

    with pytest.raises(ScenarioError):
        dsl.loads(scn("    expect { brand_new_metric > 0 }\n"), "t.scn")
    monkeypatch.setitem(result.METRICS, "brand_new_metric", ("int", "", "a test metric"))
    assert len(dsl.loads(scn("    expect { brand_new_metric > 0 }\n"), "t.scn").expect) == 1


def test_mitigation_activations_exist_only_for_the_scenarios_mitigations():
    """mitigation_activations.<m> is a metric only if the scenario has mitigation m."""
    e = error(scn("    expect { mitigation_activations.kvm_eoi_delay == 1 }\n"))
    assert e.diagnostics[0].message == "unknown metric 'mitigation_activations.kvm_eoi_delay'"


def test_a_time_metric_compared_with_a_plain_number_is_a_unit_error():
    """time_to_l2_progress_ns is a time: comparing it with 50 (no unit) is an error at the comparison."""
    e = error(scn("    expect { time_to_l2_progress_ns > 50 }\n"))
    assert "a time and a number" in e.diagnostics[0].message
    assert e.diagnostics[0].span.col == 14


def test_an_expectation_must_be_true_or_false():
    """A value that is not a truth value (eoi_count alone is a count) is an error."""
    e = error(scn("    expect { eoi_count }\n"))
    assert e.diagnostics[0].message.startswith("an expectation must be true or false")


def test_a_comparison_outside_expect_is_an_error():
    """'gsi > 3' in a device block is reported at its place, pointing to expect blocks."""
    e = error(scn("    device uhci { gsi > 3 }\n"))
    assert e.diagnostics[0].message == "a comparison like this belongs in an expect block"
    assert (e.diagnostics[0].span.line, e.diagnostics[0].span.col) == (3, 19)


def test_a_statement_that_is_not_an_assertion_is_an_error():
    """'eoi_count + 1' or 'foo 3' inside expect is not an assertion."""
    e = error(scn("    expect {\n        eoi_count + 1\n        foo 3\n    }\n"))
    assert [d.span.line for d in e.diagnostics] == [4, 5]
    assert all(d.message.startswith("expected an assertion") for d in e.diagnostics)


def test_quantifiers_outside_expect_are_errors():
    """all() in a param is an error: it ranges over replications."""
    e = error(HEAD + "param x = all(1)\nscenario t extends founding_case {\n    run { duration x }\n}\n")
    assert "belongs in an expect block" in e.diagnostics[0].message


def test_quantifiers_nest_not():
    """all(fraction(...) > 0) is an error at the inner quantifier."""
    e = error(scn("    expect { all(fraction(livelock) > 0) }\n"))
    assert e.diagnostics[0].message == "fraction() inside another quantifier: they do not nest"


def test_a_quantifier_in_a_sweeps_expect_is_an_error():
    """A sweep checks each run on its own, so all() inside sweep { expect { } } is an error."""
    e = error(scn("    sweep {\n        run.seed = [1, 2]\n        expect { all(livelock) }\n    }\n"))
    assert e.diagnostics[0].message.startswith("all() ranges over replications")


def test_a_sweeps_expect_block_lowers_into_the_sweep():
    """expect inside sweep is the sweep's, not the scenario's."""
    s = dsl.loads(scn("    sweep {\n        run.seed = [1, 2]\n        expect { livelock == false }\n    }\n"), "t.scn")
    assert s.expect == () and [x.text for x in s.sweep.expect] == ["livelock == false"]


BASE = "scenario b extends founding_case {\n    expect { livelock == true }\n}\n"


def test_a_child_without_expect_inherits_its_bases_expectations():
    """scenario c extends b {} checks b's expectations."""
    s = dsl.loads(HEAD + BASE + "scenario c extends b {}\n", "t.scn")
    assert [x.text for x in s.expect] == ["livelock == true"]


def test_a_childs_expect_block_replaces_its_bases():
    """A child's own expect block replaces the inherited one (a variant changes the outcome)."""
    s = dsl.loads(HEAD + BASE + "scenario c extends b {\n    expect { livelock == false }\n}\n", "t.scn")
    assert [x.text for x in s.expect] == ["livelock == false"]


def test_remove_expect_drops_the_inherited_expectations():
    """remove expect leaves the child with none."""
    s = dsl.loads(HEAD + BASE + "scenario c extends b {\n    remove expect\n}\n", "t.scn")
    assert s.expect == ()


def test_fmt_lays_out_expectations_and_is_stable(tmp_path):
    """fmt normalizes spacing in expectations; formatting twice changes nothing; same IR."""
    src = scn("    expect {\n        livelock==true\n        eoi_count  within 1%   of duration/8.84us\n"
              "        fraction( livelock )>=0.9\n    }\n")
    once = dsl.format_source(src, "t.scn")
    assert "        livelock == true\n" in once
    assert "        eoi_count within 1% of duration / 8.84us\n" in once
    assert "        fraction(livelock) >= 0.9\n" in once
    assert dsl.format_source(once, "t.scn") == once
    assert dsl.loads(once, "t.scn") == dsl.loads(src, "t.scn")


def test_parse_and_lower_dumps_show_expectations(tmp_path, capsys):
    """irqlab parse shows the compare/approx tails; irqlab lower lists the expectations."""
    f = tmp_path / "t.scn"
    f.write_text(scn("    expect {\n        livelock == true\n        eoi_count within 2 of 1000\n    }\n"))
    assert main(["parse", str(f)]) == 0
    out = capsys.readouterr().out
    assert "compare" in out and "approx" in out
    assert main(["lower", str(f)]) == 0
    out = capsys.readouterr().out
    assert "  expect:\n    livelock == true\n    eoi_count within 2 of 1000\n" in out


def test_a_metric_plugins_columns_are_metrics_with_their_units():
    """With run { metric rates }, eois_per_s is a metric and a frequency (compared with kHz)."""
    s = dsl.loads(scn("    run { metric rates }\n    expect { eois_per_s > 1kHz }\n"), "t.scn")
    assert len(s.expect) == 1
    e = error(scn("    expect { eois_per_s > 1kHz }\n"))  # without the plugin: unknown
    assert e.diagnostics[0].message == "unknown metric 'eois_per_s'"
