"""irqlab plot: lines with confidence intervals or a heatmap, with units on the axes."""

from __future__ import annotations

import pytest

from irqlab.cli.main import main
from irqlab.results.plot import plot, scale_for, t95
from irqlab.results.store import ResultStore
from tests.results.results_helpers import make_result, run_infos, sweep_info


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
    assert "delay [ms]" in svg and "mean L2 time [us], 95% CI" in svg
    assert "threshold = 100" in svg


def test_heatmap_svg(written, tmp_path):
    """Two parameters give a heatmap with both axes labelled and a colour bar with the unit."""
    out = tmp_path / "h.svg"
    assert main(["plot", str(written), "device.uhci.latency_p99_ns", "-x", "threshold",
                 "-y", "mitigation.qemu_eoi_throttle.delay", "-o", str(out)]) == 0
    svg = out.read_text()
    assert "delay [ms]" in svg and "threshold" in svg
    assert "mean uhci latency p99 [ns]" in svg


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


def test_labels_are_human_names_with_units(written, tmp_path):
    """The y label is a human name with its unit, not a column name with another unit."""
    out = tmp_path / "p.svg"
    plot(str(written), "time_to_l2_progress_ns", "delay", out=str(out))
    svg = out.read_text()
    assert "mean time to L2 progress [us], 95% CI" in svg
    assert "time_to_l2_progress_ns" not in svg


def test_title_names_the_sweep_as_the_cli_does(written, tmp_path):
    """The title says 'sweep <id> (<name>)', as `irqlab sweep` and `runs` do."""
    out = tmp_path / "p.svg"
    plot(str(written), "l2_time_ns", "threshold", out=str(out))
    assert "L2 time: sweep s1 (storm)" in out.read_text()


def test_caption_names_the_parameters_averaged_over(written, tmp_path):
    """A plot over threshold alone says it is a mean over the swept delay."""
    s = plot(str(written), "l2_time_ns", "threshold", out=str(tmp_path / "p.svg"))
    assert s["caption"] == "mean over delay (2 values)"
    assert "mean over delay (2 values)" in (tmp_path / "p.svg").read_text()
    s = plot(str(written), "l2_time_ns", "threshold", hue="delay", out=str(tmp_path / "q.svg"))
    assert s["caption"] == ""


@pytest.fixture
def coinciding(tmp_path):
    """A sweep whose two delay values give identical metrics at every threshold."""
    with ResultStore(tmp_path) as store:
        store.begin_sweep(sweep_info())
        store.write_batch("s1", run_infos(6), make_result(6))  # delay 1 ms
        store.write_batch("s1", run_infos(6, start=6), make_result(6))  # delay 10 ms, same values
        store.finish_sweep("s1", "2024-01-01T01:00:00+00:00", "done")
    return tmp_path


def test_coinciding_lines_are_told_and_drawn_apart(coinciding, tmp_path):
    """Lines that lie on each other are named in the caption and differ in marker and style."""
    out = tmp_path / "p.svg"
    s = plot(str(coinciding), "l2_time_ns", "threshold", hue="delay", out=str(out))
    assert s["caption"] == "lines 1 ms and 10 ms coincide (delay)"
    svg = out.read_text()
    assert "coincide" in svg
    assert "stroke-dasharray" in svg  # the second line is dashed


def test_log_axes_are_picked_when_values_span_decades(written, tmp_path):
    """threshold 10..1000 gets a log x axis; delay 1..10 ms stays linear; flags override."""
    assert plot(str(written), "l2_time_ns", "threshold", out=str(tmp_path / "a.svg"))["logx"]
    assert not plot(str(written), "l2_time_ns", "delay", out=str(tmp_path / "b.svg"))["logx"]
    assert not plot(str(written), "l2_time_ns", "threshold", out=str(tmp_path / "c.svg"),
                    logx=False)["logx"]


def test_histogram_of_a_sweep_without_histograms(written, tmp_path, capsys):
    """plot latency_hist on a sweep run without `histograms on` says so and how to turn
    them on, and nothing about -x or a missing metric."""
    assert main(["plot", str(written), "latency_hist", "-o", str(tmp_path / "h.png")]) == 2
    err = capsys.readouterr().err
    assert "sweep s1 (storm) stored no latency histograms" in err
    assert "run { histograms on }" in err
    assert "-x" not in err and "no metric" not in err
