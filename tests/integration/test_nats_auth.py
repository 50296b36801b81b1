"""Connecting to a real nats-server that demands credentials: the right ones
get in, anything else fails at once with `BusAuthError` (never a retry loop
or a hang, not even with ``wait_for_server``).

TLS is not exercised here: the environment has no `cryptography` package to
make a throwaway certificate with, and the project adds no dependency for
it; `NatsCredentials.ssl_context` is covered by the unit tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anyio
import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.credentials import NatsCredentials
from meshgate.bus.errors import BusAuthError
from meshgate.bus.messages import HeartbeatRequest, Reply
from meshgate.bus.nats_server import NatsServer

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-" + uuid.uuid4().hex
USER, PASSWORD = "registry", "pw-" + uuid.uuid4().hex
# A refusal arrives in one round trip; this only has to beat nats-py's
# retry loop (two tries per server, reconnect_wait apart) by a wide margin.
FAST = 1.5


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only (trio code uses InProcessBus)."""
    return "asyncio"


@pytest.fixture(scope="module")
def token_server() -> Iterator[NatsServer]:
    with NatsServer(extra_args=["--auth", TOKEN]) as server:
        yield server


@pytest.fixture(scope="module")
def password_server() -> Iterator[NatsServer]:
    with NatsServer(extra_args=["--user", USER, "--pass", PASSWORD]) as server:
        yield server


async def round_trip(bus: Bus) -> Reply:
    """A request answered over the bus: the connection is really usable."""

    async def answer(request: HeartbeatRequest) -> Reply:
        return Reply(ok=True)

    subject = f"test.{uuid.uuid4().hex}.heartbeat"
    await bus.serve(subject, HeartbeatRequest, answer)
    return await bus.request(subject, HeartbeatRequest(service="s", instance_id="i"), Reply)


async def refusal(
    url: str, credentials: NatsCredentials | None, *, wait_for_server: bool = False
) -> str:
    with anyio.fail_after(FAST), pytest.raises(BusAuthError) as caught:
        await Bus.connect(
            url, credentials=credentials, reconnect_wait=2.0, wait_for_server=wait_for_server
        )
    return str(caught.value)


async def test_the_right_token_gets_in(token_server: NatsServer) -> None:
    credentials = NatsCredentials(token=TOKEN)

    async with await Bus.connect(token_server.url, credentials=credentials) as bus:
        assert (await round_trip(bus)).ok


async def test_no_token_is_refused_at_once_with_a_clear_error(token_server: NatsServer) -> None:
    message = await refusal(token_server.url, None)

    assert "refused authorization" in message
    assert "Authorization Violation" in message
    assert token_server.url in message


async def test_a_wrong_token_is_refused(token_server: NatsServer) -> None:
    assert "refused authorization" in await refusal(
        token_server.url, NatsCredentials(token="wrong-token")
    )


async def test_waiting_for_the_server_does_not_wait_out_a_refusal(
    token_server: NatsServer,
) -> None:
    assert "refused authorization" in await refusal(
        token_server.url, NatsCredentials(token="wrong-token"), wait_for_server=True
    )


async def test_the_right_user_and_password_get_in(password_server: NatsServer) -> None:
    credentials = NatsCredentials(user=USER, password=PASSWORD)

    async with await Bus.connect(password_server.url, credentials=credentials) as bus:
        assert (await round_trip(bus)).ok


async def test_no_user_is_refused_at_once(password_server: NatsServer) -> None:
    assert "refused authorization" in await refusal(password_server.url, None)


async def test_a_wrong_password_is_refused(password_server: NatsServer) -> None:
    assert "refused authorization" in await refusal(
        password_server.url, NatsCredentials(user=USER, password="wrong")
    )


async def test_a_token_is_no_user_password(password_server: NatsServer) -> None:
    assert "refused authorization" in await refusal(
        password_server.url, NatsCredentials(token=PASSWORD)
    )


async def test_a_password_in_the_url_stays_out_of_the_refusal(
    password_server: NatsServer,
) -> None:
    url = f"nats://{USER}:wrong-{PASSWORD}@{password_server.host}:{password_server.port}"

    message = await refusal(url, None)

    assert "refused authorization" in message
    assert PASSWORD not in message


async def test_credentials_in_the_url_still_work(password_server: NatsServer) -> None:
    url = f"nats://{USER}:{PASSWORD}@{password_server.host}:{password_server.port}"

    async with await Bus.connect(url) as bus:
        assert (await round_trip(bus)).ok
