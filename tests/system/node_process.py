"""One meshgate process for a system test, `python -m <module> ...`, logging
to a file, killed on the way out if the test has not stopped it; and the
wait until a registry node started that way answers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc

from meshgate.discovery.backends.bus_client import RegistryClient, RegistryUnavailableError

REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def node(
    args: list[str], log_file: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[anyio.abc.Process]:
    with log_file.open("ab") as log:
        process = await anyio.open_process(
            [sys.executable, "-m", *args], cwd=REPO, stdout=log, stderr=log, env=env
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()


async def until_served(client: RegistryClient) -> None:
    """Wait until a registry node answers (the process needs a moment to start)."""
    with anyio.fail_after(15):
        while True:
            try:
                await client.get_services()
            except RegistryUnavailableError:
                await anyio.sleep(0.1)
            else:
                return
