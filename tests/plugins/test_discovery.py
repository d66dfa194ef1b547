"""Discovery through the irqlab.plugins entry-point group: built-ins, conflicts, broken plugins."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from importlib import metadata

import pytest

import irqlab.plugins.builtin as builtin_pkg
from irqlab.plugins.api import Plugin
from irqlab.plugins.registry import GROUP, discover, registry

from .conftest import cli, founding_with

GOOD_MIT = '''
class Dup(Mitigation):
    """A do-nothing mitigation named dup."""
    name = "dup"
    version = "{v}"
    params = (Param("level", "int", 1, "how much", min=0),)
'''


def test_builtins_come_through_the_entry_point_group():
    """Every Plugin class defined in irqlab.plugins.builtin is registered by an entry point
    of the irqlab distribution named KIND.NAME, and nothing else is (no private path)."""
    defined = set()
    for mod in pkgutil.iter_modules(builtin_pkg.__path__):
        m = importlib.import_module(f"{builtin_pkg.__name__}.{mod.name}")
        for _, obj in inspect.getmembers(m, inspect.isclass):
            if issubclass(obj, Plugin) and obj.__module__ == m.__name__ and obj.name:
                defined.add((f"{obj.kind}.{obj.name}", f"{obj.__module__}:{obj.__qualname__}"))
    eps = {(ep.name, ep.value) for ep in metadata.entry_points(group=GROUP)
           if ep.dist is not None and ep.dist.name == "irqlab"}
    assert defined == eps


def test_the_engine_uses_the_registered_classes(fresh_registry):
    """A compiled program's policy and mitigation are instances of the registry's classes."""
    from irqlab import engine
    from irqlab.dsl import loads

    scn = loads(founding_with("    mitigation qemu_eoi_throttle {}"), "t.scn")
    prog = engine.compile(scn)
    assert type(prog.mitigations[0].plugin) is fresh_registry.get("mitigation", "qemu_eoi_throttle")


def test_conflict_names_both_distributions(fake_dists, tmp_path, capsys):
    """Two distributions registering mitigation 'dup': using it is an error at its line
    naming both distributions."""
    fake_dists.add("acme-dup", "acme_dup", GOOD_MIT.format(v="1"), {"mitigation.dup": "acme_dup:Dup"})
    fake_dists.add("other-dup", "other_dup", GOOD_MIT.format(v="2"), {"mitigation.dup": "other_dup:Dup"},
                   version="2.5")
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation dup { level 2 }"))
    status, out, err = cli(capsys, "check", str(f))
    assert status == 2
    assert f"{f}:3:16: error: two plugins are registered as mitigation 'dup': " \
           "acme-dup 1.0 and other-dup 2.5" in err


def test_conflict_is_listed_for_both(fake_dists, capsys):
    """`irqlab plugins --json` lists both entries as 'conflict', each naming its rival."""
    fake_dists.add("acme-dup", "acme_dup", GOOD_MIT.format(v="1"), {"mitigation.dup": "acme_dup:Dup"})
    fake_dists.add("other-dup", "other_dup", GOOD_MIT.format(v="2"), {"mitigation.dup": "other_dup:Dup"})
    status, out, _ = cli(capsys, "plugins", "--json", "--kind", "mitigation")
    rows = {r["origin"]: r for r in json.loads(out) if r["name"] == "dup"}
    assert status == 0 and set(rows) == {"acme-dup 1.0", "other-dup 1.0"}
    assert rows["acme-dup 1.0"]["status"] == rows["other-dup 1.0"]["status"] == "conflict"
    assert rows["acme-dup 1.0"]["rivals"] == ["other-dup 1.0"]
    assert rows["other-dup 1.0"]["rivals"] == ["acme-dup 1.0"]


def test_shadowing_a_builtin_is_a_conflict(fake_dists, tmp_path, capsys):
    """A third-party qemu_eoi_throttle does not silently replace irqlab's: using it names both."""
    src = GOOD_MIT.format(v="9").replace('"dup"', '"qemu_eoi_throttle"')
    fake_dists.add("evil", "evil_mod", src, {"mitigation.qemu_eoi_throttle": "evil_mod:Dup"})
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation qemu_eoi_throttle {}"))
    status, _, err = cli(capsys, "check", str(f))
    assert status == 2
    assert "two plugins are registered as mitigation 'qemu_eoi_throttle': evil 1.0 and irqlab " in err


def test_conflict_breaks_nothing_that_does_not_use_it(fake_dists, tmp_path, capsys):
    """With 'dup' in conflict, a scenario using another mitigation still runs."""
    fake_dists.add("acme-dup", "acme_dup", GOOD_MIT.format(v="1"), {"mitigation.dup": "acme_dup:Dup"})
    fake_dists.add("other-dup", "other_dup", GOOD_MIT.format(v="2"), {"mitigation.dup": "other_dup:Dup"})
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation qemu_eoi_throttle { threshold 10 }"))
    status, out, _ = cli(capsys, "run", str(f), "--json")
    assert status == 0
    assert all(r["status"] == "ok" for r in json.loads(out)["runs"])


BROKEN_IMPORT = "import irqlab_no_such_module_xyz\n"


def test_import_failure_is_listed_as_broken_with_its_reason(fake_dists, capsys):
    """A plugin whose module fails to import is a 'broken' row with the import error, under
    the kind and name of its entry point; listing still exits 0."""
    fake_dists.add("shaky", "shaky_mod", BROKEN_IMPORT, {"mitigation.shaky": "shaky_mod:Shaky"})
    status, out, _ = cli(capsys, "plugins", "--json")
    (row,) = [r for r in json.loads(out) if r["name"] == "shaky"]
    assert status == 0
    assert (row["kind"], row["status"], row["origin"], row["target"]) == \
        ("mitigation", "broken", "shaky 1.0", "shaky_mod:Shaky")
    assert row["reason"] == "import failed: ModuleNotFoundError: No module named 'irqlab_no_such_module_xyz'"


def test_broken_plugin_in_the_table(fake_dists, capsys):
    """The table shows the broken row, and its full reason on a line of its own."""
    fake_dists.add("shaky", "shaky_mod", BROKEN_IMPORT, {"mitigation.shaky": "shaky_mod:Shaky"})
    status, out, _ = cli(capsys, "plugins")
    assert status == 0
    assert "broken: mitigation shaky (shaky 1.0, shaky_mod:Shaky): import failed: ModuleNotFoundError: " \
           "No module named 'irqlab_no_such_module_xyz'" in out
    assert "with problems" in out


def test_strict_listing_fails_on_a_broken_plugin(fake_dists, capsys):
    """`irqlab plugins --strict` exits 1 when a plugin is broken (for a plugin author's CI)."""
    fake_dists.add("shaky", "shaky_mod", BROKEN_IMPORT, {"mitigation.shaky": "shaky_mod:Shaky"})
    assert cli(capsys, "plugins", "--strict")[0] == 1


def test_strict_listing_passes_when_all_are_ok(fresh_registry, capsys):
    """With only the built-ins, --strict exits 0."""
    assert cli(capsys, "plugins", "--strict")[0] == 0


def test_broken_plugin_breaks_nothing_that_does_not_use_it(fake_dists, tmp_path, capsys):
    """With a broken plugin installed, a scenario that does not use it runs."""
    fake_dists.add("shaky", "shaky_mod", BROKEN_IMPORT, {"mitigation.shaky": "shaky_mod:Shaky"})
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation qemu_eoi_throttle { threshold 10 }"))
    status, out, _ = cli(capsys, "run", str(f), "--json")
    assert status == 0 and len(json.loads(out)["runs"]) == 2


def test_scenario_using_a_broken_plugin_fails_at_its_line(fake_dists, tmp_path, capsys):
    """Using the broken plugin is an error at the name's file:line:col, with the reason."""
    fake_dists.add("shaky", "shaky_mod", BROKEN_IMPORT, {"mitigation.shaky": "shaky_mod:Shaky"})
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation shaky { rate 1kHz }"))
    status, _, err = cli(capsys, "run", str(f))
    assert status == 2
    assert err.startswith(f"{f}:3:16: error: mitigation plugin 'shaky' is installed but broken: "
                          "import failed: ModuleNotFoundError")
    assert "mitigation shaky { rate 1kHz }" in err and "^^^^^" in err
    assert "from shaky 1.0 (shaky_mod:Shaky)" in err


def test_missing_class_in_an_importable_module(fake_dists):
    """An entry point naming a class the module does not have is broken (AttributeError)."""
    fake_dists.add("typo", "typo_mod", GOOD_MIT.format(v="1"), {"mitigation.dup": "typo_mod:Dupp"})
    (e,) = registry().lookup("dup")
    assert e.status == "broken" and e.reason.startswith("import failed: AttributeError")


def test_invalid_class_from_a_distribution(fake_dists, tmp_path, capsys):
    """A distribution's class that fails validation is broken, and using it is a located error."""
    src = GOOD_MIT.format(v="1") + '    hooks = frozenset({"deliver"})\n'
    fake_dists.add("nohook", "nohook_mod", src, {"mitigation.dup": "nohook_mod:Dup"})
    (e,) = registry().lookup("dup")
    assert (e.status, e.reason) == ("broken", "declares hook 'deliver' but does not define on_deliver")
    f = tmp_path / "t.scn"
    f.write_text(founding_with("    mitigation dup {}"))
    status, _, err = cli(capsys, "check", str(f))
    assert status == 2 and f"{f}:3:16: error: mitigation plugin 'dup' is installed but broken" in err


def test_entry_point_name_must_match_the_class(fake_dists):
    """An entry point 'mitigation.other' that loads the class named 'dup' is broken, listed
    under the entry point's name."""
    fake_dists.add("mismatch", "mm_mod", GOOD_MIT.format(v="1"), {"mitigation.other": "mm_mod:Dup"})
    (e,) = registry().lookup("other")
    assert e.status == "broken"
    assert e.reason == "entry point 'mitigation.other' must be named 'mitigation.dup' (KIND.NAME of the class it loads)"
    assert registry().lookup("dup") == []


def test_plugin_raising_at_import_other_than_importerror(fake_dists):
    """A module raising anything at import (even SystemExit) is broken, not fatal."""
    fake_dists.add("exits", "exits_mod", "raise SystemExit(3)\n", {"mitigation.exits": "exits_mod:X"})
    reg = discover()
    (e,) = reg.lookup("exits")
    assert (e.status, e.reason) == ("broken", "import failed: SystemExit: 3")
    assert reg.find("mitigation", "qemu_eoi_throttle") is not None


@pytest.mark.parametrize("args", [("plugins", "show", "shaky"), ("plugins", "show", "shaky", "--json")])
def test_show_a_broken_plugin(fake_dists, capsys, args):
    """`irqlab plugins show` on a broken plugin prints its status and reason (exit 0)."""
    fake_dists.add("shaky", "shaky_mod", BROKEN_IMPORT, {"mitigation.shaky": "shaky_mod:Shaky"})
    status, out, _ = cli(capsys, *args)
    assert status == 0 and "broken" in out and "irqlab_no_such_module_xyz" in out
