"""``irqlab report``: one self-contained HTML file to share a sweep.

The file needs no network and no other file to be read: CSS inline, plots as inline SVG
(matplotlib, text kept as text), the scenario highlighted by pygments with inline styles,
and a Content-Security-Policy that forbids fetching anything. It holds, for one sweep:

* the answer table (the one ``irqlab sweep`` prints: :func:`~irqlab.experiments.table.answer_table`);
* plots: the main metric (time to L2 progress, or to progress without an L2) and the L2
  fraction against the first swept parameter, one line per value of the second; the
  latency distribution when the sweep stored histograms;
* the scenario text, highlighted;
* the provenance (the ``sweeps`` row);
* every run (up to :data:`MAX_RUNS`) with its parameters, status and its
  ``irqlab reproduce`` command, each row an anchor (``#run-<id>``) to link to.

The report is written next to nothing it reads: a path that is one of the results
directory's own files (the database, its journal, the Parquet files, the lock) is
refused, and an existing file is replaced only if it is itself an irqlab report.
"""

from __future__ import annotations

import html
import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

from irqlab.errors import ScenarioError

MARK = "<!-- irqlab report -->"
MAX_RUNS = 2000
CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       margin: 2em auto; max-width: 1100px; padding: 0 1.5em; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #d8dde6; }
.sub { color: #5a6372; margin-top: 0; }
table { border-collapse: collapse; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8dde6; padding: .25em .6em; text-align: right; vertical-align: top; }
th { background: #eef2f8; } td.l, th.l { text-align: left; }
tr.failed td { background: #fdecec; } tr:target td { background: #fff6cc; }
code, pre { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre.scn, .scn pre { background: #f6f8fa; border: 1px solid #d8dde6; padding: .8em; overflow-x: auto; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #5a6372; font-size: .9em; }
.note { color: #5a6372; font-size: .9em; }
"""


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _table(header: list[str], rows: list[list[Any]], left: int = 0, cls: str = "") -> str:
    """An HTML table; the first ``left`` columns are left-aligned."""
    def cell(tag: str, k: int, v: Any) -> str:
        return f'<{tag}{" class=l" if k < left else ""}>{v}</{tag}>'

    head = "".join(cell("th", k, _esc(h)) for k, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", k, _esc(v)) for k, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def highlight_scn(text: str) -> str:
    """The scenario text as HTML with inline styles (pygments; comments, keywords, numbers
    with units, strings and dotted paths told apart)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexer import RegexLexer, bygroups
    from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text

    class ScnLexer(RegexLexer):
        name = "irqlab scenario"
        tokens = {"root": [
            (r"#[^\n]*", Comment.Single),
            (r'"([^"\\\n]|\\.)*"', String),
            (r"^([ \t]*)([A-Za-z_][A-Za-z0-9_]*)", bygroups(Text, Keyword)),
            (r"(0[xX][0-9a-fA-F_]+|[0-9][0-9_]*(\.[0-9][0-9_]*)?([eE][+-]?[0-9]+)?)"
             r"([ \t]*(ns|us|µs|ms|s|cycles|cycle|[kKmMgG]?Hz)\b)?", Number),
            (r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+", Name.Attribute),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (r"==|!=|<=|>=|[<>=+\-*/]", Operator),
            (r"[{}\[\](),]", Punctuation),
            (r"\s+", Text),
            (r".", Text),
        ]}

    return highlight(text, ScnLexer(), HtmlFormatter(noclasses=True, style="default",
                                                     cssclass="scn"))


def _svg(path: Path) -> str:
    """An SVG file's ``<svg>`` element, for inlining (no XML prolog or DOCTYPE)."""
    text = path.read_text(encoding="utf-8")
    return text[text.index("<svg"):]


def _nested(sweep: dict) -> bool:
    """True if the sweep's scenario runs an L2 on some vCPU (lowered as ``reproduce`` does);
    True when the text cannot be lowered here (its imports are not where they were)."""
    try:
        from irqlab import dsl

        scenario = dsl.loads(sweep["scenario_text"], sweep["scenario_file"] or "<scenario>")
        return any(v.innermost == "L2" for v in scenario.vcpus)
    except (ScenarioError, OSError):
        return True


def check_output(target: str, out: str | os.PathLike) -> Path:
    """``out`` as a path that may be written: not a file of the results directory, and not
    an existing file unless it is an irqlab report. ScenarioError otherwise."""
    from irqlab.results.db import resolve_target

    out = Path(out)
    _, db = resolve_target(target)
    if db is not None:
        results = db.resolve().parent
        o = out.resolve()
        own = o.parent == results and (o.name.startswith(db.name) or o.name.startswith("."))
        if own or results / "parquet" in o.parents:
            raise ScenarioError(f"refusing to write the report to '{out}': it is one of the "
                                f"results directory's own files",
                                hint="write it elsewhere, e.g. -o report.html")
    if out.exists():
        try:
            with out.open("r", encoding="utf-8", errors="replace") as f:
                head = f.read(4096)
        except OSError:
            head = ""
        if MARK not in head:
            raise ScenarioError(f"refusing to overwrite '{out}': it exists and is not an irqlab "
                                f"report", hint="remove it, or write the report elsewhere")
    return out


def _shown_target(target: str) -> str:
    from irqlab.results.db import is_url

    if not is_url(target):
        return target
    from sqlalchemy.engine import make_url

    return make_url(target).render_as_string(hide_password=True)


def _plots(target: str, sw: dict, params: list[str], nested: bool, workdir: Path) -> list[tuple[str, str]]:
    """``(svg, caption)`` of the report's plots."""
    from irqlab.results import plot as plotting
    from irqlab.results.query import run_query

    cols = plotting.sweep_columns(target, sw["sweep_id"])
    names = {c.path: c.name for c in cols if c.role == "param"}
    swept = [names[p] for p in params if p in names]
    out: list[tuple[str, str]] = []
    metrics = ["time_to_l2_progress_ns", "l2_fraction"] if nested else ["time_to_progress_ns"]
    metrics.append("livelock")
    if swept:
        for k, metric in enumerate(metrics):
            f = workdir / f"p{k}.svg"
            try:
                s = plotting.plot(target, metric, swept[0], out=str(f),
                                  hue=swept[1] if len(swept) > 1 else None, sweep=sw["sweep_id"])
            except ScenarioError as e:  # e.g. no successful run: say so in the report
                out.append(("", f"{metric}: {e.message}"))
                continue
            out.append((_svg(f), s.get("caption", "")))
    hists = run_query(target, "SELECT DISTINCT name FROM metric_arrays WHERE sweep_id = :s "
                              "ORDER BY name", {"s": sw["sweep_id"]}).rows
    for k, (name,) in enumerate(hists):
        f = workdir / f"h{k}.svg"
        try:
            s = plotting.plot(target, name, None, out=str(f), sweep=sw["sweep_id"],
                              hue=swept[0] if swept else None)
        except ScenarioError as e:
            out.append(("", f"{name}: {e.message}"))
            continue
        out.append((_svg(f), s.get("caption", "")))
    return out


def build(target: str, sweep: str | None = None) -> str:
    """The report of ``sweep`` (default: the latest) as one HTML document."""
    from irqlab import __version__
    from irqlab.experiments.driver import TABLE_METRICS
    from irqlab.experiments.readback import stored_rows
    from irqlab.experiments.table import MAX_ROWS, answer_table
    from irqlab.results import catalog
    from irqlab.results.catalog import _q
    from irqlab.results.query import run_query

    sw = catalog.find_sweep(target, sweep) if sweep else catalog.latest_sweep(target)
    params = json.loads(sw.get("param_paths") or "[]")
    units = json.loads(sw.get("param_units") or "{}")
    nested = _nested(sw)
    rows = stored_rows(target, sw["sweep_id"], params, TABLE_METRICS)
    header, cells, total = answer_table(rows, params, None, units, nested)
    counts = dict(run_query(target, "SELECT status, count(*) FROM runs WHERE sweep_id = :s "
                                    "GROUP BY status", {"s": sw["sweep_id"]}).rows)
    shown = _shown_target(target)
    title = f"sweep {sw['sweep_id']} ({sw['name']})"

    parts = [f"<h1>{_esc(title)}</h1>",
             f'<p class="sub">{_esc(sw["status"])}: {counts.get("ok", 0)} ok, '
             f'{counts.get("failed", 0)} failed of {_esc(sw["planned_runs"])} planned runs; '
             f'view <code>{_esc(sw["view_name"])}</code> in <code>{_esc(shown)}</code></p>',
             "<h2 id=answers>Answers</h2>"]
    if cells:
        parts.append(_table(header, cells))
        if total > len(cells):
            parts.append(f'<p class="note">the first {MAX_ROWS} of {total} rows</p>')
    else:
        parts.append('<p class="note">no runs yet</p>')
    parts.append('<p class="note">livelock: the fraction of ok runs that livelocked; times are '
                 'means over the ok runs that progressed ("never": how many did not)</p>')

    parts.append("<h2 id=plots>Plots</h2>")
    with tempfile.TemporaryDirectory(prefix="irqlab-report-") as tmp:
        for svg, caption in _plots(target, sw, params, nested, Path(tmp)):
            parts.append(f"<figure>{svg}</figure>"  # its caption is in the SVG
                         if svg else f'<p class="note">{_esc(caption)}</p>')

    parts.append("<h2 id=scenario>Scenario</h2>")
    parts.append(f'<p class="sub"><code>{_esc(sw["scenario_file"])}</code>, sha256 '
                 f'<code>{_esc(sw["scenario_hash"])}</code></p>')
    parts.append(highlight_scn(sw["scenario_text"] or ""))

    parts.append("<h2 id=provenance>Provenance</h2>")
    prov = ["sweep_id", "name", "status", "command", "scenario_file", "scenario_hash",
            "irqlab_version", "plugin_versions", "git_commit", "git_dirty", "host", "started_at",
            "ended_at", "base_seed", "planned_runs", "param_paths", "param_units", "view_name",
            "alias_view"]
    parts.append(_table(["field", "value"], [[k, sw.get(k)] for k in prov], left=2))

    parts.append("<h2 id=runs>Runs</h2>")
    cat = run_query(target, "SELECT column_name, path FROM sweep_columns WHERE sweep_id = :s "
                            "AND role = 'param' ORDER BY ordinal", {"s": sw["sweep_id"]}).rows
    sel = ", ".join(["run_id", "point", "replication", "seed", "spawn_key", "status", "error",
                     *(_q(c) for c, _ in cat)])
    res = run_query(target, f"SELECT {sel} FROM {_q(sw['view_name'])} "
                            f"ORDER BY point, replication, run_id LIMIT {MAX_RUNS + 1}")
    parts.append('<p class="note">each run reruns bit for bit with the command beside it; '
                 'link to a run with <code>#run-&lt;id&gt;</code></p>')
    head = "".join(f"<th>{_esc(h)}</th>" for h in
                   ["run", "point", "rep", "seed", *(c for c, _ in cat), "status", "reproduce"])
    body = []
    for r in res.rows[:MAX_RUNS]:
        rid, point, rep, seed, key, status, error, *vals = r
        cmd = shlex.join(["irqlab", "reproduce", shown, rid])
        cls = ' class="failed"' if status != "ok" else ""
        body.append(
            f'<tr id="run-{_esc(rid)}"{cls}><td class=l><a href="#run-{_esc(rid)}">'
            f"<code>{_esc(rid)}</code></a></td><td>{_esc(point)}</td><td>{_esc(rep)}</td>"
            f"<td>{_esc(seed)} {_esc(key)}</td>"
            + "".join(f"<td>{_esc(v)}</td>" for v in vals)
            + f'<td class=l>{_esc(status)}{": " + _esc(error) if error else ""}</td>'
            f"<td class=l><code>{_esc(cmd)}</code></td></tr>")
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    if len(res.rows) > MAX_RUNS:
        parts.append(f'<p class="note">the first {MAX_RUNS} runs; every run: '
                     f"<code>irqlab runs {_esc(shown)} --sweep {_esc(sw['sweep_id'])} "
                     f"--limit 0</code></p>")
    parts.append(f'<p class="note">written by irqlab {_esc(__version__)}</p>')
    return ("<!DOCTYPE html>\n" + MARK + "\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>irqlab report: {_esc(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write_report(target: str, out: str | os.PathLike, sweep: str | None = None) -> Path:
    """Build the report and write it to ``out`` atomically (see :func:`check_output`)."""
    path = check_output(target, out)
    text = build(target, sweep)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
