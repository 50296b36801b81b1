"""`DemoService`: one tiny HTTP service on a free loopback port, served by
the gateway's own `HttpServer` in this process. It answers every request
with JSON naming who served it::

    {"service": "user-service", "instance": "user-v1-1", "version": "1.0.0",
     "path": "/users/1", "method": "GET"}

Its knobs change while it runs: `error_rate` (a seeded share of 500s),
`fail_with` (every request gets that status: an outage), and `latency`.
`requests` counts what it received, so a demo can show that a circuit kept
traffic away or that a mirror's copies arrived.
"""

from __future__ import annotations

import json
import random

import anyio

from meshgate.bus.instance import ServiceInstance
from meshgate.demos.backends.service_spec import ServiceSpec
from meshgate.gateway.http.request import Request, Responder
from meshgate.gateway.http.server import HttpServer

_JSON = [(b"Content-Type", b"application/json")]
_BODY_LIMIT = 1 << 20


class DemoService:
    """One running instance of `spec`; see the module docstring."""

    def __init__(self, spec: ServiceSpec, *, host: str = "127.0.0.1") -> None:
        self.spec = spec
        self.host = host
        self.port = 0
        self.error_rate = spec.error_rate
        self.latency = spec.latency
        self.fail_with: int | None = None
        self.requests = 0
        self._arrived = anyio.Event()
        # A str seed is hashed deterministically (unlike hash()), so the
        # instance id alone makes each instance's failures repeatable.
        self._random = random.Random(spec.instance if spec.seed is None else spec.seed)
        self._server: HttpServer | None = None

    @property
    def name(self) -> str:
        return self.spec.instance

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def as_instance(self) -> ServiceInstance:
        """Its registration, once started (the port is known then)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started: it has no port to register yet")
        return self.spec.as_instance(self.host, self.port)

    async def start(self) -> None:
        """Listen on a free port (then `port` is set). Needs anyio's asyncio backend."""
        server = HttpServer(self._handle)
        await server.start(self.host, 0)
        self._server = server
        self.port = server.bound[0][1]

    async def stop(self) -> None:
        """Stop listening and cut open connections, as a stopped process would."""
        server, self._server = self._server, None
        if server is not None:
            await server.close()

    async def wait_for_requests(self, count: int, *, within: float) -> bool:
        """Wait until `count` requests have arrived in all (for copies that
        the gateway sends in the background); False if not `within` seconds."""
        with anyio.move_on_after(within):
            while self.requests < count:
                await self._arrived.wait()
            return True
        return False

    def _status(self) -> int:
        if self.fail_with is not None:
            return self.fail_with
        # Draw only when failures are on, so turning them on later starts the
        # same sequence of draws as a run that had them from the start.
        if self.error_rate > 0 and self._random.random() < self.error_rate:
            return 500
        return 200

    async def _handle(self, request: Request, responder: Responder) -> None:
        self.requests += 1
        # Wake every waiter, and give the next ones a fresh event to wait on.
        arrived, self._arrived = self._arrived, anyio.Event()
        arrived.set()
        await request.body.read_all(_BODY_LIMIT)
        if self.latency > 0:
            await anyio.sleep(self.latency)
        status = self._status()
        spec = self.spec
        answer: dict[str, object] = {
            "service": spec.service,
            "instance": spec.instance,
            "version": spec.version,
            "path": request.path + (f"?{request.query}" if request.query else ""),
            "method": request.method,
        }
        if status >= 500:
            answer["error"] = "injected failure"
        await responder.send(status, json.dumps(answer).encode(), _JSON)
