"""``irqlab test``: run every scenario that has expectations and check them.

    files = scenario_files(["examples/"])          # *.scn under the paths, sorted
    for case in run_file(path):                      # one CaseResult per scenario with `expect`
        ...
    xml = junit_xml(results)                         # JUnit XML for CI systems

Each scenario runs as ``irqlab run`` runs it: its own ``run`` block
(duration, replications, seed; ``--set`` overrides), every replication in one
batch. Its expectations are then checked over those replications
(:mod:`irqlab.expect`). A file that does not load, or a scenario that cannot
run, is a *bad input*: reported located, never a traceback.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from irqlab import ir
from irqlab.errors import ScenarioError, Span

MAX_FILES = 10_000  # a bound on what one `irqlab test` walks


@dataclass
class CaseResult:
    """One scenario's test: its outcomes, or the error that kept it from running.

    ``error`` is a ScenarioError (a bad file or scenario: exit status 2);
    ``run_errors`` are replications the engine could not finish (a failure)."""

    file: str
    name: str
    span: Span | None = None
    outcomes: list = field(default_factory=list)
    runs: int = 0
    seconds: float = 0.0
    error: ScenarioError | None = None
    run_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and not self.run_errors and all(o.passed for o in self.outcomes)


PACKAGE_MARKERS = ("pyproject.toml", "setup.py")  # a plugin package: its scenarios need it installed


def scenario_files(paths: Sequence[str]) -> list[str]:
    """The ``.scn`` files among ``paths`` (files as given; folders searched recursively,
    sorted, leaving out folders that hold a Python package such as a plugin example);
    a path that does not exist is a ScenarioError."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                if root != p and any(m in files for m in PACKAGE_MARKERS):
                    dirs.clear()
                    continue
                dirs.sort()
                found.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".scn"))
                if len(found) > MAX_FILES:
                    raise ScenarioError(f"more than {MAX_FILES:,} scenario files under '{p}'")
            out.extend(found)
        elif os.path.exists(p):
            out.append(p)
        else:
            raise ScenarioError(f"no such file or folder: '{p}'")
    return list(dict.fromkeys(out))


def run_file(path: str, sets: Sequence[str] = ()) -> Iterator[CaseResult]:
    """A result for each scenario defined in ``path`` that has an ``expect`` block
    (one result with ``error`` set if the file does not load)."""
    from irqlab.dsl import load_all

    try:
        scenarios = load_all(path)
    except ScenarioError as e:
        yield CaseResult(path, os.path.basename(path), error=e)
        return
    for scenario in scenarios.values():
        if scenario.expect:
            yield run_scenario(path, scenario, sets)


def run_scenario(path: str, scenario: ir.Scenario, sets: Sequence[str] = ()) -> CaseResult:
    """Run ``scenario``'s replications (its run block, ``sets`` applied) and check its expectations."""
    from irqlab import engine
    from irqlab.cli.sim import lanes_for, resolve_with_sets
    from irqlab.expect import check

    case = CaseResult(path, scenario.name, scenario.span)
    t0 = time.perf_counter()
    try:
        resolved = resolve_with_sets(scenario, path, tuple(sets))
        program = engine.compile(resolved)
        lanes, _ = lanes_for(resolved, program, None, None)
        result = engine.run(program, lanes)
        flat = result.flat_columns()
        runs = []
        for i in range(result.n):
            if result.status[i] != "ok":
                case.run_errors.append(f"replication {i}: {result.error[i]}")
            else:
                runs.append({k: v[i] for k, v in flat.items() if v.ndim == 1})
        case.runs = result.n
        if not case.run_errors:
            case.outcomes = check(scenario.expect, runs, resolved)
    except ScenarioError as e:
        case.error = e
    case.seconds = time.perf_counter() - t0
    return case


# --------------------------------------------------------------------------- reports


def failure_lines(case: CaseResult) -> list[str]:
    """What a failed case prints under its line: each failed expectation, located,
    with what was measured."""
    out = []
    for msg in case.run_errors:
        out.append(f"  run failed: {msg}")
    for o in case.outcomes:
        if o.passed:
            continue
        x = o.expectation
        where = f" in {len(o.failed)} of {case.runs} replications" \
            if case.runs > 1 and o.failed and o.per_replication else ""
        out.append(f"  {_loc(x.span)}: expected {x.text}")
        out.append(f"    measured: {o.measured}{'; failed' + where if where else ''}")
    return out


def _loc(span: Span | None) -> str:
    if span is None or not span.file:
        return "<unknown>"
    return f"{span.file}:{span.line}:{span.col}"


def junit_xml(cases: Sequence[CaseResult]) -> str:
    """JUnit XML: one ``testsuite`` per file, one ``testcase`` per scenario; a failed
    expectation is a ``failure``, a bad input or a failed run an ``error``."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="irqlab test")
    by_file: dict[str, list[CaseResult]] = {}
    for c in cases:
        by_file.setdefault(c.file, []).append(c)
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for file, group in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=file)
        counts = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        for c in group:
            tc = ET.SubElement(suite, "testcase", name=c.name, classname=_classname(file),
                               file=file, time=f"{c.seconds:.3f}")
            if c.span is not None and c.span.line:
                tc.set("line", str(c.span.line))
            counts["tests"] += 1
            counts["time"] += c.seconds
            if c.error is not None:
                counts["errors"] += 1
                el = ET.SubElement(tc, "error", message=c.error.message, type="ScenarioError")
                el.text = c.error.format()
            elif c.run_errors:
                counts["errors"] += 1
                el = ET.SubElement(tc, "error", message=c.run_errors[0], type="RunFailed")
                el.text = "\n".join(c.run_errors)
            elif not c.passed:
                counts["failures"] += 1
                bad = [o for o in c.outcomes if not o.passed]
                first = bad[0].expectation
                el = ET.SubElement(tc, "failure", type="ExpectationFailed",
                                   message=f"{_loc(first.span)}: expected {first.text}: {bad[0].measured}")
                el.text = "\n".join(line.strip() for line in failure_lines(c))
            out = ET.SubElement(tc, "system-out")
            out.text = "\n".join(f"{'pass' if o.passed else 'FAIL'} {o.expectation.text}: {o.measured}"
                                 for o in c.outcomes)
        for k, v in counts.items():
            suite.set(k, f"{v:.3f}" if k == "time" else str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, f"{v:.3f}" if k == "time" else str(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _classname(file: str) -> str:
    stem = os.path.splitext(os.path.normpath(file))[0]
    return stem.replace(os.sep, ".").lstrip(".")
