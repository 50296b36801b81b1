"""`DemoService`: one demo service instance — its HTTP server, its app, and
its registration — with a graceful stop.

Its life:

1. `run` listens first (so the port is known, and ``/health`` answers before
   anyone is told about it), then registers through `ServiceRegistry`,
   retrying while no registry answers, then heartbeats; the registry
   re-registers by itself when a registry node forgot the instance.
2. `stop` deregisters first, so gateways stop picking it, then lets the
   requests in flight finish (up to `drain_timeout`), then closes; `run`
   returns. Cancelling `run` instead stops at once (it still deregisters).

In a task group::

    service = DemoService(settings, RegistryClient(bus))
    await task_group.start(service.run)     # serving and registered
    ...
    await service.stop()
"""

from __future__ import annotations

import anyio
import anyio.abc
import structlog
from structlog.typing import FilteringBoundLogger

from meshgate.discovery import RegistryBackend, ServiceRegistry
from services.demo_app import DemoApp, ServiceIdentity
from services.http_server import HttpServer, Request, Response
from services.knobs import Knobs
from services.settings import ServiceSettings


class DemoService:
    """See the module docstring. `backend` is where it registers: a
    `RegistryClient` on the bus in the cluster, any registry backend in a
    test."""

    def __init__(
        self,
        settings: ServiceSettings,
        backend: RegistryBackend,
        *,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self.settings = settings
        self._backend = backend
        self._log: FilteringBoundLogger = log or structlog.get_logger("meshgate.services")
        self._app: DemoApp | None = None
        self._server: HttpServer | None = None
        self._registry: ServiceRegistry | None = None
        self._scope: anyio.CancelScope | None = None
        self._stopping = False

    @property
    def is_listening(self) -> bool:
        """Whether `run` has bound its port (and `app`, `registry`, `port` are set)."""
        return self._app is not None

    @property
    def app(self) -> DemoApp:
        """The request handler: its `knobs`, counters and identity; set once
        `run` listens."""
        if self._app is None:
            raise RuntimeError("DemoService is not running yet: start `run` first")
        return self._app

    @property
    def registry(self) -> ServiceRegistry:
        """Its `ServiceRegistry`; set once `run` listens."""
        if self._registry is None:
            raise RuntimeError("DemoService is not running yet: start `run` first")
        return self._registry

    @property
    def port(self) -> int:
        """The port it serves on (the chosen one when configured with 0)."""
        if self._server is None:
            raise RuntimeError("DemoService is not running yet: start `run` first")
        return self._server.port

    @property
    def url(self) -> str:
        """Its base URL on this machine, e.g. ``http://127.0.0.1:3001``."""
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"  # listening everywhere: loopback reaches it
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve and stay registered until `stop` (or cancellation). For
        ``await task_group.start(service.run)``, which returns once it serves
        and the registry has stored it."""
        if self._stopping:
            task_status.started()
            return
        settings = self.settings
        with anyio.CancelScope() as scope:
            self._scope = scope
            async with anyio.create_task_group() as task_group:
                self._server = HttpServer(self._handle, host=settings.host, port=settings.port)
                await task_group.start(self._server.serve)
                port = self._server.port
                instance_id = settings.instance_id_at(port)
                self._app = self._make_app(instance_id)
                self._log = self._log.bind(service=settings.service, instance=instance_id)
                self._registry = ServiceRegistry(
                    settings.registration(port), self._backend, log=self._log
                )
                self._log.info(
                    "service.listening",
                    address=f"{settings.host}:{port}",
                    version=settings.version,
                    tags=list(settings.tags),
                    zone=settings.zone,
                )
                await task_group.start(self._registry.run)
                task_status.started()
        self._log.info("service.stopped")

    def _make_app(self, instance_id: str) -> DemoApp:
        settings = self.settings
        identity = ServiceIdentity(
            service=settings.service,
            instance=instance_id,
            version=settings.version,
            zone=settings.zone,
            tags=settings.tags,
        )
        knobs = Knobs(
            error_rate=settings.error_rate,
            latency=settings.latency,
            fail_health=settings.fail_health,
            # Seeded by the instance id by default, so each instance fails its
            # own repeatable share of requests, run after run.
            seed=settings.seed or instance_id,
        )
        return DemoApp(identity, knobs, allow_remote_knobs=settings.remote_knobs)

    async def stop(self) -> None:
        """Deregister, let the requests in flight finish (up to the
        settings' `drain_timeout`), then stop serving; `run` returns."""
        self._stopping = True
        try:
            if self._registry is not None:
                try:
                    await self._registry.deregister()
                except Exception as error:
                    # The lease runs out by itself; stopping goes on.
                    self._log.warning("service.deregister_failed", error=repr(error))
            if self._server is not None:
                self._log.info("service.draining", in_flight=self._server.in_flight)
                await self._server.drain(self.settings.drain_timeout)
        finally:
            if self._scope is not None:
                self._scope.cancel()

    async def _handle(self, request: Request) -> Response:
        if self._app is None:
            # Listening comes before the app exists (it needs the port);
            # nothing is registered yet, so only a stray client gets this.
            return Response.json(503, {"error": "starting"})
        return await self._app.handle(request)
