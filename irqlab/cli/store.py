"""``irqlab query | runs | show | reproduce | plot``: reading a results database.

``DB`` is a sweep output directory, its ``results.db`` or an SQLAlchemy URL.
Everything here opens the database read-only; the logic lives in
:mod:`irqlab.results`.
"""

from __future__ import annotations

import click

from irqlab.cli.main import cli


def _echo_table(res, title: str | None = None) -> None:
    from irqlab.results.query import write_output

    if title:
        click.secho(title, bold=True)
    write_output(res, "table", None)


@cli.command("query")
@click.argument("db")
@click.argument("sql")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              default="table", show_default=True, help="Output format.")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False),
              help="Write to FILE instead of standard output (required for parquet); never a "
                   "file of a results directory.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Stop the query after this long (exit 2).")
@click.option("--engine", type=click.Choice(["auto", "sqlite", "duckdb"]), default="auto",
              show_default=True, help="auto: DuckDB over the Parquet files when it is installed "
              "and the statement reads only Parquet-backed views; sqlite: the SQL database.")
def query_cmd(db: str, sql: str, fmt: str, out: str | None, force: bool,
              timeout: float | None, engine: str) -> None:
    """Run one read-only SQL statement on DB.

    Each sweep has a wide view sweep_<no> (one column per parameter and
    metric), e.g.:

      irqlab query out/ "SELECT threshold, delay, avg(time_to_l2_progress_ns)
      FROM sweep_1 GROUP BY 1, 2"

    The database refuses anything but reading; Ctrl-C stops a long query
    (exit 130). See docs/results.md for the schema.
    """
    from irqlab.results.duckdb_engine import run_query_with
    from irqlab.results.query import write_output
    from irqlab.results.readonly import check_output_path

    if out:
        check_output_path(out, db, force)
    write_output(run_query_with(db, sql, engine, timeout=timeout), fmt, out, force=force)


@cli.command("runs")
@click.argument("db")
@click.option("--sweep", "-s", help="Only this sweep (id, number, name or view).")
@click.option("--status", type=click.Choice(["ok", "failed"]), help="Only runs with this status.")
@click.option("--limit", "-n", type=int, default=50, show_default=True,
              help="Runs to list (0: all).")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True)
def runs_cmd(db: str, sweep: str | None, status: str | None, limit: int, fmt: str) -> None:
    """List the sweeps and runs in DB."""
    from irqlab.results import catalog
    from irqlab.results.query import write_output

    sw = catalog.sweeps(db)
    res, total = catalog.runs(db, sweep, status, limit or None)
    _warn_abandoned(db)
    if fmt != "table":
        write_output(res, fmt, None)
        return
    _echo_table(sw, "Sweeps")
    _echo_table(readable_runs(res), f"Runs ({len(res.rows)} of {total})")
    if total > len(res.rows):
        click.echo(f"... {total - len(res.rows)} more (use --limit 0, --sweep or --status)")


def fmt_seconds(v) -> str:
    """Seconds to 3 significant digits (``0.0439``), not float noise."""
    return "NULL" if v is None else f"{v:.3g}"


def readable_runs(res):
    """The runs table as shown: each run's seed with its spawn key (replications differ in
    the key: SeedSequence(seed, spawn_key) is the stream the run used), wall_s to 3
    significant digits, truncated as yes/no."""
    from irqlab.results.query import QueryResult

    cols = list(res.columns)
    i_seed, i_key = cols.index("seed"), cols.index("spawn_key")
    i_wall, i_trunc = cols.index("wall_s"), cols.index("truncated")
    out = []
    for r in res.rows:
        r = list(r)
        r[i_seed] = f"{r[i_seed]} {r[i_key] or '[]'}"
        r[i_wall] = fmt_seconds(r[i_wall])
        r[i_trunc] = None if r[i_trunc] is None else ("yes" if r[i_trunc] else "no")
        out.append(tuple(v for k, v in enumerate(r) if k != i_key))
    cols[i_seed] = "seed, spawn key"
    return QueryResult([c for k, c in enumerate(cols) if k != i_key], out)


def _warn_abandoned(db: str) -> None:
    """On stderr: sweeps marked running whose writer process is gone (killed); the next
    writer of the directory marks them 'killed'."""
    from irqlab.errors import ScenarioError
    from irqlab.results.query import run_query
    from irqlab.results.writer import writer_gone

    try:
        rows = run_query(db, "SELECT sweep_id, writer FROM sweeps WHERE status = 'running'").rows
    except ScenarioError:  # a database from before the writer column
        return
    for sid, writer in rows:
        if writer_gone(writer):
            click.echo(f"irqlab: warning: sweep {sid} is marked running but its process "
                       f"({writer}) is gone; it was killed (the next sweep into this directory "
                       "marks it 'killed')", err=True)


@cli.command("show")
@click.argument("db")
@click.argument("run_id")
@click.option("--scenario", is_flag=True, help="Also print the sweep's scenario text.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show_cmd(db: str, run_id: str, scenario: bool, as_json: bool) -> None:
    """Show a run's parameters, metrics and provenance (RUN_ID may be a unique prefix)."""
    import json

    from irqlab.results.catalog import run_record
    from irqlab.results.query import QueryResult
    from irqlab.results.reproduce import stored_arrays

    rec = run_record(db, run_id)
    arrays = stored_arrays(db, rec.run["run_id"])
    prov_keys = ("sweep_id", "name", "status", "scenario_file", "scenario_hash", "command",
                 "irqlab_version", "plugin_versions", "git_commit", "git_dirty", "host",
                 "started_at", "ended_at", "base_seed", "view_name")
    if as_json:
        out = {"run": {k: v for k, v in rec.run.items() if k != "params"},
               "params": rec.params,
               "metrics": {p: v for p, _, v, _, _ in rec.metrics},
               "units": {p: u for p, _, _, _, u in rec.metrics if u},
               "arrays": arrays,
               "sweep": {k: rec.sweep.get(k) for k in prov_keys}}
        if scenario:
            out["scenario_text"] = rec.sweep["scenario_text"]
        click.echo(json.dumps(out, indent=1, default=str))
        return
    r = rec.run
    click.secho(f"run {r['run_id']}", bold=True)
    for k in ("sweep_id", "point", "replication", "seed", "spawn_key", "status", "error",
              "wall_s", "events", "truncated", "shard"):
        click.echo(f"  {k:12} {r[k]}")
    _echo_table(QueryResult(["path", "column", "value", "unit"],
                            [(p, c, rec.params.get(p, v), u) for p, c, v, u in rec.param_cols]),
                "Parameters")
    _echo_table(QueryResult(["metric", "value", "unit"],
                            [(p, v, u) for p, _, v, _, u in rec.metrics]), "Metrics")
    for name, values in arrays.items():  # e.g. a latency histogram: its non-zero bins
        nonzero = ", ".join(f"{i}: {v:g}" for i, v in enumerate(values) if v)
        click.echo(f"{name} ({len(values)} elements; non-zero idx: value): {nonzero or 'none'}")
    if rec.series_fields:
        click.echo("Time series: " + ", ".join(rec.series_fields))
    click.secho("Provenance", bold=True)
    for k in prov_keys:
        click.echo(f"  {k:15} {provenance_value(k, rec.sweep)}")
    if scenario:
        click.secho("Scenario", bold=True)
        click.echo(rec.sweep["scenario_text"])


def provenance_value(key: str, sweep: dict) -> str:
    """A provenance field as ``show`` prints it: the git state in words."""
    v = sweep.get(key)
    if key == "git_commit" and v is None:
        return "none (the scenario file was not in a git work tree)"
    if key == "git_dirty" and v is not None:
        return "yes (uncommitted changes in the work tree)" if v else "no"
    return str(v)


@cli.command("reproduce")
@click.argument("db")
@click.argument("run_id")
def reproduce_cmd(db: str, run_id: str) -> None:
    """Rerun RUN_ID from its stored scenario, parameters and seed; exit 1 unless every
    stored metric is bit-identical."""
    from irqlab.results.reproduce import reproduce

    rec, diffs = reproduce(db, run_id)
    n = len(rec.metrics)
    if not diffs:
        click.echo(f"{rec.run['run_id']}: reproduced: {n} metrics bit-identical")
        return
    click.echo(f"{rec.run['run_id']}: NOT reproduced: {len(diffs)} of {n} metrics differ")
    for d in diffs:
        click.echo(f"  {d.name}: stored {d.stored!r}, rerun {d.new!r}")
    raise click.exceptions.Exit(1)


@cli.command("plot")
@click.argument("db")
@click.argument("metric")
@click.option("-x", "x", help="Parameter on the x axis (not for a histogram).")
@click.option("--by", "hue", help="Second parameter: one line per value.")
@click.option("-y", "y", help="Second parameter on the y axis: a heatmap of means.")
@click.option("--sweep", "-s", help="Sweep (id, number, name or view); default: the latest.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="PNG or SVG file to write.")
@click.option("--logx/--linx", default=None,
              help="Log or linear x axis (default: log when the values span two decades).")
@click.option("--logy/--liny", default=None,
              help="Log or linear y axis (default: log when the values span two decades).")
@click.option("--title")
def plot_cmd(db: str, metric: str, x: str, hue: str | None, y: str | None, sweep: str | None,
             out: str, logx: bool | None, logy: bool | None, title: str | None) -> None:
    """Plot METRIC against parameter -x: lines (95% CI over replications, one per --by
    value) or, with -y, a heatmap. A histogram (e.g. latency_hist, from `run { histograms
    on }`) is drawn as a distribution over latency, one line per --by value."""
    from irqlab.results.plot import plot
    from irqlab.results.readonly import check_output_path

    check_output_path(out, db, force=True)
    s = plot(db, metric, x, out=out, hue=hue, y=y, sweep=sweep, logx=logx, logy=logy,
             title=title)
    click.echo(f"wrote {out} ({s['rows']} runs)" + (f"; {s['caption']}" if s.get("caption") else ""))


@cli.command("verify")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--db", "db_url", default=None, metavar="URL",
              help="SQLAlchemy URL of the database (default: OUT_DIR/results.db).")
@click.option("--repair", is_flag=True,
              help="Take missing and corrupt shards' runs out of the results (files moved to "
                   "quarantine/), so the next run of the sweep runs exactly them again.")
def verify_cmd(out_dir: str, db_url: str | None, repair: bool) -> None:
    """Check OUT_DIR's SQL rows against its Parquet files; exit 1 on any problem.

    Names every missing or corrupt shard (size and SHA-256 recorded at its
    commit) and the runs in it, Parquet files the database does not list, and
    row counts that differ. Read-only unless --repair is given.
    """
    from irqlab.results.verify import REPAIRABLE, repair as do_repair, verify

    rep = verify(out_dir, db_url)
    for p in rep.problems:
        click.echo(p.format())
    for note in rep.notes:
        click.echo(f"note: {note}")
    status = "ok" if rep.ok else f"{len(rep.problems)} problem(s)"
    click.echo(f"verify {out_dir}: {rep.shards} shards, {rep.runs} runs: {status}")
    if rep.ok:
        return
    if repair:
        dropped = do_repair(out_dir, rep, db_url)
        n = sum(k for _, _, k in dropped)
        click.echo(f"repaired: {len(dropped)} shard(s) quarantined, {n} runs taken out; run "
                   "each sweep again (the same command) to run them again")
        if all(p.kind in REPAIRABLE and p.file for p in rep.problems):
            return
    raise click.exceptions.Exit(1)


@cli.command("rebuild")
@click.argument("out_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--db", "db_url", default=None, metavar="URL",
              help="An empty database to rebuild into (default: OUT_DIR/results.db, which "
                   "must not exist).")
def rebuild_cmd(out_dir: str, db_url: str | None) -> None:
    """Recreate OUT_DIR's database (tables, catalog, views) from its Parquet files."""
    from irqlab.results.rebuild import rebuild

    rep = rebuild(out_dir, db_url)
    for note in rep.notes:
        click.echo(f"note: {note}")
    click.echo(f"rebuilt {db_url or out_dir}: {rep.sweeps} sweeps, {rep.runs} runs, "
               f"{rep.files} shards")
