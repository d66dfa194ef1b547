"""Column naming: shortest unique suffixes, metric names, view names."""

from irqlab.results import naming


def test_parameter_gets_shortest_unique_suffix():
    """mitigation.qemu_eoi_throttle.threshold becomes threshold."""
    cols = naming.param_columns(["mitigation.qemu_eoi_throttle.threshold",
                                 "mitigation.qemu_eoi_throttle.delay"])
    assert cols == {"mitigation.qemu_eoi_throttle.threshold": "threshold",
                    "mitigation.qemu_eoi_throttle.delay": "delay"}


def test_clashing_suffixes_are_lengthened():
    """Two parameters with one last segment get two segments each."""
    cols = naming.param_columns(["device.a.service", "device.b.service"])
    assert cols == {"device.a.service": "a_service", "device.b.service": "b_service"}


def test_clash_with_run_or_metric_column_is_lengthened():
    """run.seed must not shadow the seed run column; a metric name is taken too."""
    cols = naming.param_columns(["run.seed", "x.events"], taken=["events"])
    assert cols == {"run.seed": "run_seed", "x.events": "x_events"}


def test_keyword_and_digit_suffixes_are_avoided():
    """A suffix that is an SQL keyword or starts with a digit is lengthened."""
    cols = naming.param_columns(["device.d.order", "vcpu.0"])
    assert cols == {"device.d.order": "d_order", "vcpu.0": "vcpu_0"}


def test_metric_names_keep_their_name_with_underscores():
    """Dots in metric names become underscores, case kept."""
    assert naming.metric_column("exits.VMRESUME") == "exits_VMRESUME"
    assert naming.metric_column("device.uhci.latency_p99_ns") == "device_uhci_latency_p99_ns"


def test_alias_view_is_sanitized():
    """A sweep named 'EOI storm' gets the alias view sweep_eoi_storm; '7' gets none."""
    assert naming.alias_view("EOI storm") == "sweep_eoi_storm"
    assert naming.alias_view("7") is None
