"""Fixtures shared by every test layer. Integration fixtures start real
servers (NATS, Redis, HTTP) on free loopback ports and stop them."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs under both backends: the toolkit promises both."""
    return str(request.param)
