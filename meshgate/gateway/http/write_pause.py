"""Write flow control, shared by the server's and the upstream client's
protocols: the transport calls `pause_writing` when its buffer passes the
high-water mark and `resume_writing` when it has drained; a writer that must
wait parks a future in `_writable_waiter`, which resuming (or losing the
connection) wakes."""

from __future__ import annotations

import asyncio


class WritePause(asyncio.Protocol):
    """The write side of a protocol's flow control (see the module docstring)."""

    __slots__ = ("_writable_waiter", "_write_paused")

    def __init__(self) -> None:
        self._write_paused = False
        self._writable_waiter: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter = self._writable_waiter
        if waiter is not None:
            self._writable_waiter = None
            if not waiter.done():
                waiter.set_result(None)
