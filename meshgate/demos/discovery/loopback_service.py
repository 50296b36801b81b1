"""`LoopbackService`: a tiny HTTP/1.1 service on a free loopback port, for the
service-client demo. It answers every request with a JSON body naming
itself, with a status the demo sets, and can crash (close its socket and
every connection) on demand.

HTTP is parsed with h11, which httpx already depends on (through httpcore),
so the demo needs nothing beyond meshgate's own dependencies.
"""

from __future__ import annotations

import json
from contextlib import suppress

import anyio
import anyio.abc
import h11


class LoopbackService:
    """One instance of a service. `status` is what it answers (200 unless the
    demo breaks it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = 200
        self.port = 0
        self._scope: anyio.CancelScope | None = None

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on a free loopback port (then `port` is set) until `crash`
        or cancellation."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        with anyio.CancelScope() as self._scope:
            async with listener:
                task_status.started()
                await listener.serve(self._connection)

    def crash(self) -> None:
        """Stop at once, as a killed process does: the port refuses connections
        and open ones are dropped."""
        if self._scope is not None:
            self._scope.cancel()

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        # A client hanging up mid-conversation is the client's business.
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, h11.ProtocolError):
            async with stream:
                await self._converse(stream, h11.Connection(h11.SERVER))

    async def _converse(self, stream: anyio.abc.SocketStream, connection: h11.Connection) -> None:
        request: h11.Request | None = None
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                try:
                    connection.receive_data(await stream.receive())
                except anyio.EndOfStream:
                    connection.receive_data(b"")
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                await self._answer(stream, connection, request)
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return

    async def _answer(
        self, stream: anyio.abc.SocketStream, connection: h11.Connection, request: h11.Request
    ) -> None:
        status = self.status
        answer = {"instance": self.name, "path": request.target.decode()}
        body = json.dumps(answer).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        await stream.send(connection.send(h11.Response(status_code=status, headers=headers)))
        await stream.send(connection.send(h11.Data(data=body)))
        await stream.send(connection.send(h11.EndOfMessage()))
