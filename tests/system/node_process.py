"""One meshgate process for a system test, `python -m <module> ...`, logging
to a file, killed on the way out if the test has not stopped it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc

REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def node(args: list[str], log_file: Path) -> AsyncIterator[anyio.abc.Process]:
    with log_file.open("ab") as log:
        process = await anyio.open_process(
            [sys.executable, "-m", *args], cwd=REPO, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
