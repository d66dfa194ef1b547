"""``irqlab plugins``, ``plugins show NAME`` and ``plugins docs``: what is installed.

Thin: the registry (:mod:`irqlab.plugins.registry`) knows the plugins, the
reference renderer (:mod:`irqlab.plugins.docs`) formats their declarations.
"""

from __future__ import annotations

import json
import sys

import click

from irqlab.cli.main import EXIT_USER_ERROR, cli, fail
from irqlab.plugins.api import KINDS

STATUS_STYLE = {"ok": "green", "broken": "red", "conflict": "yellow"}


def _entry_json(e) -> dict:
    return {"kind": e.kind, "name": e.name, "version": e.version, "origin": e.origin,
            "dist": e.dist, "target": e.target, "status": e.status, "reason": e.reason,
            "rivals": list(e.rivals), "summary": e.summary}


def _problem(e) -> str:
    if e.status == "conflict":
        return f"{e.kind} '{e.name}' is also registered by {' and '.join(e.rivals)}"
    return e.reason


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, highlight=False)


@cli.group("plugins", invoke_without_command=True)
@click.option("--kind", type=click.Choice(KINDS), help="Only plugins of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--strict", is_flag=True, help="Exit with status 1 if any plugin is broken or in conflict.")
@click.pass_context
def plugins_cmd(ctx, kind, as_json, strict):
    """List every plugin: kind, name, version, origin, status (ok, broken, conflict).

    Plugins come from the 'irqlab.plugins' entry-point group, irqlab's own
    built-ins included. See 'irqlab plugins show NAME' for one plugin's
    parameters and docs, and docs/writing-plugins.md to write one.
    """
    if ctx.invoked_subcommand is not None:
        return
    from irqlab.plugins.registry import registry

    entries = [e for e in registry().entries() if kind is None or e.kind == kind]
    bad = [e for e in entries if e.status != "ok"]
    if as_json:
        json.dump([_entry_json(e) for e in entries], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=f"{len(entries)} plugin(s)" + (f", {len(bad)} with problems" if bad else ""),
                  title_justify="left")
        for col in ("kind", "name", "version", "origin", "status", "about"):
            t.add_column(col, no_wrap=col != "about")
        for e in entries:
            style = STATUS_STYLE.get(e.status, "")
            t.add_row(escape(e.kind), escape(e.name), escape(e.version), escape(e.origin),
                      f"[{style}]{e.status}[/{style}]", escape(e.summary if e.status == "ok" else _problem(e)))
        _console().print(t)
        # the reasons in full, unwrapped, so they can be read and grepped
        for e in bad:
            click.echo(f"{e.status}: {e.kind} {e.name} ({e.origin}, {e.target}): {_problem(e)}")
    if strict and bad:
        raise click.exceptions.Exit(1)


@plugins_cmd.command("show")
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), help="The kind, when several kinds use NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print the declarations as JSON.")
def show_cmd(name, kind, as_json):
    """Print NAME's documentation, parameters (type, unit, default, range, doc),
    hooks and timers (mitigations) or columns (metrics)."""
    from irqlab.errors import did_you_mean
    from irqlab.plugins.registry import registry

    reg = registry()
    found = [e for e in reg.lookup(name) if kind is None or e.kind == kind]
    if not found:
        names = {e.name for e in reg.entries() if kind is None or e.kind == kind}
        what = f"{kind} plugin" if kind else "plugin"
        hint = did_you_mean(name, names)
        raise fail(f"no {what} named '{name}'" + (f"; {hint}" if hint else "") +
                   " (see 'irqlab plugins')")
    if as_json:
        json.dump([_show_json(e) for e in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    console = _console()
    for i, e in enumerate(found):
        if i:
            console.print()
        _print_entry(console, e)


def _show_json(e) -> dict:
    from irqlab.plugins.api import Metric, Mitigation
    from irqlab.plugins.docs import doc_text, param_rows, usage

    out = _entry_json(e)
    if e.cls is not None:
        cls = e.cls
        out.update(doc=doc_text(cls), usage=usage(cls), params=param_rows(cls))
        if issubclass(cls, Mitigation):
            out.update(hooks=sorted(cls.hooks), timers=cls.timers)
        if issubclass(cls, Metric):
            out["columns"] = [{"name": c.name, "type": c.type, "unit": c.unit, "doc": c.doc}
                              for c in cls.columns]
    return out


def _print_entry(console, e) -> None:
    from rich.markup import escape
    from rich.table import Table

    from irqlab.plugins.api import Metric, Mitigation
    from irqlab.plugins.docs import doc_text, param_rows, usage

    style = STATUS_STYLE.get(e.status, "")
    console.print(f"[bold]{e.kind} {escape(e.name)}[/bold] {escape(e.version)}  "
                  f"[{style}]{e.status}[/{style}]")
    console.print(f"from {escape(e.origin)} ({escape(e.target)})")
    if e.status != "ok":
        console.print(f"[{style}]{escape(_problem(e))}[/{style}]")
    cls = e.cls
    if cls is None:
        return
    console.print()
    console.print(escape(doc_text(cls)))
    console.print()
    console.print("[bold]In a scenario:[/bold]")
    console.print(escape(usage(cls)))
    console.print()
    rows = param_rows(cls)
    if rows:
        t = Table(title="parameters", title_justify="left")
        for col in ("name", "type", "unit", "default", "range", "varies", "doc"):
            t.add_column(col, no_wrap=col in ("name", "type", "default"))
        for r in rows:
            t.add_row(*(escape(r[k]) for k in ("name", "type", "unit", "default", "range", "sweep", "doc")))
        console.print(t)
    else:
        console.print("no parameters")
    if issubclass(cls, Mitigation):
        console.print(f"hooks: {', '.join(sorted(cls.hooks)) or 'none'}; timers: {cls.timers}")
    if issubclass(cls, Metric):
        t = Table(title="columns", title_justify="left")
        for col in ("column", "type", "unit", "doc"):
            t.add_column(col)
        for c in cls.columns:
            t.add_row(c.name, c.type, c.unit, escape(c.doc))
        console.print(t)


@plugins_cmd.command("docs")
@click.option("--dist", default=None, metavar="NAME",
              help="Only the plugins of this distribution (irqlab: the built-ins, docs/plugins.md).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of standard output.")
@click.option("--check", is_flag=True,
              help="With -o: write nothing; exit with status 1 if the file is out of date.")
def docs_cmd(dist, output, check):
    """Print the Markdown reference generated from the plugins' declarations.

    docs/plugins.md is 'irqlab plugins docs --dist irqlab -o docs/plugins.md'.
    """
    from irqlab.plugins.docs import render_registry
    from irqlab.plugins.registry import registry

    reg = registry()
    if dist is not None and not any(e.dist == dist for e in reg.entries()):
        dists = sorted({e.dist for e in reg.entries() if e.dist})
        raise fail(f"no plugins from a distribution named '{dist}' (distributions: {', '.join(dists)})")
    text = render_registry(reg, dist)
    if output is None:
        if check:
            raise fail("--check needs -o FILE")
        sys.stdout.write(text)
        return
    if check:
        from irqlab.errors import ScenarioError
        from irqlab.files import read_bytes

        try:
            current = read_bytes(output, what="plugin docs").decode("utf-8", errors="replace")
        except ScenarioError:
            current = None
        if current != text:
            click.echo(f"{output} is out of date; regenerate it with: irqlab plugins docs"
                       f"{' --dist ' + dist if dist else ''} -o {output}", err=True)
            raise click.exceptions.Exit(1)
        click.echo(f"{output} is up to date")
        return
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    click.echo(f"wrote {output}")


@plugins_cmd.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--vary", "varies", multiple=True, metavar="PATH=V1,V2,...",
              help="Lanes take these values (repeatable: the grid of all). Vary numbers that make "
                   "lanes behave differently, e.g. --vary token_bucket.rate=1kHz,100kHz,1MHz.")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help="Override a parameter.")
@click.option("-n", "--replications", type=click.IntRange(1), default=2, show_default=True,
              help="Seeds per point.")
@click.option("--backend", "backends", multiple=True, help="Backends to compare (default: numpy, and kernel when every plugin has kernel "
              "support).")
def check_cmd(file, varies, sets, replications, backends):
    """Check that FILE's plugins keep the vectorized contract.

    Runs the lanes (the --vary grid x replications) in a batch, reversed, twice,
    each alone, and in every backend, and reports every lane whose results differ
    or that failed. Exit status 1 if the contract is broken.
    """
    import itertools

    from irqlab import engine
    from irqlab.cli.sim import load_resolved
    from irqlab.cli.sweep import _split_values
    from irqlab.plugins.testing import contract_problems, default_backends

    axes = []
    for item in varies:
        if "=" not in item:
            raise fail(f"--vary wants PATH=V1,V2,..., got '{item}'")
        path, values = item.split("=", 1)
        axes.append([f"{path.strip()}={v}" for v, _ in _split_values(values)])
    base = None
    lanes = []
    for combo in itertools.product(*axes):
        program = engine.compile(load_resolved(file, tuple(sets) + combo))
        if base is None:
            base = program
        elif program.key != base.key:
            raise fail(f"{', '.join(combo)} changes the compiled program's structure; "
                       "vary numeric parameters only")
        lanes += [base.lane_for(program, seed=0, spawn_key=(r,)) for r in range(replications)]
    backends = backends or default_backends(base)
    problems = contract_problems(base, lanes, backends)
    what = f"{len(lanes)} lane(s) x {len(backends)} backend(s) ({', '.join(backends)})"
    if problems:
        click.echo(f"{file}: the vectorized contract is broken ({what}):")
        for p in problems:
            click.echo(f"  {p}")
        raise click.exceptions.Exit(1)
    agree = "agree; " if len(backends) > 1 else "(no kernel hook to compare); "
    click.echo(f"{file}: ok: {what} {agree}each lane is the same alone, in a batch, "
               "reversed and run twice")


__all__ = ["plugins_cmd", "EXIT_USER_ERROR"]
