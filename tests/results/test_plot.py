"""irqlab plot: lines with confidence intervals or a heatmap, with units on the axes."""

from __future__ import annotations

import pytest

from irqlab.cli.main import main
from irqlab.results.plot import scale_for, t95


def test_line_plot_png(written, tmp_path, capsys):
    """A metric against one parameter, one line per value of another, written as PNG."""
    out = tmp_path / "p.png"
    assert main(["plot", str(written), "time_to_l2_progress_ns", "-x", "threshold",
                 "--by", "delay", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "11 runs" in capsys.readouterr().out  # the failed run is left out


def test_line_plot_svg_has_units(written, tmp_path):
    """Axis labels carry the metric's unit (scaled) and the legend the parameter's unit."""
    out = tmp_path / "p.svg"
    assert main(["plot", str(written), "l2_time_ns", "-x", "delay", "--by", "threshold",
                 "-o", str(out)]) == 0
    svg = out.read_text()
    assert "delay [ms]" in svg and "l2_time_ns [us] (mean, 95% CI)" in svg
    assert "threshold = 100" in svg


def test_heatmap_svg(written, tmp_path):
    """Two parameters give a heatmap with both axes labelled and a colour bar with the unit."""
    out = tmp_path / "h.svg"
    assert main(["plot", str(written), "device.uhci.latency_p99_ns", "-x", "threshold",
                 "-y", "mitigation.qemu_eoi_throttle.delay", "-o", str(out)]) == 0
    svg = out.read_text()
    assert "delay [ms]" in svg and "threshold" in svg
    assert "mean device_uhci_latency_p99_ns [ns]" in svg


def test_unknown_parameter_is_a_user_error(written, tmp_path, capsys):
    """A misspelt parameter gets a did-you-mean, status 2."""
    assert main(["plot", str(written), "l2_time_ns", "-x", "treshold",
                 "-o", str(tmp_path / "x.png")]) == 2
    assert "did you mean 'threshold'" in capsys.readouterr().err


def test_the_same_parameter_twice_is_a_user_error(written, tmp_path, capsys):
    """-x threshold -y threshold would draw a diagonal of a heatmap: refused, status 2."""
    assert main(["plot", str(written), "l2_time_ns", "-x", "threshold", "-y", "threshold",
                 "-o", str(tmp_path / "x.png")]) == 2
    assert "threshold is given for both -x and -y" in capsys.readouterr().err


def test_bad_output_suffix_is_a_user_error(written, tmp_path, capsys):
    """Only .png and .svg are written."""
    assert main(["plot", str(written), "l2_time_ns", "-x", "threshold",
                 "-o", str(tmp_path / "x.pdf")]) == 2


@pytest.mark.parametrize("unit,values,want", [
    ("s", [0.001, 0.01], (1e-3, "ms")), ("ns", [2e6], (1e6, "ms")),
    ("Hz", [5e3], (1e3, "kHz")), ("", [3.0], (1.0, "")),
])
def test_scale_for(unit, values, want):
    """Times and frequencies are shown in a readable unit."""
    assert scale_for(unit, values) == want


def test_t95():
    """The CI uses Student's t for small samples."""
    assert t95(2) == 12.706 and t95(1000) == 1.96
