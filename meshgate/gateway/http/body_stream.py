"""`BodyStream`: the chunk queue between a protocol's `data_received` (the
producer) and a coroutine reading a body (the consumer), with flow control.

When more than `HIGH_WATER` bytes wait unread, the producer's transport is
paused; it resumes once the consumer has brought the backlog under
`LOW_WATER`. That keeps memory flat however large the body and however slow
the reader. Used for request bodies (server side) and response bodies
(upstream side).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024


class ReadFlow(Protocol):
    """The producer side's switch: stop or restart reading its transport."""

    def pause_body_reading(self) -> None: ...

    def resume_body_reading(self) -> None: ...


class BodyStream:
    """Chunks in arrival order, then either the end or an error.

    Producer: `feed`, `finish`, `fail` (synchronous, from protocol callbacks).
    Consumer: `await next_chunk()` returns bytes, or None at the end; chunks
    that arrived before an error are still delivered before it is raised.
    """

    __slots__ = ("_buffered", "_chunks", "_done", "_error", "_flow", "_paused", "_waiter")

    def __init__(self, flow: ReadFlow | None) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._flow = flow
        self._paused = False

    @property
    def is_done(self) -> bool:
        """The producer finished or failed (chunks may still wait unread)."""
        return self._done

    @property
    def is_complete(self) -> bool:
        """Finished without error and every chunk has been read."""
        return self._done and self._error is None and not self._chunks

    @property
    def buffered(self) -> int:
        return self._buffered

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self._buffered > HIGH_WATER and not self._paused and self._flow is not None:
            self._paused = True
            self._flow.pause_body_reading()

    def finish(self) -> None:
        self._end(None)

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._end(error)

    def _end(self, error: BaseException | None) -> None:
        self._done = True
        self._error = error
        flow = self._flow
        # the producer moves on to other messages: it must not stay paused
        # for this body's backlog, nor be resumed by it later
        self._flow = None
        if self._paused and flow is not None:
            self._paused = False
            flow.resume_body_reading()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def take_all_if_done(self) -> bytes | None:
        """Every buffered byte at once if the producer finished cleanly, else None."""
        if not self._done or self._error is not None:
            return None
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        return body

    def drop_buffered(self) -> None:
        """Forget unread chunks (a body being discarded)."""
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self._flow is not None:
            self._paused = False
            self._flow.resume_body_reading()

    async def next_chunk(self) -> bytes | None:
        while True:
            chunks = self._chunks
            if chunks:
                chunk = chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= LOW_WATER and self._flow is not None:
                    self._paused = False
                    self._flow.resume_body_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter
