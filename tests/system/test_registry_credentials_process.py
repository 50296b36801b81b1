"""`meshgate registry` and `meshgate health` as real processes against a
nats-server that demands a token: the right token (flag or variable) gets
the node serving; a wrong one ends it at once with exit code 2 and one
line that says why; and with ``--registration-key-file`` the node refuses a
client that does not hold the key.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from meshgate.bus.connection import Bus
from meshgate.bus.credentials import NatsCredentials
from meshgate.bus.nats_server import NatsServer
from meshgate.bus.signing import RegistrationSigner
from meshgate.discovery.backends.bus_client import RegistryClient
from tests.system.node_process import REPO, node, until_served
from tests.unit.discovery.backend_contract import instance

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-" + uuid.uuid4().hex
KEY = b"system-test-registration-key-" + uuid.uuid4().hex.encode()
# A refused connection ends in one round trip; the rest is Python starting.
FAILS_WITHIN = 10


@pytest.fixture
def anyio_backend() -> str:
    """nats-py runs on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="module")
def token_server() -> Iterator[NatsServer]:
    with NatsServer(extra_args=["--auth", TOKEN]) as server:
        yield server


def meshgate(command: str, *args: str) -> list[str]:
    """The ``meshgate`` console script's command line, run from this checkout."""
    return [sys.executable, "-m", "meshgate.cli", command, *args]


def environment(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This environment without any MESHGATE_* of the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHGATE_")}
    return {**env, **extra}


@asynccontextmanager
async def registry_process(
    args: Sequence[str], log_file: Path, env: Mapping[str, str] = {}
) -> AsyncIterator[anyio.abc.Process]:
    """``meshgate registry ARGS`` logging to `log_file`; stopped with SIGTERM
    (and expected to exit 0) on the way out."""
    async with node(["meshgate.cli", "registry", *args], log_file, environment(env)) as process:
        yield process
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            assert await process.wait() == 0


@pytest.mark.parametrize("given_as", ["flag", "variable"])
async def test_the_registry_serves_on_a_nats_server_that_requires_a_token(
    token_server: NatsServer, tmp_path: Path, given_as: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    args = ["--nats", token_server.url, "--prefix", prefix, "--backend", "nats-kv"]
    env: dict[str, str] = {}
    if given_as == "flag":
        args += ["--nats-token", TOKEN]
    else:
        env["MESHGATE_NATS_TOKEN"] = TOKEN
    credentials = NatsCredentials(token=TOKEN)
    log_file = tmp_path / "registry.log"

    async with (
        await Bus.connect(token_server.url, prefix=prefix, credentials=credentials) as bus,
        registry_process(args, log_file, env),
    ):
        client = RegistryClient(bus, timeout=1.0)
        await until_served(client)
        stored = await client.register(instance(), ttl=60)
        assert await client.get_instances("user-service") == [stored]

    log = log_file.read_text()
    assert "registry.started" in log
    assert TOKEN not in log


@pytest.mark.parametrize("command", ["registry", "health"])
async def test_a_wrong_token_ends_the_process_at_once_with_exit_code_2(
    token_server: NatsServer, command: str
) -> None:
    with anyio.fail_after(FAILS_WITHIN):
        done = await anyio.run_process(
            meshgate(command, "--nats", token_server.url, "--nats-token", "wrong-token"),
            cwd=REPO,
            env=environment(),
            check=False,
        )

    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"meshgate {command}: NATS at {token_server.url} refused")
    assert "--nats-token" in lines[0]
    assert "wrong-token" not in lines[0]


async def test_a_missing_registration_key_file_ends_the_registry_at_once(
    token_server: NatsServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.key"
    args = ["--nats", token_server.url, "--registration-key-file", str(missing)]
    with anyio.fail_after(FAILS_WITHIN):
        done = await anyio.run_process(
            meshgate("registry", *args),
            cwd=REPO,
            env=environment({"MESHGATE_NATS_TOKEN": TOKEN}),
            check=False,
        )

    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"meshgate registry: registration key file {missing}: cannot read it (FileNotFoundError)"
    ]


async def test_a_registry_with_a_registration_key_refuses_clients_without_it(
    token_server: NatsServer, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    key_file = tmp_path / "registration.key"
    key_file.write_bytes(KEY + b"\n")
    args = ["--nats", token_server.url, "--prefix", prefix, "--backend", "memory"]
    args += ["--registration-key-file", str(key_file)]
    credentials = NatsCredentials(token=TOKEN)
    log_file = tmp_path / "registry.log"

    async with (
        await Bus.connect(token_server.url, prefix=prefix, credentials=credentials) as bus,
        registry_process(args, log_file, {"MESHGATE_NATS_TOKEN": TOKEN}),
    ):
        without_key = RegistryClient(bus, timeout=1.0)
        with_key = RegistryClient(bus, timeout=1.0, signer=RegistrationSigner(KEY))
        await until_served(without_key)

        with pytest.raises(PermissionError, match="register refused: unsigned"):
            await without_key.register(instance(host="10.6.6.6"), ttl=60)
        assert await without_key.get_instances("user-service") == []
        stored = await with_key.register(instance(), ttl=60)
        assert await without_key.get_instances("user-service") == [stored]

    log = log_file.read_text()
    assert "signed_requests_only=True" in log
    assert "registry.request_refused" in log
    assert "reason=unsigned" in log
