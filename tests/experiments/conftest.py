"""Shared fixtures of the sweep tests: launchers (inline and Ray) behind one interface."""

from __future__ import annotations

import pytest

import sweep_fakes


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray (2 CPUs) for all the tests that need one; stopped at the end."""
    ray = pytest.importorskip("ray")
    import logging

    sweep_fakes.register_by_value()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


LAUNCHERS = [
    "inline",
    pytest.param("ray", marks=pytest.mark.slow),
]


@pytest.fixture(params=LAUNCHERS)
def launcher_kind(request):
    """Each launcher in turn (Ray ones start the session's Ray)."""
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param
