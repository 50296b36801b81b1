"""How every meshgate process stops: SIGINT or SIGTERM cancels its task
group, whose `finally` blocks then drain, deregister and close cleanly."""

from __future__ import annotations

import signal

import anyio
import anyio.abc
from structlog.typing import FilteringBoundLogger


async def stop_on_signal(
    scope: anyio.CancelScope,
    log: FilteringBoundLogger | None = None,
    event: str = "process.stopping",
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Cancel `scope` at the first SIGINT or SIGTERM, logging `event` with the
    signal's name. Start it first in a process's task group, so that a signal
    during start-up stops cleanly too::

        async with anyio.create_task_group() as tg:
            await tg.start(stop_on_signal, tg.cancel_scope, log, "gateway.stopping")
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if log is not None:
                log.info(event, signal=signal.Signals(signum).name)
            scope.cancel()
            return
