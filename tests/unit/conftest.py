"""The unit tier: no PostgreSQL, no Redis, no worker or API process (see tests/conftest.py).

The fixtures that start or reach those are refused here by name, so a unit test that asks
for one fails in every run, not only in runs where the services happen to be down."""

from __future__ import annotations

import pytest


def _refuse(request: pytest.FixtureRequest) -> None:
    pytest.fail(
        f"`{request.fixturename}` needs PostgreSQL and Redis: a test that uses it belongs "
        "outside tests/unit",
        pytrace=False,
    )


@pytest.fixture
def client(request: pytest.FixtureRequest) -> None:
    _refuse(request)


@pytest.fixture
def worker(request: pytest.FixtureRequest) -> None:
    _refuse(request)


@pytest.fixture
def api_server(request: pytest.FixtureRequest) -> None:
    _refuse(request)
