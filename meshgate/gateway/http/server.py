"""`HttpServer`: the gateway's HTTP/1.1 server, asyncio protocols parsed by
httptools (see `server_connection.py` for the per-connection rules).

    async def handler(request: Request, responder: Responder) -> None:
        await responder.send(200, b"ok")

    server = HttpServer(handler, limits=ServerLimits(idle_timeout=30.0))
    await server.start("127.0.0.1", 0)
    host, port = server.bound[0]
    ...
    await server.drain(10.0)      # finish in-flight requests, then stop
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
from collections.abc import Callable

import structlog

from meshgate.gateway.http.access import AccessRecord
from meshgate.gateway.http.limits import ServerLimits
from meshgate.gateway.http.request import Handler
from meshgate.gateway.http.server_connection import ServerConnection, ServerState

__all__ = ["HttpServer", "ServerLimits"]

log = structlog.get_logger(__name__)

_BACKLOG = 2048


class HttpServer:
    """Serves `handler` over HTTP/1.1 with keep-alive and pipelining.

    One task runs the handler of each request; pipelined requests are handled
    in order. A handler that raises gets a JSON 500 (502/504 for upstream
    errors) if it had not started answering, else its connection is cut.
    `access`, if given, receives an `AccessRecord` per finished request.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        limits: ServerLimits = ServerLimits(),  # noqa: B008 - frozen Struct, safe to share
        access: Callable[[AccessRecord], None] | None = None,
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._access = access
        self._servers: list[asyncio.Server] = []
        self._state: ServerState | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        """Listen on host:port (port 0 picks a free one), or on `sock`.
        May be called again to listen on more addresses."""
        loop = asyncio.get_running_loop()
        if self._state is None:
            scheme = "https" if ssl is not None else "http"
            self._state = ServerState(self._handler, self._limits, self._access, loop, scheme)
        state = self._state

        def connection() -> ServerConnection:
            return ServerConnection(state)

        if sock is not None:
            server = await loop.create_server(connection, sock=sock, ssl=ssl, backlog=_BACKLOG)
        else:
            server = await loop.create_server(
                connection, host, port, reuse_port=reuse_port or None, ssl=ssl, backlog=_BACKLOG
            )
        self._servers.append(server)
        log.info("http.listening", addresses=self.bound)

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The addresses actually listened on."""
        addresses: list[tuple[str, int]] = []
        for server in self._servers:
            for listener in server.sockets:
                name = listener.getsockname()
                addresses.append((str(name[0]), int(name[1])))
        return addresses

    @property
    def active_connections(self) -> int:
        return len(self._state.connections) if self._state is not None else 0

    @property
    def in_flight(self) -> int:
        """Requests whose handler is running."""
        return self._state.in_flight if self._state is not None else 0

    def _stop_listening(self) -> None:
        for server in self._servers:
            server.close()

    async def drain(self, deadline: float) -> None:
        """Stop accepting, close idle keep-alive connections, let requests in
        flight finish (their responses say `Connection: close`) for up to
        `deadline` seconds, then cut whatever is left."""
        state = self._state
        self._stop_listening()
        if state is None:
            return
        state.draining = True
        for connection in list(state.connections):
            connection.begin_drain()
        if state.connections and deadline > 0:
            try:
                await asyncio.wait_for(state.wait_all_closed(), timeout=deadline)
            except TimeoutError:
                log.warning("http.drain_deadline_passed", remaining=len(state.connections))
        await self._abort_all(state)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def close(self) -> None:
        """Stop at once: cut every connection and wait for their handlers to stop."""
        await self.drain(0.0)

    async def _abort_all(self, state: ServerState) -> None:
        tasks = [c.task for c in state.connections if c.task is not None]
        for connection in list(state.connections):
            connection.abort()
        if state.connections:
            # connection_lost runs on the loop's next turns
            await asyncio.wait_for(state.wait_all_closed(), timeout=5.0)
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
