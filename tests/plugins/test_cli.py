"""`irqlab plugins`, `irqlab plugins show NAME` and `irqlab plugins docs`."""

from __future__ import annotations

import json

from .conftest import ROOT, cli

BUILTIN_MITIGATIONS = {"deschedule", "kvm_eoi_delay", "qemu_eoi_throttle", "preemption_timer_throttle",
                       "linux_spurious", "xen_irq_ratelimit"}


def test_list_shows_every_builtin_with_kind_version_origin_status(fresh_registry, capsys):
    """The table has a row per plugin with kind, name, version, origin and status."""
    status, out, _ = cli(capsys, "plugins")
    assert status == 0
    for e in (e for e in fresh_registry.entries() if e.dist == "irqlab"):
        line = next(ln for ln in out.splitlines() if f" {e.name} " in ln and f" {e.kind} " in ln)
        assert e.version in line and "irqlab 0.1" in line and " ok " in line


def test_list_kind_filter(fresh_registry, capsys):
    """--kind mitigation lists exactly the mitigations."""
    status, out, _ = cli(capsys, "plugins", "--kind", "mitigation", "--json")
    assert status == 0
    assert {r["name"] for r in json.loads(out) if r["dist"] == "irqlab"} == BUILTIN_MITIGATIONS
    assert {r["kind"] for r in json.loads(out)} == {"mitigation"}


def test_list_json_fields(fresh_registry, capsys):
    """Each JSON row has kind, name, version, origin, dist, target, status, reason, rivals, summary."""
    _, out, _ = cli(capsys, "plugins", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "qemu_eoi_throttle")
    assert row["target"] == "irqlab.plugins.builtin.mitigations:QemuEoiThrottle"
    assert (row["kind"], row["version"], row["dist"], row["status"], row["reason"], row["rivals"]) == \
        ("mitigation", "1.0", "irqlab", "ok", "", [])
    assert row["origin"].startswith("irqlab ") and row["summary"].startswith("QEMU's port")


def test_show_mitigation_prints_doc_params_hooks_and_timers(fresh_registry, capsys):
    """show qemu_eoi_throttle: its doc, each parameter with type, default and range, hooks, timers."""
    status, out, _ = cli(capsys, "plugins", "show", "qemu_eoi_throttle")
    assert status == 0
    assert "mitigation qemu_eoi_throttle 1.0" in out and "timer_mod_anticipate" in out
    thr = next(ln for ln in out.splitlines() if ln.startswith("│ threshold"))
    assert "int" in thr and "10000" in thr and ">= 1" in thr and "per lane" in thr
    delay = next(ln for ln in out.splitlines() if ln.startswith("│ delay"))
    assert "time" in delay and "10ms" in delay and " s " in delay
    assert "hooks: ioapic_eoi, redirect, timer; timers: 1" in out


def test_show_json_has_the_declarations(fresh_registry, capsys):
    """--json gives the parameter rows, usage, hooks and timers."""
    _, out, _ = cli(capsys, "plugins", "show", "kvm_eoi_delay", "--json")
    (d,) = json.loads(out)
    assert [p["name"] for p in d["params"]] == ["threshold", "hz", "delay"]
    assert d["params"][2] == {"name": "delay", "type": "time", "unit": "s", "default": "0",
                              "range": ">= 0", "sweep": "per lane",
                              "doc": "0: HZ/100 jiffies, as KVM; else this delay, rounded up to whole jiffies"}
    assert (d["hooks"], d["timers"]) == (["ioapic_eoi", "timer"], 1)
    assert d["usage"] == "mitigation kvm_eoi_delay {\n    threshold 10000\n    hz 1000\n    delay 0\n}"


def test_show_metric_prints_columns(fresh_registry, capsys):
    """A metric's columns with type and unit."""
    status, out, _ = cli(capsys, "plugins", "show", "rates")
    assert status == 0
    assert any(ln.startswith("│ exits_per_s") and "float" in ln and "1/s" in ln for ln in out.splitlines())


def test_show_required_param(fresh_registry, capsys):
    """A required parameter shows as (required), and the usage has a placeholder."""
    _, out, _ = cli(capsys, "plugins", "show", "poisson", "--json")
    (d,) = json.loads(out)
    assert d["params"][0]["default"] == "(required)"
    assert "rate <frequency>" in d["usage"]


def test_show_unknown_name_suggests_and_exits_2(fresh_registry, capsys):
    """A misspelt name: exit 2 with a did-you-mean."""
    status, out, err = cli(capsys, "plugins", "show", "qemu_eoi_throtle")
    assert status == 2 and out == ""
    assert "no plugin named 'qemu_eoi_throtle'; did you mean 'qemu_eoi_throttle'?" in err


def test_show_kind_filter(fresh_registry, capsys):
    """--kind restricts the lookup: poisson is not a mitigation."""
    status, _, err = cli(capsys, "plugins", "show", "poisson", "--kind", "mitigation")
    assert status == 2 and "no mitigation plugin named 'poisson'" in err


def test_docs_to_stdout(fresh_registry, capsys):
    """`plugins docs --dist irqlab` prints the Markdown reference with every built-in."""
    status, out, _ = cli(capsys, "plugins", "docs", "--dist", "irqlab")
    assert status == 0 and out.startswith("# Built-in plugins")
    for e in (e for e in fresh_registry.entries() if e.dist == "irqlab"):
        assert f"### `{e.name}`" in out


def test_docs_check_reports_a_stale_file(fresh_registry, capsys, tmp_path):
    """`--check -o FILE` exits 1 for a stale file and 0 once written."""
    f = tmp_path / "plugins.md"
    f.write_text("old\n")
    assert cli(capsys, "plugins", "docs", "--dist", "irqlab", "-o", str(f), "--check")[0] == 1
    assert f.read_text() == "old\n"
    assert cli(capsys, "plugins", "docs", "--dist", "irqlab", "-o", str(f))[0] == 0
    assert cli(capsys, "plugins", "docs", "--dist", "irqlab", "-o", str(f), "--check")[0] == 0


def test_docs_unknown_distribution(fresh_registry, capsys):
    """--dist naming no distribution is a user error listing the ones there are."""
    status, _, err = cli(capsys, "plugins", "docs", "--dist", "nope")
    assert status == 2 and "no plugins from a distribution named 'nope'" in err and "irqlab" in err


def test_docs_plugins_md_is_up_to_date(fresh_registry):
    """docs/plugins.md equals what the declarations generate (regenerate:
    irqlab plugins docs --dist irqlab -o docs/plugins.md)."""
    from irqlab.plugins.docs import render_registry

    current = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert current == render_registry(fresh_registry, "irqlab"), \
        "docs/plugins.md is stale: run irqlab plugins docs --dist irqlab -o docs/plugins.md"


def test_usage_snippets_are_valid_scenario_text(fresh_registry):
    """The usage block the reference shows for each built-in (every parameter at its
    default) lowers without error in the founding case, with one of the two irqchips."""
    from irqlab.dsl import loads
    from irqlab.errors import ScenarioError
    from irqlab.plugins.docs import usage

    from .conftest import founding_with

    for e in fresh_registry.entries():
        if e.dist != "irqlab" or any(p.required for p in e.cls.params):
            continue
        if getattr(e.cls, "timer_kind", ""):
            continue  # a timer model needs a timer device, not the UHCI (tests/engine/test_timers.py)
        snippet = "\n".join("    " + ln for ln in usage(e.cls).splitlines())
        errors = []
        for irqchip in ("split", "kernel"):
            try:
                loads(founding_with(f"    machine {{ irqchip {irqchip} }}\n{snippet}",
                                    run=e.kind not in ("metric", "backend")), "t.scn")
                break
            except ScenarioError as err:
                errors.append(str(err))
        else:
            raise AssertionError(f"{e.kind} {e.name}: {errors}")
