"""Waiting in tests for what another task or process will make true."""

from __future__ import annotations

from collections.abc import Callable

import anyio


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Return once `condition()` holds; fail the test after `within` seconds."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - state held elsewhere: nothing to wait on
            await anyio.sleep(0.02)
