"""Shared test configuration.

Hypothesis profiles: ``HYPOTHESIS_PROFILE=ci`` (default, bounded) or ``dev`` (more examples).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

from koodrive_fast._client import Client
from koodrive_fast.server import LocalServer

sys.path.insert(0, str(Path(__file__).parent))  # the tests' helper modules

# the suite never reads the developer's own config file or profile (tests that need one
# point KOODRIVE_CONFIG at their own); /dev/null is an empty, valid TOML document
os.environ["KOODRIVE_CONFIG"] = os.devnull
os.environ.pop("KOODRIVE_PROFILE", None)

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# Server fixtures shared by the test modules: one server per module (a module
# may define its own ``srv`` instead), faults and URL lifetime reset around
# every test.


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(min_part_size=64, fsync=False) as srv:
        yield srv


@pytest.fixture()
def srv(server: LocalServer) -> Iterator[LocalServer]:
    server.faults.clear()
    server.set_url_ttl(3600)
    yield server
    server.faults.clear()
    server.set_url_ttl(3600)


@pytest.fixture()
def client(srv: LocalServer) -> Iterator[Client]:
    with srv.client() as c:
        yield c
