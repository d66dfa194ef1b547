"""``irqlab report``: one self-contained HTML file to share a sweep (see
:mod:`irqlab.results.report`)."""

from __future__ import annotations

import click

from irqlab.cli.main import cli


@cli.command("report")
@click.argument("db")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (never one of the results directory's own files).")
@click.option("--sweep", "-s", help="Sweep (id, number, name or view); default: the latest.")
def report_cmd(db: str, out: str, sweep: str | None) -> None:
    """Write one HTML file, viewable without network, holding a sweep's answer table, its
    plots (inline SVG), its scenario text (highlighted), its provenance and each run's
    `irqlab reproduce` command."""
    from irqlab.results.report import write_report

    path = write_report(db, out, sweep)
    click.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
