"""Routes at runtime across the cluster: a route added, replaced or removed
on one replica (by `GatewayServer.add_route`/`remove_route`, so by the admin
API too) reaches every replica, and survives their restarts.

How:

1. The bucket is the truth. Changes live in the `RouteStore` bucket
   (``MESH_ROUTES``); every replica watches it and applies each entry to its
   `GatewayServer`: a route that differs from the one it serves is added or
   replaced, a removed one is removed. An entry equal to what the replica
   serves changes nothing, so its own writes coming back, or a restart, do
   not rebuild a route (and reset its breaker and limits).
2. Start. Before the replica serves, it applies everything the bucket holds
   over the routes of its config file. If the bucket cannot be read within
   `start_timeout` (no JetStream, bus slow), it serves its file config and
   keeps trying in the background.
3. Local changes. The replica listens to its gateway's ``route:added`` and
   ``route:removed`` events. Those it caused itself by applying the bucket
   are skipped; the others are written to the bucket (put, or delete for a
   removal), then announced as a `ConfigEvent` on ``mesh.events.config``
   (for `meshgate events` and other observers; replicas follow the bucket,
   not the events). A write that fails is retried every `retry_interval`
   until it lands or a newer change of the same route replaces it; while a
   change waits, entries of that route from the bucket are not applied, so
   that an older entry does not undo it locally.
4. Concurrent changes of one route on two replicas: the bucket keeps the
   last write, and every replica applies it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.abc
import msgspec
import structlog

from gateway_node.route_store import RouteStore, UnreadableRouteError
from meshgate.bus.connection import Bus
from meshgate.bus.messages import ConfigEvent, ConfigEventKind
from meshgate.gateway.route_config import RouteConfig
from meshgate.gateway.server import GatewayServer

log = structlog.get_logger("meshgate.gateway")

_REMOVED = None


class RouteSync:
    """Keeps `gateway`'s routes in step with the cluster's (see the module docstring).

    >>> async def share_routes(bus: Bus, gateway: GatewayServer) -> None:
    ...     routes = RouteSync(bus, gateway, "gw-1")
    ...     async with anyio.create_task_group() as tg:
    ...         await tg.start(routes.run)     # the bucket's routes applied: serve now
    ...         gateway.add_route({"path": "/api/new/**", "upstreams": ["10.0.0.9:80"]})
    """

    def __init__(
        self,
        bus: Bus,
        gateway: GatewayServer,
        replica_id: str,
        *,
        start_timeout: float = 5.0,
        retry_interval: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._gateway = gateway
        self.replica_id = replica_id
        self.store = RouteStore(bus)
        self._start_timeout = start_timeout
        self._retry_interval = retry_interval
        self._wall_clock = wall_clock
        self._applying = False
        # Local changes not yet in the bucket: name -> (kind, route or None).
        self._pending: dict[str, tuple[ConfigEventKind, RouteConfig | None]] = {}
        self._wake = anyio.Event()
        self._loaded = anyio.Event()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the bucket and publish local changes until cancelled;
        `task_status.started()` once the bucket's routes are applied (or
        `start_timeout` passed without them)."""
        self._gateway.on("route:added", self._on_added)
        self._gateway.on("route:removed", self._on_removed)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._follow_bucket)
                tg.start_soon(self._write_local_changes)
                with anyio.move_on_after(self._start_timeout) as waiting:
                    await self._loaded.wait()
                if waiting.cancelled_caught:
                    log.warning(
                        "routes.bucket_unavailable",
                        bucket=self.store.bucket,
                        waited=self._start_timeout,
                        hint="serving the config file's routes; still trying",
                    )
                task_status.started()
        finally:
            self._gateway.off("route:added", self._on_added)
            self._gateway.off("route:removed", self._on_removed)

    # -- from the bucket -----------------------------------------------------------------

    async def _follow_bucket(self) -> None:
        while True:
            try:
                subscription = await self.store.watch(self._apply, on_unreadable=_log_unreadable)
            except Exception as error:  # no JetStream yet, bus down: try again
                log.warning("routes.watch_failed", error=repr(error))
                await anyio.sleep(self._retry_interval)
                continue
            if not self._loaded.is_set():
                log.info(
                    "routes.loaded", bucket=self.store.bucket, routes=len(self._gateway.routes)
                )
            self._loaded.set()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    await subscription.unsubscribe()

    async def _apply(self, name: str, route: RouteConfig | None) -> None:
        """Step 1 for one bucket entry."""
        if name in self._pending:
            return  # our newer change is on its way to the bucket
        current = self._gateway.route_runtime(name)
        if route is _REMOVED:
            if current is None:
                return
            with self._quietly():
                self._gateway.remove_route(name)
            log.info("routes.applied", route=name, change="removed")
            return
        if current is not None and current.config == route:
            return
        try:
            with self._quietly():
                self._gateway.add_route(route, replace=True)
        except Exception as error:  # e.g. its path clashes with another route's
            # Logged, not raised: raising here would stop the bucket's watch.
            log.warning("routes.apply_failed", route=name, error=str(error))
            return
        log.info("routes.applied", route=name, change="changed" if current else "added")

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """Changes made in here come from the bucket: not to be written back."""
        self._applying = True
        try:
            yield
        finally:
            self._applying = False

    # -- to the bucket -----------------------------------------------------------------

    def _on_added(self, details: dict[str, Any]) -> None:
        if self._applying:
            return
        name = str(details["route"])
        runtime = self._gateway.route_runtime(name)
        if runtime is None:
            return
        kind: ConfigEventKind = "changed" if details.get("change") == "changed" else "added"
        self._pending[name] = (kind, runtime.config)
        self._wake.set()

    def _on_removed(self, details: dict[str, Any]) -> None:
        if self._applying:
            return
        self._pending[str(details["route"])] = ("removed", _REMOVED)
        self._wake.set()

    async def _write_local_changes(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            failed = False
            for name, change in list(self._pending.items()):
                try:
                    await self._write(name, *change)
                except Exception as error:
                    log.warning("routes.write_failed", route=name, error=repr(error))
                    failed = True
                    continue
                if self._pending.get(name) is change:  # not replaced meanwhile
                    del self._pending[name]
            if failed:
                await anyio.sleep(self._retry_interval)
                self._wake.set()

    async def _write(self, name: str, kind: ConfigEventKind, route: RouteConfig | None) -> None:
        if route is None:
            await self.store.remove(name)
        else:
            await self.store.put(route)
        log.info("routes.shared", route=name, change=kind, replica=self.replica_id)
        event = ConfigEvent(
            kind=kind,
            route=name,
            config=None if route is None else msgspec.to_builtins(route),
            at=self._wall_clock(),
        )
        try:
            await self._bus.publish(self._bus.subjects.config_events, event)
        except Exception as error:  # the bucket has it: the event is for observers
            log.warning("routes.event_failed", route=name, error=repr(error))


def _log_unreadable(key: str, error: UnreadableRouteError) -> None:
    log.warning("routes.entry_unreadable", key=key, error=str(error))
