"""``irqlab test``: run the scenarios that have expectations and report pass or fail."""

from __future__ import annotations

import click

from irqlab.cli.main import EXIT_USER_ERROR, cli
from irqlab.cli.cmdline import SET_HELP


@cli.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--junit", "junit", type=click.Path(dir_okay=False, writable=True),
              help="Also write the results as JUnit XML to this file.")
@click.option("--set", "sets", multiple=True, help=SET_HELP + " Applied to every scenario.")
def test_cmd(paths, junit, sets):
    """Run every scenario with an `expect` block in PATHS (files, or folders searched for
    *.scn; a folder holding a Python package, such as a plugin's example, is left out)
    with its own run block, and check its expectations.

    One line per scenario; a failure shows each failed expectation with its
    FILE:LINE:COL and the measured value. Exit status: 1 if an expectation
    failed or a run failed, 2 on a bad scenario file, 0 otherwise.
    """
    from irqlab.errors import with_disk_sources
    from irqlab.testrun import failure_lines, junit_xml, run_file, scenario_files

    cases = []
    for path in scenario_files(paths):
        for case in run_file(path, sets):
            cases.append(case)
            if case.error is not None:
                click.echo(f"ERROR {case.file}", err=False)
                click.echo(with_disk_sources(case.error).format(), err=True)
                continue
            status = "PASS" if case.passed else "FAIL"
            n = len(case.outcomes)
            click.echo(f"{status}  {case.name}  {case.file}  ({case.runs} run{'s' if case.runs != 1 else ''}, "
                       f"{n} expectation{'s' if n != 1 else ''}, {case.seconds:.1f} s)")
            for line in failure_lines(case):
                click.echo(line)
    bad = sum(1 for c in cases if c.error is not None)
    failed = sum(1 for c in cases if c.error is None and not c.passed)
    passed = len(cases) - bad - failed
    click.echo(f"{len(cases)} scenario{'s' if len(cases) != 1 else ''} with expectations: {passed} passed, "
               f"{failed} failed" + (f", {bad} could not run" if bad else ""))
    if junit:
        with open(junit, "w", encoding="utf-8") as fh:
            fh.write(junit_xml(cases))
    if bad:
        raise click.exceptions.Exit(EXIT_USER_ERROR)
    if failed:
        raise click.exceptions.Exit(1)
