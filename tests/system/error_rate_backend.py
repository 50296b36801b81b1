"""A tiny HTTP/1.1 upstream for system tests: answers every request ``200
ok``, except an exact share `error_rate` of them, which get ``500``; counts
requests per first two path segments (``/api/orders``), so a test can tell
where the gateway sent traffic. Keep-alive, bodies read and ignored; written
independently of the gateway (asyncio streams + h11)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h11


@dataclass
class ErrorRateBackend:
    error_rate: float = 0.0
    port: int = 0
    served: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    _count: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _fails_next(self) -> bool:
        # Exactly floor(n * rate) failures among the first n requests.
        self._count += 1
        n = self._count
        return math.floor(n * self.error_rate) > math.floor((n - 1) * self.error_rate)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await self._next(conn, reader)
                if not isinstance(event, h11.Request):
                    return
                while not isinstance(await self._next(conn, reader), h11.EndOfMessage):
                    pass
                path = event.target.decode().split("?")[0]
                self.served["/".join(path.split("/")[:3])] += 1
                status = 500 if self._fails_next() else 200
                self.failed += status == 500
                body = b"ok" if status == 200 else b"boom"
                headers = [("content-length", str(len(body))), ("content-type", "text/plain")]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
                writer.write(conn.send(h11.Data(data=body)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(ConnectionError):
                writer.close()

    @staticmethod
    async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            return event
