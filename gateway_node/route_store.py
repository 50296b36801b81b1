"""`RouteStore`: the routes added, changed or removed at runtime, kept in a
JetStream KV bucket so that every replica applies them and a restarted one
finds them again.

Layout. Bucket `Subjects.routes_bucket` (``MESH_ROUTES`` for the default
prefix), one key per route: the route's name through `encode_token` (so a
path such as ``/api/users/**`` is one key), its value the `RouteConfig` as
JSON, the same document `GatewayServer.add_route` and the admin API take. A
delete (or purge) of the key means "removed": it stays as the key's latest
entry, so a replica that starts later removes the route from its file config
too. An operator may write the bucket directly (``nats kv put MESH_ROUTES
/api/x '{"path": ...}'``); replicas apply it like any other change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from meshgate.bus.connection import KV_OPERATION_HEADER, MARKER_HEADER, Bus
from meshgate.bus.subjects import decode_token, encode_token
from meshgate.gateway.config_file import route_config_from_mapping
from meshgate.gateway.route_config import RouteConfig

CATCH_UP_TIMEOUT = 5.0
"""Seconds a watch may take to deliver what the bucket holds when it starts."""

RouteChange = Callable[[str, "RouteConfig | None"], Awaitable[None]]
"""Told `(name, route)` for each entry, `route` None when removed."""


class UnreadableRouteError(ValueError):
    """A bucket entry that is no route: its key or its JSON does not decode."""


def route_key(name: str) -> str:
    """The bucket key of the route called `name`.

    >>> route_key("/api/users/**")
    '/api/users/=2A=2A'
    """
    return encode_token(name)


def route_name(key: str) -> str:
    """The name of the route stored under `key`.

    >>> route_name("/api/users/=2A=2A")
    '/api/users/**'
    """
    try:
        return decode_token(key)
    except ValueError as error:
        raise UnreadableRouteError(str(error)) from None


def route_from_entry(key: str, value: bytes) -> RouteConfig:
    """The route stored under `key`; `UnreadableRouteError` says why not.

    >>> route_from_entry("users", b'{"name": "users", "path": "/u/**", "upstreams": ["h:1"]}').path
    '/u/**'
    """
    name = route_name(key)
    try:
        mapping = msgspec.json.decode(value)
    except msgspec.DecodeError as error:
        raise UnreadableRouteError(f"{key}: {error}") from None
    if not isinstance(mapping, dict):
        raise UnreadableRouteError(f"{key}: expected a JSON object, got {type(mapping).__name__}")
    mapping.setdefault("name", name)
    try:
        route = route_config_from_mapping(mapping, source=f"route store key {key}")
    except ValueError as error:  # ConfigError, naming the option
        raise UnreadableRouteError(str(error)) from None
    if route.name != name:
        raise UnreadableRouteError(
            f"{key}: the key names route {name!r} but the value names {route.name!r}"
        )
    return route


class RouteStore:
    """The route bucket of `bus` (created when missing).

    >>> async def add_everywhere(bus: Bus) -> None:
    ...     store = RouteStore(bus)
    ...     await store.put(RouteConfig(path="/api/orders/**", upstreams=("10.0.0.7:8080",)))
    ...     await store.remove("/api/legacy/**")
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.bucket = bus.subjects.routes_bucket
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._bus.key_value(self.bucket)
        return self._kv

    async def put(self, route: RouteConfig) -> int:
        """Store `route` under its name; returns the entry's revision."""
        kv = await self._bucket()
        return await kv.put(route_key(route.name), msgspec.json.encode(route))

    async def remove(self, name: str) -> None:
        """Mark the route called `name` as removed, for every replica."""
        kv = await self._bucket()
        await kv.delete(route_key(name))

    async def routes(self) -> dict[str, RouteConfig | None]:
        """What the bucket holds now: each route by name, None when removed.
        Entries that do not decode are left out."""
        found: dict[str, RouteConfig | None] = {}

        async def keep(name: str, route: RouteConfig | None) -> None:
            found[name] = route

        subscription = await self.watch(keep, on_unreadable=None)
        with anyio.CancelScope(shield=True):
            await subscription.unsubscribe()
        return found

    async def watch(
        self,
        on_change: RouteChange,
        *,
        on_unreadable: Callable[[str, UnreadableRouteError], None] | None,
    ) -> JetStreamContext.PushSubscription:
        """Call `on_change` for the latest entry of every key, then for every
        later entry, in order, until the returned subscription is stopped;
        returns once the entries held at the start have all been handled
        (TimeoutError after `CATCH_UP_TIMEOUT`). `on_unreadable` hears of
        entries that are no route."""
        await self._bucket()
        prefix = f"$KV.{self.bucket}."
        caught_up = anyio.Event()

        async def on_message(msg: Msg) -> None:
            key = msg.subject.removeprefix(prefix)
            try:
                if _is_removal(msg):
                    name, route = route_name(key), None
                else:
                    route = route_from_entry(key, msg.data)
                    name = route.name
            except UnreadableRouteError as error:
                if on_unreadable is not None:
                    on_unreadable(key, error)
            else:
                await on_change(name, route)
            finally:
                if msg.metadata.num_pending == 0:
                    caught_up.set()

        subscription = await self._bus.jetstream.subscribe(
            f"{prefix}>",
            stream=f"KV_{self.bucket}",
            cb=on_message,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            info = await subscription.consumer_info()
            sent = 0 if info.delivered is None else info.delivered.consumer_seq
            if info.num_pending == 0 and not sent:  # an empty bucket
                caught_up.set()
            with anyio.fail_after(CATCH_UP_TIMEOUT):
                await caught_up.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await subscription.unsubscribe()
            raise
        return subscription


def _is_removal(msg: Msg) -> bool:
    headers = msg.headers or {}
    return MARKER_HEADER in headers or headers.get(KV_OPERATION_HEADER) in ("DEL", "PURGE")
