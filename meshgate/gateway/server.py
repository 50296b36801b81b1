"""`GatewayServer`: the gateway as users hold it — routes in (config,
decorated class, or at runtime), requests served, events and metrics out.

It owns the route table (copy-on-write: `add_route` and `remove_route` swap
it whole, so requests in flight keep the route they matched), the upstream
connection pools, the metrics and the events, and serves them on
`HttpServer`s. The process around it (bus, presence, signals) is
`gateway_node`'s; embedded in a program, `serve()` is all it takes:

    gateway = GatewayServer.from_config({"routes": [
        {"path": "/api/users/**", "upstreams": ["127.0.0.1:3001"], "strip_prefix": "/api/users"},
    ]})
    anyio.run(gateway.serve)      # until cancelled (Ctrl-C)

The HTTP path runs on asyncio (uvloop where installed), so `serve` needs
anyio's asyncio backend.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import msgspec
import sniffio
import structlog

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.backends.protocol import RegistryBackend
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.gateway.access_log import AccessLog
from meshgate.gateway.admin_api import AdminApi
from meshgate.gateway.canary_control import CanaryControl
from meshgate.gateway.canary_engine import CanaryEngine
from meshgate.gateway.canary_status import CanaryEventInfo
from meshgate.gateway.config import GatewayConfig, parse_listen_address
from meshgate.gateway.config_file import gateway_config_from_mapping, route_config_from_mapping
from meshgate.gateway.cors import CorsPolicy
from meshgate.gateway.decorators import gateway_config_from_class
from meshgate.gateway.events import EventEmitter, EventHandler
from meshgate.gateway.gateway_metrics import GatewayMetrics
from meshgate.gateway.http.limits import ServerLimits
from meshgate.gateway.http.server import HttpServer
from meshgate.gateway.http.upstream import UpstreamPools
from meshgate.gateway.matcher import RouteSpec, RouteTable
from meshgate.gateway.proxy_engine import ProxyEngine
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.route_runtime import RouteRuntime, RuntimeContext, build_runtime
from meshgate.gateway.upstream_mirror_call import send_mirror_request
from meshgate.resilience.breaker_core import CircuitState
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.validation import positive_number

log = structlog.get_logger("meshgate.gateway")

_CIRCUIT_EVENTS = {
    CircuitState.OPEN: "circuit:open",
    CircuitState.FORCED_OPEN: "circuit:open",
    CircuitState.CLOSED: "circuit:close",
    CircuitState.DISABLED: "circuit:close",
    CircuitState.HALF_OPEN: "circuit:half-open",
}

CircuitHook = Callable[[RouteRuntime, CircuitState, CircuitState], None]
"""Told of every transition of a route's breaker (the cluster layer publishes them)."""


class GatewayServer:
    """An API gateway: routes, resilience per route, versions, canaries,
    mirroring, metrics and events, served over HTTP.

    `backend` is where discovered services are looked up: any registry
    backend (or the bus's `RegistryClient`), or a ready `DiscoveryClient`;
    None when every route has fixed `upstreams`.

    >>> gateway = GatewayServer.from_config({"routes": [
    ...     {"path": "/api/users/**", "upstreams": ["127.0.0.1:3001"]}]})
    >>> [route.name for route in gateway.routes]
    ['/api/users/**']
    """

    def __init__(
        self,
        config: GatewayConfig,
        backend: RegistryBackend | DiscoveryClient | None = None,
        *,
        clock: Clock = monotonic,
    ) -> None:
        self.config = config
        if isinstance(backend, DiscoveryClient) or backend is None:
            self.discovery = backend
        else:
            self.discovery = DiscoveryClient(backend, **config.discovery.options())
        self._clock = clock
        self._events = EventEmitter()
        self._metrics = GatewayMetrics(clock=clock)
        self._pools = UpstreamPools()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._circuit_hooks: list[CircuitHook] = []
        self._canaries_running = False
        self._canary_interval = 1.0
        self.canary_control: CanaryControl | None = None
        """Where the admin API sends canary actions first (a node sets it to ask
        the canary controller, so the whole cluster follows); None, or a hook
        that returns None, leaves them to this replica's engines."""
        self._context = RuntimeContext(
            discovery=self.discovery,
            send_mirror=lambda *args: send_mirror_request(self._pools, *args),
            zone=config.discovery.zone,
            clock=clock,
            on_circuit_change=self._circuit_changed,
            on_canary_event=self._canary_changed,
            canary_clock=clock,
        )
        table: RouteTable[RouteRuntime] = RouteTable.build(
            self._spec(self._runtime(route)) for route in config.routes
        )
        middleware = config.middleware
        self._access_log = AccessLog(middleware.access_log) if middleware.logging else None
        cors_config = config.middleware.cors_config
        self.engine = ProxyEngine(
            table,
            self._pools,
            spawn=self._spawn,
            metrics=self._metrics if config.metrics.enabled else None,
            cors=None if cors_config is None else CorsPolicy(**cors_config.options()),
            access_log=self._access_log,
            clock=clock,
        )
        self._http: HttpServer | None = None
        self._admin_http: HttpServer | None = None
        self._draining = False
        if self.discovery is not None:
            self.discovery.on("instance:up", self._instance_event("instance:up"))
            self.discovery.on("instance:down", self._instance_event("instance:down"))

    # -- building --------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig | Mapping[str, Any],
        backend: RegistryBackend | DiscoveryClient | None = None,
        **options: Any,
    ) -> GatewayServer:
        """A gateway from its config (a `GatewayConfig` or the same as a
        mapping); a wrong key or type raises `ConfigError` naming its path."""
        if not isinstance(config, GatewayConfig):
            config = gateway_config_from_mapping(config)
        return cls(config, backend, **options)

    @classmethod
    def from_class(
        cls,
        gateway_class: type,
        backend: RegistryBackend | DiscoveryClient | None = None,
        **options: Any,
    ) -> GatewayServer:
        """A gateway from a class decorated with `@gateway` and route decorators."""
        return cls(gateway_config_from_class(gateway_class), backend, **options)

    # -- routes ----------------------------------------------------------------

    @property
    def routes(self) -> list[RouteConfig]:
        return [entry.route.config for entry in self.engine.routes]

    def route_runtime(self, name: str) -> RouteRuntime | None:
        entry = self.engine.routes.get(name)
        return None if entry is None else entry.route

    def runtimes(self) -> list[RouteRuntime]:
        return [entry.route for entry in self.engine.routes]

    def add_route(
        self, route: RouteConfig | Mapping[str, Any], *, replace: bool = False
    ) -> RouteConfig:
        """Serve `route` from the next request on; returns it as checked.

        A route whose name is taken raises `ValueError` unless `replace`
        (then it takes the old one's place: the admin API's PUT).
        """
        if not isinstance(route, RouteConfig):
            route = route_config_from_mapping(route)
        policies = self.config.policies_for(route)
        runtime = build_runtime(route, policies, self._context)
        old = self.engine.routes.get(route.name)
        self.engine.routes = self.engine.routes.with_route(
            route.path,
            runtime,
            name=route.name,
            methods=route.methods,
            host=route.host,
            replace=replace,
        )
        kind = "changed" if old is not None else "added"
        log.info("route.added", route=route.name, change=kind)
        self._events.emit("route:added", {"route": route.name, "change": kind})
        return route

    def remove_route(self, name: str) -> bool:
        """Stop serving the route called `name` (requests in flight finish);
        False if there is none."""
        if name not in self.engine.routes:
            return False
        self.engine.routes = self.engine.routes.without_route(name)
        self._metrics.forget(name)
        log.info("route.removed", route=name)
        self._events.emit("route:removed", {"route": name})
        return True

    # -- events and metrics ------------------------------------------------------

    def on(self, event: str, handler: EventHandler) -> None:
        """Call `handler(details)` on `event` (see `meshgate.gateway.events`)."""
        self._events.on(event, handler)

    def off(self, event: str, handler: EventHandler) -> None:
        self._events.off(event, handler)

    def get_metrics(self) -> GatewayMetrics:
        """Per route and version: ``get_metrics().get_snapshot().aggregated.total_calls``."""
        return self._metrics

    def add_circuit_hook(self, hook: CircuitHook) -> None:
        self._circuit_hooks.append(hook)

    @property
    def pools(self) -> UpstreamPools:
        return self._pools

    @property
    def events(self) -> EventEmitter:
        return self._events

    # -- canaries ----------------------------------------------------------------

    def start_canaries(self, *, interval: float = 1.0) -> None:
        """Evaluate every canary route in this process (embedded mode, when no
        canary controller runs): steps, promotion and rollback follow the
        metrics this gateway sees. Takes effect when `serve` runs, or at once
        if it already does.

        `interval` is the seconds between evaluations; a rollout still steps
        no faster than its `step_interval`, so a short one only makes the
        steps land closer to when they fall due (and rollbacks sooner).
        """
        self._canary_interval = positive_number("interval", interval)
        if self._canaries_running:
            return  # the running loop reads the new interval on its next turn
        self._canaries_running = True
        if self._task_group is not None:
            self._task_group.start_soon(self._evaluate_canaries)

    def canaries(self) -> dict[str, CanaryEngine]:
        return {r.name: r.canary for r in self.runtimes() if r.canary is not None}

    async def _evaluate_canaries(self) -> None:
        while True:
            for engine in self.canaries().values():
                if engine.state == "active":
                    engine.evaluate()
            await anyio.sleep(self._canary_interval)

    # -- serving -----------------------------------------------------------------

    async def serve(
        self,
        *,
        listen: str | None = None,
        admin_listen: str | None = None,
        ready: Callable[[], bool] | None = None,
        task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled, then drain: stop accepting, let requests in
        flight finish for up to `drain_timeout`, close upstream connections.

        `task_status.started` gets the addresses listened on (port 0 in
        `listen` picks a free one), for `await task_group.start(gateway.serve)`.

        The admin API (`AdminApi`) listens on `admin_listen`, or on the
        config's `admin_listen` when neither address is given here; `ready`
        joins its `/readyz` answer (gateway_node reports the bus there).
        """
        if sniffio.current_async_library() != "asyncio":
            raise RuntimeError("GatewayServer.serve needs anyio's asyncio backend")
        host, port = parse_listen_address(listen or self.config.listen, option="listen")
        limits = _server_limits(self.config)
        http = HttpServer(self.engine.handle, limits=limits)
        admin: HttpServer | None = None
        if admin_listen is not None or (listen is None and self.config.admin_listen):
            admin_host, admin_port = parse_listen_address(
                admin_listen or self.config.admin_listen, option="admin_listen"
            )
            api = AdminApi(self, token=self.config.admin_token, clock=self._clock, ready=ready)
            admin = HttpServer(api.handle)
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                self._events.attach(tg)
                # Before the first await, so that a `start_canaries()` made
                # while the server starts cannot start a second loop.
                if self._canaries_running:
                    tg.start_soon(self._evaluate_canaries)
                await http.start(host, port)
                self._http = http
                if admin is not None:
                    await admin.start(admin_host, admin_port)
                    self._admin_http = admin
                log.info("gateway.serving", addresses=http.bound, routes=len(self.engine.routes))
                task_status.started(http.bound)
                await anyio.sleep_forever()
        finally:
            self._task_group = None
            self._events.attach(None)
            self._draining = True
            with anyio.CancelScope(shield=True):
                await http.drain(self.config.drain_timeout_seconds)
                if admin is not None:
                    await admin.close()
                    self._admin_http = None
                await self._pools.close()
                if self._access_log is not None:
                    self._access_log.flush()
            self._http = None
            log.info("gateway.stopped")

    @asynccontextmanager
    async def running(self, *, listen: str | None = None) -> Any:
        """Serve in the background for the `async with` body; yields the
        addresses listened on.

            async with gateway.running(listen="127.0.0.1:0") as [(host, port)]:
                ...
        """
        async with anyio.create_task_group() as tg:
            addresses = await tg.start(self._serve_kw, listen)
            try:
                yield addresses
            finally:
                tg.cancel_scope.cancel()

    async def _serve_kw(
        self,
        listen: str | None,
        *,
        task_status: anyio.abc.TaskStatus[list[tuple[str, int]]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        await self.serve(listen=listen, task_status=task_status)

    @property
    def http_server(self) -> HttpServer | None:
        return self._http

    @property
    def admin_server(self) -> HttpServer | None:
        return self._admin_http

    @property
    def is_draining(self) -> bool:
        """True once `serve` is stopping: `/readyz` then says not ready."""
        return self._draining

    @property
    def clock(self) -> Clock:
        """The monotonic clock breakers, limits and ejections are measured on."""
        return self._clock

    # -- internals ---------------------------------------------------------------

    def _runtime(self, route: RouteConfig) -> RouteRuntime:
        return build_runtime(route, self.config.policies_for(route), self._context)

    @staticmethod
    def _spec(runtime: RouteRuntime) -> RouteSpec[RouteRuntime]:
        route = runtime.config
        return RouteSpec(route.path, runtime, route.name, route.methods, route.host)

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        tg = self._task_group
        if tg is not None:
            tg.start_soon(_run, fn)

    def _canary_changed(self, runtime: RouteRuntime, info: CanaryEventInfo) -> None:
        details: dict[str, Any] = msgspec.to_builtins(info)
        event = details.pop("event")
        log.info(event.replace(":", "."), **details)
        self._events.emit(event, {"event": event, **details})

    def _circuit_changed(
        self, runtime: RouteRuntime, from_state: CircuitState, to_state: CircuitState
    ) -> None:
        breaker = runtime.breaker
        retry_in = None
        if breaker is not None and to_state is CircuitState.OPEN:
            retry_in = round(max(0.0, breaker.open_until - self._clock()), 3)
        log.info(
            "circuit.changed",
            route=runtime.name,
            from_state=from_state.value,
            to_state=to_state.value,
            reset_in=retry_in,
        )
        event = _CIRCUIT_EVENTS.get(to_state)
        if event is not None:
            self._events.emit(
                event,
                {
                    "route": runtime.name,
                    "from": from_state.value,
                    "to": to_state.value,
                    "reset_in": retry_in,
                    "at": time.time(),
                },
            )
        for hook in self._circuit_hooks:
            hook(runtime, from_state, to_state)

    def _instance_event(self, event: str) -> Callable[[ServiceInstance], None]:
        def emit(instance: ServiceInstance) -> None:
            for runtime in self.runtimes():
                if runtime.outliers is not None and event == "instance:down":
                    runtime.outliers.forget(instance.id)
            self._events.emit(
                event,
                {
                    "service": instance.name,
                    "instance": instance.id,
                    "address": instance.address,
                    "version": instance.version,
                    "status": instance.status.value,
                },
            )

        return emit


async def _run(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()


def _server_limits(config: GatewayConfig) -> ServerLimits:
    return config.limits.server_limits()
