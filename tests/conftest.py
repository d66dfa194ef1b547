"""Test configuration: hypothesis profiles (HYPOTHESIS_PROFILE=ci in CI: many more examples)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="long variants of the fault-injection tests (100 kills per launcher)")
