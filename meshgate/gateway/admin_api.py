"""The admin HTTP API of one gateway replica: health, Prometheus metrics, and
the routes, instances, circuits and canaries an operator reads and changes.

It is a handler for `HttpServer`, served on its own port (``admin_listen``),
never on the port that proxies traffic:

    admin = AdminApi(gateway, token=gateway.config.admin_token)
    server = HttpServer(admin.handle)
    await server.start("127.0.0.1", 9090)

Endpoints (JSON unless noted; errors are the gateway's JSON error body):

| method | path | does |
|---|---|---|
| GET | `/healthz` | 200 `{"status": "ok"}` while the process runs |
| GET | `/readyz` | 200 when the main port serves and `ready()` agrees, else 503 and why |
| GET | `/metrics` | Prometheus text (see `gateway_exposition`) |
| GET | `/admin/metrics` | `get_metrics().get_snapshot()` |
| GET | `/admin/routes` | every route's config, in match order |
| POST | `/admin/routes` | add the route in the body (201; 409 if its name is taken) |
| GET | `/admin/route?name=N` | route N's config |
| PUT | `/admin/route?name=N` | replace route N, or add it (200 replaced, 201 added) |
| DELETE | `/admin/route?name=N` | stop serving route N |
| GET | `/admin/instances[?route=N]` | instances each route sees; ejected ones with seconds left |
| GET | `/admin/circuits[?route=N]` | each breaker's state, failure rate and retry-after |
| POST | `/admin/circuits?route=N&action=A` | A: `open` (forced), `close`/`reset`, `disable` |
| GET | `/admin/canaries[?route=N]` | each canary rollout's status |
| POST | `/admin/canaries?route=N&action=A` | A: `promote`, `rollback`, `pause`, `resume` |

A canary action goes first to the gateway's `canary_control` hook (a node
sets it to ask the cluster's canary controller, so every replica follows);
when no controller answers, this replica's engine acts alone. The reply's
``acted_by`` says which (``"controller"`` or ``"replica"``).

Route names are often paths (``/api/users/**``), and the HTTP layer refuses an
encoded ``/`` in a path, so a route is always named in the query string,
percent-encoded as usual (``?name=%2Fapi%2Fusers%2F%2A%2A``; ``+`` means a
space, so send a literal plus as ``%2B``). The collection endpoints take the
same name as an optional `route` filter. HEAD works wherever GET does.

Writes (POST, PUT, DELETE) need ``Authorization: Bearer <admin_token>``, or,
without a token, come from loopback; see `admin_auth`. Request bodies are
limited to `MAX_BODY_BYTES` (413 past it).

`clock` must be the gateway's clock: breaker deadlines and ejections are
measured on it.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio
import msgspec
import structlog

from meshgate.bus.errors import BusError
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import ControlAction
from meshgate.gateway.admin_auth import READ_METHODS, check_write_access
from meshgate.gateway.canary_control import ActedBy, ControlRefusal, controller_outcome
from meshgate.gateway.canary_engine import CanaryEngine, RolloutFinishedError
from meshgate.gateway.canary_status import CanaryStatus, RolloutState
from meshgate.gateway.config_file import ConfigError, route_config_from_mapping
from meshgate.gateway.gateway_exposition import gateway_exposition
from meshgate.gateway.http.request import Request, Responder
from meshgate.gateway.http.request_errors import ClientDisconnectedError, RequestBodyError
from meshgate.gateway.matcher import DuplicateRouteError
from meshgate.gateway.prometheus import CONTENT_TYPE
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.route_runtime import RouteRuntime
from meshgate.resilience.breaker_core import BreakerCore, CircuitState
from meshgate.resilience.clock import Clock

if TYPE_CHECKING:  # the server starts the admin API: a runtime import would be circular
    from meshgate.gateway.server import GatewayServer

log = structlog.get_logger("meshgate.admin")

MAX_BODY_BYTES = 1 << 20
"""The largest request body the admin API reads (a route config is a few KiB)."""

INSTANCE_LOOKUP_TIMEOUT = 2.0
"""Seconds to wait for one route's instance list (a discovery cache miss asks
the registry); past it the route reports an error instead of stalling the reply."""

_JSON = [(b"Content-Type", b"application/json")]
_PROMETHEUS = [(b"Content-Type", CONTENT_TYPE.encode())]
_encode = msgspec.json.Encoder().encode


# -- replies -----------------------------------------------------------------------


class InstanceView(msgspec.Struct, frozen=True, kw_only=True):
    """One instance as a route sees it; `ejected_seconds_left` is set while
    outlier detection keeps it out of rotation."""

    id: str
    address: str
    version: str | None
    zone: str | None
    status: InstanceStatus
    ejected: bool
    ejected_seconds_left: float | None


class RouteInstances(msgspec.Struct, frozen=True, kw_only=True):
    """A route's instances; `error` says why they could not be listed."""

    route: str
    source: str
    instances: list[InstanceView]
    error: str | None = None


class CircuitView(msgspec.Struct, frozen=True, kw_only=True):
    """A route's breaker: its state, its window's totals (rates in percent)
    and the seconds until a refused request could be let through."""

    route: str
    state: CircuitState
    failure_rate: float
    slow_call_rate: float
    calls: int
    failures: int
    rejected: int
    reopens: int
    retry_after: float


class CircuitActionReply(msgspec.Struct, frozen=True, kw_only=True):
    action: str
    changed: bool
    circuit: CircuitView


class CanaryActionReply(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a canary action. `acted_by` says who applied it: the
    cluster's ``controller`` (every replica follows its broadcast) or this
    ``replica``'s engine alone (no controller answered). `state`, the weights
    and `step` are the rollout after the action as the actor reports it;
    `canary` is this replica's engine, which after a controller's action
    catches up when the broadcast arrives (a moment later)."""

    action: str
    changed: bool
    acted_by: ActedBy
    state: RolloutState
    canary_weight: float
    stable_weight: float
    step: int
    canary: CanaryStatus


class AdminError(Exception):
    """An answer other than success: the status, the error code and a message
    an operator can act on."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = list(headers)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def _json(value: object, status: int = 200) -> _Reply:
    return _Reply(status, _encode(value), _JSON)


Endpoint = Callable[[Request], Awaitable[_Reply]]

_CIRCUIT_ACTIONS: dict[str, Callable[[BreakerCore], None]] = {
    "open": BreakerCore.force_open,
    "close": BreakerCore.reset,
    "reset": BreakerCore.reset,
    "disable": BreakerCore.disable,
}

_CANARY_ACTIONS: dict[str, Callable[[CanaryEngine], bool]] = {
    "promote": CanaryEngine.promote,
    "rollback": CanaryEngine.rollback,
    "pause": CanaryEngine.pause,
    "resume": CanaryEngine.resume,
}


# -- the API -----------------------------------------------------------------------


class AdminApi:
    """The admin endpoints of `gateway` (see the module docstring).

    `token` is the bearer token writes need (None: see `loopback_only_writes`
    in `admin_auth`); `ready`, if given, is asked by ``/readyz`` as well as
    whether the main port is serving (a node passes "connected to the bus").

    >>> from meshgate.gateway.server import GatewayServer
    >>> gateway = GatewayServer.from_config({"routes": [
    ...     {"path": "/api/**", "upstreams": ["127.0.0.1:9001"]}]})
    >>> admin = AdminApi(gateway, token="s3cret")
    >>> sorted(admin.endpoints["/admin/route"])
    ['DELETE', 'GET', 'PUT']
    """

    def __init__(
        self,
        gateway: GatewayServer,
        *,
        token: str | None,
        loopback_only_writes: bool = True,
        clock: Clock = time.monotonic,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self._gateway = gateway
        self._token = token
        self._loopback_only_writes = loopback_only_writes
        self._clock = clock
        self._ready = ready
        if token is None and not loopback_only_writes:
            log.warning(
                "admin.writes_unprotected",
                hint="anyone who reaches the admin port may change routes; set admin_token",
            )
        self.endpoints: dict[str, dict[str, Endpoint]] = {
            "/healthz": {"GET": self._healthz},
            "/readyz": {"GET": self._readyz},
            "/metrics": {"GET": self._prometheus},
            "/admin/metrics": {"GET": self._metrics_snapshot},
            "/admin/routes": {"GET": self._list_routes, "POST": self._add_route},
            "/admin/route": {
                "GET": self._get_route,
                "PUT": self._put_route,
                "DELETE": self._delete_route,
            },
            "/admin/instances": {"GET": self._instances},
            "/admin/circuits": {"GET": self._circuits, "POST": self._circuit_action},
            "/admin/canaries": {"GET": self._canaries, "POST": self._canary_action},
        }

    async def handle(self, request: Request, responder: Responder) -> None:
        """The `HttpServer` handler: route, check access, answer."""
        try:
            reply = await self._dispatch(request)
        except AdminError as error:
            await responder.send_error(
                error.status, error.error, error.message, headers=error.headers
            )
            return
        await responder.send(reply.status, reply.body, reply.headers)

    async def _dispatch(self, request: Request) -> _Reply:
        # "/admin/routes/" is "/admin/routes": a trailing slash names nothing.
        path = request.path.rstrip("/") or "/"
        methods = self.endpoints.get(path)
        if methods is None:
            raise AdminError(
                404,
                "not_found",
                f"no admin endpoint at {path!r}; the endpoints are {', '.join(self.endpoints)}",
            )
        method = "GET" if request.method == "HEAD" else request.method
        endpoint = methods.get(method)
        if endpoint is None:
            allowed = _allowed_methods(methods)
            raise AdminError(
                405,
                "method_not_allowed",
                f"{path} takes {allowed}, not {request.method}",
                [(b"Allow", allowed.encode())],
            )
        if method not in READ_METHODS:
            self._check_write_access(request, path)
        return await endpoint(request)

    def _check_write_access(self, request: Request, path: str) -> None:
        refusal = check_write_access(
            request.headers.get("authorization"),
            request.client_host,
            token=self._token,
            loopback_only_writes=self._loopback_only_writes,
        )
        if refusal is not None:
            log.warning(
                "admin.write_refused",
                method=request.method,
                path=path,
                client=request.client_host,
                status=refusal.status,
            )
            raise AdminError(refusal.status, refusal.error, refusal.message, refusal.headers)

    # -- health --------------------------------------------------------------------

    async def _healthz(self, request: Request) -> _Reply:
        return _json({"status": "ok"})

    async def _readyz(self, request: Request) -> _Reply:
        if self._gateway.http_server is None:
            raise AdminError(
                503, "not_ready", "the gateway's main port is not serving (starting or stopped)"
            )
        if self._gateway.is_draining:
            raise AdminError(503, "not_ready", "the gateway is draining: it is stopping")
        if self._ready is not None and not self._ready():
            raise AdminError(503, "not_ready", "the gateway node reports it is not ready yet")
        return _json({"status": "ready"})

    # -- metrics -------------------------------------------------------------------

    async def _prometheus(self, request: Request) -> _Reply:
        seen = await self._instances_of(self._gateway.runtimes())
        instances = {view.route: found for view, found in seen if found is not None}
        text = gateway_exposition(self._gateway, now=self._clock(), instances=instances)
        return _Reply(200, text.render(), _PROMETHEUS)

    async def _metrics_snapshot(self, request: Request) -> _Reply:
        return _json(self._gateway.get_metrics().get_snapshot())

    # -- routes --------------------------------------------------------------------

    async def _list_routes(self, request: Request) -> _Reply:
        return _json({"routes": self._gateway.routes})

    async def _get_route(self, request: Request) -> _Reply:
        name = _required(_query(request), "name")
        return _json(self._runtime(name).config)

    async def _add_route(self, request: Request) -> _Reply:
        route = _route_from_body(await _json_object(request))
        if self._gateway.route_runtime(route.name) is not None:
            raise AdminError(
                409,
                "route_exists",
                f"a route named {route.name!r} exists already; "
                "PUT /admin/route?name=... replaces it",
            )
        added = self._install(route, replace=False)
        log.info("admin.route_added", route=added.name, client=request.client_host)
        return _json(added, 201)

    async def _put_route(self, request: Request) -> _Reply:
        name = _required(_query(request), "name")
        mapping = await _json_object(request)
        # The query names the route; a body without a name takes it, and a
        # body with another one is a rename, which PUT does not do.
        body_name = mapping.setdefault("name", name)
        if body_name != name:
            raise AdminError(
                400,
                "name_mismatch",
                f"the body names route {body_name!r} but the query names {name!r}; "
                "to rename a route, DELETE it and POST the new one",
            )
        route = _route_from_body(mapping)
        existed = self._gateway.route_runtime(name) is not None
        replaced = self._install(route, replace=True)
        log.info(
            "admin.route_replaced" if existed else "admin.route_added",
            route=name,
            client=request.client_host,
        )
        return _json(replaced, 200 if existed else 201)

    async def _delete_route(self, request: Request) -> _Reply:
        name = _required(_query(request), "name")
        if not self._gateway.remove_route(name):
            raise _no_route(name)
        log.info("admin.route_removed", route=name, client=request.client_host)
        return _json({"removed": name})

    def _install(self, route: RouteConfig, *, replace: bool) -> RouteConfig:
        try:
            return self._gateway.add_route(route, replace=replace)
        except DuplicateRouteError as exc:
            raise AdminError(409, "route_conflict", str(exc)) from None
        except ValueError as exc:
            # e.g. a discovered service on a gateway without a registry
            raise AdminError(400, "invalid_route", str(exc)) from None

    # -- instances -----------------------------------------------------------------

    async def _instances(self, request: Request) -> _Reply:
        seen = await self._instances_of(self._selected(request))
        return _json({"routes": [view for view, _ in seen]})

    async def _instances_of(
        self, runtimes: list[RouteRuntime]
    ) -> list[tuple[RouteInstances, Sequence[ServiceInstance] | None]]:
        """Each route's instances, looked up side by side so that one slow
        registry lookup costs one timeout, not one per route."""
        found: list[tuple[RouteInstances, Sequence[ServiceInstance] | None] | None]
        found = [None] * len(runtimes)

        async def look_up(index: int, runtime: RouteRuntime) -> None:
            found[index] = await self._route_instances(runtime)

        async with anyio.create_task_group() as tg:
            for index, runtime in enumerate(runtimes):
                tg.start_soon(look_up, index, runtime)
        return [entry for entry in found if entry is not None]

    async def _route_instances(
        self, runtime: RouteRuntime
    ) -> tuple[RouteInstances, Sequence[ServiceInstance] | None]:
        source = runtime.source.name
        try:
            with anyio.fail_after(INSTANCE_LOOKUP_TIMEOUT):
                instances = await runtime.source.instances()
        except TimeoutError:
            message = f"no instance list within {INSTANCE_LOOKUP_TIMEOUT:g}s"
            log.warning("admin.instances_unavailable", route=runtime.name, error=message)
            return RouteInstances(
                route=runtime.name, source=source, instances=[], error=message
            ), None
        except Exception as exc:  # the registry's failure is this route's answer, not a 500
            message = str(exc) or type(exc).__name__
            log.warning("admin.instances_unavailable", route=runtime.name, error=message)
            return RouteInstances(
                route=runtime.name, source=source, instances=[], error=message
            ), None
        outliers = runtime.outliers
        ejected = {} if outliers is None else outliers.ejected(self._clock())
        views = [_instance_view(instance, ejected.get(instance.id)) for instance in instances]
        return RouteInstances(route=runtime.name, source=source, instances=views), instances

    # -- circuits ------------------------------------------------------------------

    async def _circuits(self, request: Request) -> _Reply:
        now = self._clock()
        views = [
            _circuit_view(runtime.name, runtime.breaker, now)
            for runtime in self._selected(request)
            if runtime.breaker is not None
        ]
        return _json({"circuits": views})

    async def _circuit_action(self, request: Request) -> _Reply:
        query = _query(request)
        name = _required(query, "route")
        action = _choice(query, "action", _CIRCUIT_ACTIONS)
        breaker = self._runtime(name).breaker
        if breaker is None:
            raise AdminError(
                404,
                "no_circuit_breaker",
                f"route {name!r} has no circuit breaker; give it a circuit_breaker config",
            )
        before = breaker.state
        _CIRCUIT_ACTIONS[action](breaker)
        log.info(
            "admin.circuit_set",
            route=name,
            action=action,
            from_state=before.value,
            to_state=breaker.state.value,
            client=request.client_host,
        )
        view = _circuit_view(name, breaker, self._clock())
        return _json(
            CircuitActionReply(action=action, changed=before is not breaker.state, circuit=view)
        )

    # -- canaries ------------------------------------------------------------------

    async def _canaries(self, request: Request) -> _Reply:
        statuses = [
            runtime.canary.get_status()
            for runtime in self._selected(request)
            if runtime.canary is not None
        ]
        return _json({"canaries": statuses})

    async def _canary_action(self, request: Request) -> _Reply:
        query = _query(request)
        name = _required(query, "route")
        action = _choice(query, "action", _CANARY_ACTIONS)
        engine = self._runtime(name).canary
        if engine is None:
            raise AdminError(
                404, "no_canary", f"route {name!r} has no canary rollout; give it a canary config"
            )
        by_controller = await self._controller_action(name, action, engine, request.client_host)
        if by_controller is not None:
            return _json(by_controller)
        try:
            changed = _CANARY_ACTIONS[action](engine)
        except RolloutFinishedError as exc:
            raise AdminError(409, "rollout_finished", str(exc)) from None
        log.info(
            "admin.canary_controlled",
            route=name,
            action=action,
            changed=changed,
            state=engine.state,
            acted_by="replica",
            client=request.client_host,
        )
        status = engine.get_status()
        return _json(
            CanaryActionReply(
                action=action,
                changed=changed,
                acted_by="replica",
                state=status.state,
                canary_weight=status.canary_weight,
                stable_weight=status.stable_weight,
                step=status.current_step,
                canary=status,
            )
        )

    async def _controller_action(
        self, name: str, action: str, engine: CanaryEngine, client: str
    ) -> CanaryActionReply | None:
        """Have the cluster's controller apply `action`; None when there is no
        hook or no controller answered (the replica acts then)."""
        control = self._gateway.canary_control
        if control is None:
            return None
        try:
            # `_choice` checked it against `_CANARY_ACTIONS`, whose keys are the actions.
            reply = await control(name, cast(ControlAction, action))
        except BusError as exc:
            raise AdminError(
                502, "controller_error", f"the canary controller could not be asked: {exc}"
            ) from None
        if reply is None:
            return None
        outcome = controller_outcome(reply)
        if isinstance(outcome, ControlRefusal):
            log.warning("admin.canary_refused", route=name, action=action, error=outcome.message)
            raise AdminError(outcome.status, outcome.error, outcome.message)
        log.info(
            "admin.canary_controlled",
            route=name,
            action=action,
            changed=outcome.changed,
            state=outcome.state,
            acted_by="controller",
            client=client,
        )
        return CanaryActionReply(
            action=action,
            changed=outcome.changed,
            acted_by="controller",
            state=outcome.state,
            canary_weight=outcome.canary_weight,
            stable_weight=outcome.stable_weight,
            step=outcome.step,
            canary=engine.get_status(),
        )

    # -- lookups -------------------------------------------------------------------

    def _runtime(self, name: str) -> RouteRuntime:
        runtime = self._gateway.route_runtime(name)
        if runtime is None:
            raise _no_route(name)
        return runtime

    def _selected(self, request: Request) -> list[RouteRuntime]:
        """Every route, or the one the optional `route` parameter names."""
        name = _optional(_query(request), "route")
        if name is None:
            return self._gateway.runtimes()
        return [self._runtime(name)]


# -- request parsing ---------------------------------------------------------------


def _query(request: Request) -> dict[str, list[str]]:
    try:
        return urllib.parse.parse_qs(
            request.query, keep_blank_values=True, strict_parsing=False, errors="strict"
        )
    except UnicodeDecodeError:
        raise AdminError(400, "bad_query", "the query string is not UTF-8") from None


def _optional(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    if values is None:
        return None
    if len(values) > 1:
        raise AdminError(400, "bad_query", f"{key} is given {len(values)} times; give it once")
    if not values[0]:
        raise AdminError(400, "bad_query", f"{key} is empty")
    return values[0]


def _required(query: dict[str, list[str]], key: str) -> str:
    value = _optional(query, key)
    if value is None:
        raise AdminError(400, "bad_query", f"the query parameter {key} is missing")
    return value


def _choice(query: dict[str, list[str]], key: str, options: dict[str, Any]) -> str:
    value = _required(query, key)
    if value not in options:
        raise AdminError(
            400,
            "bad_query",
            f"{key}={value!r} is not allowed: expected one of {', '.join(options)}",
        )
    return value


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        raw = await request.body.read_all(limit=MAX_BODY_BYTES)
    except ClientDisconnectedError:
        raise
    except RequestBodyError as exc:
        raise AdminError(exc.status, exc.error, str(exc)) from None
    if not raw.strip():
        raise AdminError(400, "bad_json", "the request body is empty: expected a JSON object")
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise AdminError(400, "bad_json", f"the request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise AdminError(
            400, "bad_json", f"expected a JSON object (a route), got {type(value).__name__}"
        )
    return value


def _route_from_body(mapping: dict[str, Any]) -> RouteConfig:
    try:
        return route_config_from_mapping(mapping, source="route")
    except ConfigError as exc:
        raise AdminError(400, "invalid_route", str(exc)) from None


# -- views -------------------------------------------------------------------------


def _instance_view(instance: ServiceInstance, ejected_for: float | None) -> InstanceView:
    return InstanceView(
        id=instance.id,
        address=instance.address,
        version=instance.version,
        zone=instance.zone,
        status=instance.status,
        ejected=ejected_for is not None,
        ejected_seconds_left=None if ejected_for is None else round(ejected_for, 3),
    )


def _circuit_view(route: str, breaker: BreakerCore, now: float) -> CircuitView:
    numbers = breaker.metrics(now)
    return CircuitView(
        route=route,
        state=numbers.state,
        failure_rate=numbers.failure_rate,
        slow_call_rate=numbers.slow_call_rate,
        calls=numbers.calls,
        failures=numbers.failures,
        rejected=numbers.rejected,
        reopens=numbers.reopens,
        retry_after=round(breaker.retry_after(now), 3),
    )


def _allowed_methods(methods: dict[str, Endpoint]) -> str:
    allowed = list(methods)
    if "GET" in methods:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return ", ".join(allowed)


def _no_route(name: str) -> AdminError:
    return AdminError(
        404, "no_route", f"there is no route named {name!r}; GET /admin/routes lists them"
    )


__all__ = [
    "INSTANCE_LOOKUP_TIMEOUT",
    "MAX_BODY_BYTES",
    "AdminApi",
    "AdminError",
    "CanaryActionReply",
    "CircuitActionReply",
    "CircuitView",
    "InstanceView",
    "RouteInstances",
]
