"""irqlab report: one self-contained HTML file, checked as text and in a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from irqlab.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _report(target, out, capsys) -> str:
    assert main(["report", str(target), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    return out.read_text(encoding="utf-8")


def test_report_holds_table_plots_scenario_provenance_and_reproduce_commands(written, tmp_path,
                                                                              capsys):
    """The answer table, inline SVG plots, the highlighted scenario, the provenance and one
    `irqlab reproduce` command (with its anchor) per run are all in the file."""
    page = _report(written, tmp_path / "r.html", capsys)
    assert "<th>time to L2 progress</th>" in page and "<th>threshold</th>" in page
    assert page.count("<svg") >= 3
    assert re.search(r'<span style="[^"]+">run</span>', page)  # pygments, inline styles
    assert "deadbeef" in page and "irqlab sweep storm.scn" in page  # provenance
    for k in range(12):
        rid = f"r{k:06d}"
        assert f'id="run-{rid}"' in page and f'href="#run-{rid}"' in page
        assert f"irqlab reproduce {written} {rid}" in page
    assert 'class="failed"' in page  # r000004


def test_report_needs_no_network(written, tmp_path, capsys):
    """Nothing is fetched: no script, stylesheet link, remote src/href or outside url(); a CSP
    forbids loading anything."""
    page = _report(written, tmp_path / "r.html", capsys)
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"url\(\s*['\"]?(?!#)", page)  # only in-page references: url(#clip)
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:|//)', page)
    assert "default-src 'none'" in page


@pytest.mark.parametrize("name", ["results.db", "results.db-wal", ".irqlab-writer.lock",
                                  "parquet/runs/x.html"])
def test_report_never_writes_a_results_file(written, name, capsys):
    """-o naming one of the results directory's own files is refused, status 2."""
    target = written / name
    before = target.read_bytes() if target.is_file() else None
    assert main(["report", str(written), "-o", str(target.with_suffix(".html"))
                 if name.endswith(".html") else str(target)]) == 2
    assert "refusing" in capsys.readouterr().err
    assert (target.read_bytes() if target.is_file() else None) == before


def test_report_overwrites_only_a_report(written, tmp_path, capsys):
    """An existing file that is not an irqlab report is kept; an old report is replaced."""
    other = tmp_path / "notes.html"
    other.write_text("<p>mine</p>")
    assert main(["report", str(written), "-o", str(other)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert other.read_text() == "<p>mine</p>"
    out = tmp_path / "r.html"
    _report(written, out, capsys)
    _report(written, out, capsys)  # its own earlier report: replaced


def test_report_hides_a_urls_password():
    """A database URL is shown (in the page and its reproduce commands) without its password."""
    from irqlab.results.report import _shown_target

    shown = _shown_target("postgresql+psycopg://me:s3cret@db.example/irq")
    assert "s3cret" not in shown and shown.startswith("postgresql+psycopg://me:")


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_renders_in_a_headless_browser(tmp_path, capsys):
    """A real sweep's report loads in headless Chromium without console errors, its DOM holds
    the table and the plots, and a screenshot is not blank."""
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium or Chrome on PATH (.ci/run installs Debian's chromium)")
    shutil.copy(ROOT / "examples" / "founding_case.scn", tmp_path)
    (tmp_path / "small.scn").write_text(
        'import "founding_case.scn"\n\nscenario small extends founding_case {\n'
        "    mitigation qemu_eoi_throttle {\n        threshold 100\n        delay 1ms\n    }\n"
        "    run {\n        duration 3ms\n        histograms on\n    }\n"
        "    sweep {\n        grid {\n            qemu_eoi_throttle.threshold = [10, 100, 1000]\n"
        "            qemu_eoi_throttle.delay = [100us, 1ms]\n        }\n"
        "        replications 2\n    }\n}\n")
    out = tmp_path / "out"
    assert main(["sweep", str(tmp_path / "small.scn"), "--out", str(out), "--no-table"]) == 0
    page = tmp_path / "report.html"
    _report(out, page, capsys)
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*common, f"--user-data-dir={tmp_path / 'p1'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h2 id=\"answers\">Answers</h2>" in dom.stdout and dom.stdout.count("<svg") >= 4
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == []  # no script error, no load refused by the page's CSP
    shot = tmp_path / "shot.png"
    done = subprocess.run([*common, f"--user-data-dir={tmp_path / 'p2'}",
                           f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, table rules, plot lines: not blank
    white = max(colours)[0] / sum(n for n, _ in colours)
    assert white < 0.97
