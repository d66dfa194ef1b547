"""irqlab test: which scenarios it runs, what it prints, its exit status and its JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from irqlab.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
FOUNDING = ROOT / "examples" / "founding_case.scn"


def write(path: Path, name: str, expect: str, duration: str = "2ms") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'import "{FOUNDING}"\n\nscenario {name} extends founding_case {{\n'
                    f"    run {{ duration {duration}; replications 2 }}\n"
                    f"    expect {{\n        {expect}\n    }}\n}}\n")
    return path


def test_a_passing_scenario_prints_pass_and_exits_0(tmp_path, capsys):
    """One PASS line per scenario, then a summary; status 0."""
    f = write(tmp_path / "a.scn", "storm", "livelock == false")
    f.write_text(f.read_text().replace("livelock == false", "devices.uhci.serviced == 0"))
    assert main(["test", str(f)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"PASS  storm  {f}  (2 runs, 1 expectation, ")
    assert out.splitlines()[-1] == "1 scenario with expectations: 1 passed, 0 failed"


def test_a_failure_shows_the_expectation_its_place_and_the_measured_value(tmp_path, capsys):
    """FAIL, then file:line:col of the expectation, its text, and what the runs measured; status 1."""
    f = write(tmp_path / "a.scn", "storm", "time_to_l2_progress_ns < 1ms")
    assert main(["test", str(f)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAIL  storm")
    assert lines[1] == f"  {f}:6:9: expected time_to_l2_progress_ns < 1ms"
    assert lines[2] == "    measured: time_to_l2_progress_ns = never (replication 0); failed in 2 of 2 replications"


def test_a_bad_file_is_reported_located_and_exits_2_after_the_others_ran(tmp_path, capsys):
    """A file that does not load: its located error on stderr, status 2; the good file still runs."""
    write(tmp_path / "a_bad.scn", "bad", "livelok == true")
    write(tmp_path / "b_good.scn", "good", "livelock == true")
    assert main(["test", str(tmp_path)]) == 2
    cap = capsys.readouterr()
    assert "a_bad.scn:6:9: error: unknown metric 'livelok'" in cap.err
    assert "hint: did you mean 'livelock'?" in cap.err
    assert "PASS  good" in cap.out
    assert cap.out.splitlines()[-1] == "2 scenarios with expectations: 1 passed, 0 failed, 1 could not run"


def test_a_missing_path_is_a_user_error(tmp_path, capsys):
    """irqlab test on a path that does not exist: status 2, no traceback."""
    assert main(["test", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_folders_are_searched_recursively_and_scenarios_without_expect_are_skipped(tmp_path, capsys):
    """Every *.scn below a folder is loaded; only scenarios with an expect block run."""
    write(tmp_path / "x" / "y" / "deep.scn", "deep", "livelock == true")
    (tmp_path / "plain.scn").write_text(f'import "{FOUNDING}"\nscenario plain extends founding_case {{}}\n')
    (tmp_path / "notes.txt").write_text("not a scenario")
    assert main(["test", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS  deep" in out and "plain" not in out


def test_a_folder_holding_a_python_package_is_left_out(tmp_path, capsys):
    """A plugin's example folder (pyproject.toml) is not searched: its scenarios need the plugin."""
    write(tmp_path / "plugin" / "needs_plugin.scn", "p", "livelok == true")
    (tmp_path / "plugin" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    write(tmp_path / "ok.scn", "ok", "livelock == true")
    assert main(["test", str(tmp_path)]) == 0


def test_set_overrides_apply_to_every_scenario(tmp_path, capsys):
    """--set run.duration=... changes what the runs measure (about 113 EOIs per ms of storm)."""
    f = write(tmp_path / "a.scn", "storm", "eoi_count > 500")
    assert main(["test", str(f)]) == 1
    assert main(["test", str(f), "--set", "run.duration=6ms"]) == 0


def test_junit_xml_has_one_suite_per_file_and_one_case_per_scenario(tmp_path, capsys):
    """--junit: testsuites > testsuite (per file) > testcase (per scenario), counts that add up,
    a failure element for a failed scenario and an error element for a bad file."""
    write(tmp_path / "a.scn", "good", "livelock == true")
    write(tmp_path / "b.scn", "fails", "livelock == false")
    write(tmp_path / "c.scn", "bad", "livelok == true")
    out = tmp_path / "junit.xml"
    assert main(["test", str(tmp_path), "--junit", str(out)]) == 2
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [Path(s.get("name")).name for s in suites] == ["a.scn", "b.scn", "c.scn"]
    for s in suites:
        cases = s.findall("testcase")
        assert int(s.get("tests")) == len(cases)
        assert int(s.get("failures")) == sum(len(c.findall("failure")) for c in cases)
        assert int(s.get("errors")) == sum(len(c.findall("error")) for c in cases)
        for c in cases:
            assert c.get("name") and c.get("classname") and float(c.get("time")) >= 0
    assert [int(root.get(k)) for k in ("tests", "failures", "errors")] == [3, 1, 1]
    (failure,) = root.iter("failure")
    assert failure.get("message").startswith(f"{tmp_path / 'b.scn'}:6:9: expected livelock == false: "
                                             "livelock = true")
    (err,) = root.iter("error")
    assert "unknown metric 'livelok'" in err.get("message")
