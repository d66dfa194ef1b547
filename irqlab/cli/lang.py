"""``irqlab check | parse | lower | fmt``: the scenario language's commands."""

from __future__ import annotations

import sys

import click

from irqlab.cli.main import EXIT_USER_ERROR, cli
from irqlab.errors import ScenarioError


def _report(e: ScenarioError) -> None:
    from irqlab.errors import with_disk_sources

    click.echo(with_disk_sources(e).format(), err=True)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing for files without errors.")
def check(files: tuple[str, ...], quiet: bool) -> None:
    """Check scenario files: syntax, names, units, ranges and cross-checks.

    Exits with status 2 if any file has an error; every error is printed as
    FILE:LINE:COL with the source line and a caret.
    """
    from irqlab.dsl import load_all

    failed = 0
    for path in files:
        try:
            scenarios = load_all(path)
            for scenario in scenarios.values():
                compile_defaults(scenario)
        except ScenarioError as e:
            _report(e)
            failed += 1
            continue
        if not quiet:
            names = ", ".join(scenarios)
            click.echo(f"{path}: ok ({len(scenarios)} scenario{'s' if len(scenarios) != 1 else ''}: {names})")
    if failed:
        if len(files) > 1:
            click.echo(f"irqlab: {failed} of {len(files)} files have errors", err=True)
        raise click.exceptions.Exit(EXIT_USER_ERROR)


def compile_defaults(scenario) -> None:
    """The engine's checks of ``scenario`` at its own parameter values (those the language
    cannot make alone: a guest action's pin, a destination beyond the vCPUs, ...)."""
    from irqlab import engine
    from irqlab.resolve import resolve

    engine.compile(resolve(scenario))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
def parse(file: str) -> None:
    """Print the parse tree of a scenario file (a debug dump of the grammar's view)."""
    from irqlab.dsl import parse as parse_text
    from irqlab.dsl.lowering import read_source

    text = read_source(file)
    tree = parse_text(text, file)
    click.echo(tree.pretty().rstrip("\n"))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--resolved", is_flag=True, help="Show the resolved scenario (parameters evaluated).")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
              help="Override a value before resolving (implies --resolved).")
def lower(file: str, resolved: bool, sets: tuple[str, ...]) -> None:
    """Print the IR a scenario file lowers to (its last scenario)."""
    from irqlab.cli.sim import load_resolved
    from irqlab.dsl import load
    from irqlab.dsl.dump import dump

    scn = load_resolved(file, sets) if resolved or sets else load(file)
    click.echo(dump(scn))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if a file would change; write nothing.")
@click.option("-i", "--in-place", is_flag=True, help="Rewrite the files.")
def fmt(files: tuple[str, ...], check_only: bool, in_place: bool) -> None:
    """Format scenario files canonically (comments kept).

    Without options the formatted text goes to standard output.
    """
    from irqlab.dsl import format_source
    from irqlab.dsl.lowering import read_source

    changed = []
    errors = 0
    for path in files:
        try:
            text = read_source(path)
            out = format_source(text, path)
        except ScenarioError as e:
            _report(e)
            errors += 1
            continue
        if out != text.replace("\r\n", "\n").lstrip("\ufeff"):
            changed.append(path)
        if check_only:
            continue
        if in_place:
            if path in changed:
                with open(path, "w", encoding="utf-8", newline="\n") as f:
                    f.write(out)
        else:
            sys.stdout.write(out)
    if errors:
        raise click.exceptions.Exit(EXIT_USER_ERROR)
    if check_only and changed:
        for p in changed:
            click.echo(f"{p}: would be reformatted", err=True)
        raise click.exceptions.Exit(1)
