"""The gateway's upstream client: keep-alive connection pools over asyncio
protocols and httptools (see `upstream_connection.py` for one exchange).

    pools = UpstreamPools()
    pool = pools.get("10.0.0.5", 8080)
    response = await pool.request(
        "GET", b"/users/1", [(b"Host", b"users")], None,
        content_length=None, response_timeout=5.0,
    )
    data = await response.read_all(limit=1 << 20)
    await pools.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterable

import msgspec

from meshgate.gateway.http.framing import encode_head
from meshgate.gateway.http.upstream_connection import StaleConnectionError, UpstreamConnection
from meshgate.gateway.http.upstream_errors import (
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamConnectTimeoutError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from meshgate.gateway.http.upstream_response import UpstreamResponse

__all__ = [
    "PoolStats",
    "UpstreamClosedError",
    "UpstreamConnectError",
    "UpstreamConnectTimeoutError",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamPools",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTimeoutError",
]

_CHUNKED = b"Transfer-Encoding: chunked\r\n"


class PoolStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one pool: connections idle and in use, and since start
    how many were opened, how many requests reused one, and how many stale
    keep-alive connections were replaced by a retry."""

    idle: int
    active: int
    connects: int
    reuses: int
    stale_retries: int


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one host:port.

    Idle connections are reused most-recent first, at most `max_idle` are
    kept, and each is closed after `idle_timeout` seconds unused. There is no
    cap on connections in use: concurrency limits are the bulkhead's job.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_idle: int = 64,
        connect_timeout: float = 2.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self._max_idle = max_idle
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._idle: deque[UpstreamConnection] = deque()
        self._all: set[UpstreamConnection] = set()
        self._active = 0
        self._connects = 0
        self._reuses = 0
        self._stale_retries = 0
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self.last_used = 0.0

    @property
    def stats(self) -> PoolStats:
        return PoolStats(
            idle=len(self._idle),
            active=self._active,
            connects=self._connects,
            reuses=self._reuses,
            stale_retries=self._stale_retries,
        )

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes] | None,
        *,
        content_length: int | None,
        response_timeout: float | None,
    ) -> UpstreamResponse:
        """Send one request; return once the response head has arrived.

        `headers` must hold `Host` and no framing headers: the pool writes
        `Content-Length` (for bytes bodies, or `content_length` given) or
        chunked `Transfer-Encoding` (an async-iterable body without a length).
        `response_timeout` bounds each wait on the upstream (the head after
        the request is sent, each body read, taking request bytes); None
        waits forever.

        Raises `UpstreamConnectError` (nothing sent), `UpstreamTimeoutError`,
        `UpstreamClosedError`, `UpstreamProtocolError`, or whatever the body
        iterable raised. A reused connection found closed before any response
        byte is replaced once, transparently, if the body can be replayed:
        None, bytes, or an iterable other than an async generator whose
        chunks sent so far fit the 64 KiB replay buffer.
        """
        if self._closed:
            raise UpstreamConnectError(f"the pool for {self.host}:{self.port} is closed")
        if body is None:
            framing = b"" if content_length is None else b"Content-Length: %d\r\n" % content_length
        elif isinstance(body, bytes | bytearray | memoryview):
            content_length = len(body)
            framing = b"Content-Length: %d\r\n" % content_length
        elif content_length is None:
            framing = _CHUNKED
        else:
            framing = b"Content-Length: %d\r\n" % content_length
        head = encode_head(
            method.encode("ascii") + b" " + target + b" HTTP/1.1\r\n", headers, framing
        )
        is_head = method == "HEAD"
        loop = asyncio.get_running_loop()
        self.last_used = loop.time()
        connection = self._take_idle()
        if connection is not None:
            try:
                return await connection.exchange(
                    head, body, content_length, is_head=is_head, response_timeout=response_timeout
                )
            except StaleConnectionError as stale:
                if not stale.replayable:
                    raise UpstreamClosedError(str(stale), request_sent=True) from None
                if stale.replay is not None:
                    body = stale.replay
                self._stale_retries += 1
        connection = await self._connect(loop)
        try:
            return await connection.exchange(
                head, body, content_length, is_head=is_head, response_timeout=response_timeout
            )
        except StaleConnectionError as stale:  # pragma: no cover - fresh connections are not stale
            raise UpstreamClosedError(str(stale), request_sent=True) from None

    def _take_idle(self) -> UpstreamConnection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.is_usable:
                self._active += 1
                self._reuses += 1
                return connection
            connection.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> UpstreamConnection:
        def protocol() -> UpstreamConnection:
            return UpstreamConnection(self, loop)

        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(protocol, self.host, self.port)
        except TimeoutError:
            raise UpstreamConnectTimeoutError(
                f"connecting to {self.host}:{self.port} timed out after {self._connect_timeout}s"
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._connects += 1
        self._active += 1
        self._all.add(connection)
        return connection

    # --- ConnectionOwner ----------------------------------------------------------------

    def exchange_ended(self, connection: UpstreamConnection, reusable: bool) -> None:
        self._active -= 1
        if reusable and not self._closed and len(self._idle) < self._max_idle:
            loop = asyncio.get_running_loop()
            connection.idle_since = loop.time()
            self._idle.append(connection)
            if self._sweep is None:
                self._sweep = loop.call_later(self._idle_timeout, self._close_expired)
        else:
            connection.close()
            if not reusable:
                self._all.discard(connection)

    def idle_connection_lost(self, connection: UpstreamConnection) -> None:
        self._all.discard(connection)
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)

    def _close_expired(self) -> None:
        self._sweep = None
        idle = self._idle
        if not idle:
            return
        loop = asyncio.get_running_loop()
        expired_before = loop.time() - self._idle_timeout
        # the oldest idle connections sit at the left end
        while idle and idle[0].idle_since <= expired_before:
            idle.popleft().close()
        if idle:
            delay = idle[0].idle_since + self._idle_timeout - loop.time()
            self._sweep = loop.call_later(max(delay, 0.01), self._close_expired)

    @property
    def is_unused(self) -> bool:
        """No connection open at all."""
        return not self._all and self._active == 0

    async def close(self) -> None:
        """Close every connection, idle or in use; later requests fail."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for connection in list(self._all):
            connection.close()
        self._all.clear()
        # let connection_lost callbacks run before the loop may close
        await asyncio.sleep(0)


class UpstreamPools:
    """One `UpstreamPool` per host:port, made on first use; pools left with
    no connection for `idle_timeout` are dropped.

        pool = pools.get("users.internal", 8080)
    """

    def __init__(
        self,
        *,
        max_idle: int = 64,
        connect_timeout: float = 2.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self._max_idle = max_idle
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._pools: dict[tuple[str, int], UpstreamPool] = {}
        self._next_prune = 0.0

    def get(self, host: str, port: int) -> UpstreamPool:
        pool = self._pools.get((host, port))
        if pool is None:
            self._prune()
            pool = UpstreamPool(
                host,
                port,
                max_idle=self._max_idle,
                connect_timeout=self._connect_timeout,
                idle_timeout=self._idle_timeout,
            )
            self._pools[(host, port)] = pool
        return pool

    def __len__(self) -> int:
        return len(self._pools)

    def _prune(self) -> None:
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return
        if now < self._next_prune:
            return
        self._next_prune = now + self._idle_timeout
        stale_before = now - self._idle_timeout
        for key, pool in list(self._pools.items()):
            if pool.is_unused and pool.last_used <= stale_before:
                del self._pools[key]

    async def close(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await pool.close()
