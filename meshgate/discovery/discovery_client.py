"""`DiscoveryClient`: finds the instances of a service, caches them, and picks
one per request with a load balancer.

How the cache stays current:

- Each service's instances are held as one tuple sorted by id, plus the tuple
  of its UP instances. Balancers are handed the same UP tuple until the set
  changes, which is their O(1) path.
- With a backend that pushes changes (a `WatchableBackend`, e.g. the bus
  client of registry nodes) and the client entered (``async with client:``,
  or `run` in the caller's task group), every registered / deregistered /
  expired / status event is applied to the cached tuple at once; entries then
  never go stale by age, and a periodic refresh (``refresh_interval``, else
  ``cache_ttl``) is only a safety net for lost events.
- Otherwise an entry older than ``cache_ttl`` is read again from the backend
  on the next request, and ``refresh_interval`` (when set) re-reads every
  cached service in the background.

When the backend cannot be read (any exception: `RegistryUnavailableError`,
`ConnectionError`, `BusError`, ...) the client keeps serving the last-known
instances, logs ``discovery.serving_stale`` once per outage, asks the backend
again at most every ``stale_retry_interval`` seconds, and counts it all in
`stats`. Only a service it has never seen fails, with
`RegistryUnavailableError`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from inspect import isawaitable
from types import TracebackType
from typing import Literal, Self, get_args

import anyio
import anyio.abc
import structlog
from structlog.typing import FilteringBoundLogger

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import RegistryEvent
from meshgate.discovery.backends.protocol import RegistryBackend, WatchableBackend
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.strategies import create_balancer
from meshgate.discovery.errors import RegistryUnavailableError
from meshgate.durations import parse_duration
from meshgate.resilience.backoff import Backoff
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.validation import positive_number

__all__ = ["DiscoveryClient", "DiscoveryStats", "InstanceEvent", "InstanceHandler"]

InstanceEvent = Literal["instance:up", "instance:down"]
"""The events `DiscoveryClient.on` takes."""

InstanceHandler = Callable[[ServiceInstance], Awaitable[None] | None]
"""Hears one instance that came up or went down; sync or async."""

Sleep = Callable[[float], Awaitable[None]]

_EVENTS: tuple[str, ...] = get_args(InstanceEvent)
_NEVER = -math.inf


@dataclass(slots=True)
class DiscoveryStats:
    """Counters of what the cache did, for metrics and tests.

    - `cache_hits`: reads answered from the cache without asking the backend;
    - `refreshes`: successful reads of the backend;
    - `refresh_failures`: reads of the backend that raised;
    - `stale_serves`: answers given from last-known instances during an outage;
    - `events_applied`: watch events applied to a cached service.
    """

    cache_hits: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    stale_serves: int = 0
    events_applied: int = 0


@dataclass(slots=True)
class _Entry:
    instances: tuple[ServiceInstance, ...]
    up: tuple[ServiceInstance, ...]
    fetched_at: float
    # Bumped by every read attempt, so a caller that waited on the lock can
    # tell that someone else just read the backend for it.
    generation: int = 0
    outage: bool = False
    outage_since: float = 0.0
    retry_at: float = _NEVER


def _matches(
    instance: ServiceInstance,
    zone: str | None,
    tags: Collection[str] | None,
    metadata: Mapping[str, object] | None,
    status: InstanceStatus | None,
) -> bool:
    if zone is not None and instance.zone != zone:
        return False
    if status is not None and instance.status != status:
        return False
    if tags and not all(tag in instance.tags for tag in tags):
        return False
    if metadata:
        missing = object()
        return all(instance.metadata.get(key, missing) == value for key, value in metadata.items())
    return True


def _up_ids(instances: tuple[ServiceInstance, ...]) -> dict[str, ServiceInstance]:
    return {i.id: i for i in instances if i.status == InstanceStatus.UP}


class DiscoveryClient:
    """Instances of services, cached, and one of them per request.

    `zone` is the client's own zone, which the ``zone-aware`` strategy
    prefers. `cache_ttl` and `refresh_interval` are seconds (or strings such
    as ``"15s"``). `cache_enabled=False` reads the backend on every request,
    but still keeps the last answer to serve during an outage. `clock`
    (monotonic seconds) ages entries; `sleep` paces the background loops.

    >>> from meshgate.discovery.backends.memory import MemoryRegistryBackend
    >>> async def main() -> None:
    ...     backend = MemoryRegistryBackend()
    ...     for port in (3001, 3002):
    ...         await backend.register(ServiceInstance(
    ...             id=f"user-{port}", name="user-service", host="127.0.0.1", port=port), ttl=30)
    ...     client = DiscoveryClient(backend, cache_ttl=15.0)
    ...     first = await client.get_instance("user-service")
    ...     second = await client.get_instance("user-service")
    ...     print(first.port, second.port)
    >>> anyio.run(main)
    3001 3002
    """

    def __init__(
        self,
        backend: RegistryBackend,
        *,
        cache_enabled: bool = True,
        cache_ttl: float | str = 30.0,
        refresh_interval: float | str | None = None,
        zone: str | None = None,
        stale_retry_interval: float | str = 5.0,
        clock: Clock = monotonic,
        sleep: Sleep = anyio.sleep,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self._backend = backend
        self._cache_enabled = bool(cache_enabled)
        self._cache_ttl = parse_duration(cache_ttl, option="cache_ttl")
        self._refresh_interval = (
            None
            if refresh_interval is None
            else positive_number(
                "refresh_interval", parse_duration(refresh_interval, option="refresh_interval")
            )
        )
        self._stale_retry_interval = parse_duration(
            stale_retry_interval, option="stale_retry_interval"
        )
        if zone is not None and (not isinstance(zone, str) or not zone):
            raise ValueError(
                f"zone={zone!r} is not allowed: expected a non-empty zone name or None"
            )
        self._zone = zone
        self._clock = clock
        self._sleep = sleep
        self._log: FilteringBoundLogger = log or structlog.get_logger("meshgate.discovery")
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._balancers: dict[tuple[str, str], LoadBalancer] = {}
        self._handlers: dict[str, list[InstanceHandler]] = {event: [] for event in _EVENTS}
        self._watching = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._stats = DiscoveryStats()

    # -- reading -------------------------------------------------------------

    @property
    def backend(self) -> RegistryBackend:
        return self._backend

    @property
    def zone(self) -> str | None:
        """The client's own zone, which ``zone-aware`` prefers."""
        return self._zone

    @property
    def stats(self) -> DiscoveryStats:
        """Live counters; see `DiscoveryStats`."""
        return self._stats

    @property
    def is_watching(self) -> bool:
        """Whether watch events are keeping the cache current right now."""
        return self._watching

    async def get_instances(
        self,
        name: str,
        *,
        zone: str | None = None,
        tags: Collection[str] | None = None,
        metadata: Mapping[str, object] | None = None,
        status: InstanceStatus | str | None = None,
    ) -> list[ServiceInstance]:
        """Instances of `name` that match every filter given, sorted by id.

        Filters that are None (or empty) do not filter: without `status` the
        list includes instances that are DOWN or STARTING.

        >>> from meshgate.discovery.backends.memory import MemoryRegistryBackend
        >>> async def main() -> None:
        ...     backend = MemoryRegistryBackend()
        ...     await backend.register(ServiceInstance(
        ...         id="u1", name="user-service", host="h", port=1, tags=("v2",)), ttl=30)
        ...     found = await DiscoveryClient(backend).get_instances("user-service", tags=["v2"])
        ...     print([i.id for i in found])
        >>> anyio.run(main)
        ['u1']
        """
        wanted = None if status is None else InstanceStatus(status)
        entry = await self._current(name)
        return [i for i in entry.instances if _matches(i, zone, tags, metadata, wanted)]

    async def get_instance(
        self,
        name: str,
        strategy: str = "round-robin",
        *,
        client_ip: str | None = None,
        exclude: Collection[str] = (),
    ) -> ServiceInstance | None:
        """One UP instance of `name` chosen by `strategy`, or None when none is UP.

        `exclude` holds instance ids not to pick (those a retry already
        tried). Raises `ValueError` for an unknown strategy, or for
        ``zone-aware`` on a client without a zone.
        """
        balancer = self.balancer(name, strategy)
        entry = await self._current(name)
        candidates = entry.up
        if exclude:
            candidates = tuple(i for i in candidates if i.id not in exclude)
        return balancer.pick(candidates, client_ip=client_ip)

    async def up_instances(self, name: str) -> tuple[ServiceInstance, ...]:
        """The UP instances of `name` as the cache holds them, sorted by id.

        The same tuple object comes back until the instances change, so a
        caller (the gateway's hot path) may cache what it derives from it by
        identity.
        """
        return (await self._current(name)).up

    def balancer(self, name: str, strategy: str = "round-robin") -> LoadBalancer:
        """The balancer for `strategy` on service `name`, made on first use.

        There is one per (service, strategy), so its counters and in-flight
        counts belong to one set of instances. Callers that make the request
        report it with `on_start` / `on_finish`.
        """
        key = (name, strategy)
        balancer = self._balancers.get(key)
        if balancer is None:
            if strategy == "zone-aware":
                if self._zone is None:
                    raise ValueError(
                        "strategy 'zone-aware' needs the client's own zone: "
                        "DiscoveryClient(backend, zone='us-east-1')"
                    )
                balancer = create_balancer(strategy, zone=self._zone)
            else:
                balancer = create_balancer(strategy)
            self._balancers[key] = balancer
        return balancer

    async def refresh(self, name: str) -> list[ServiceInstance]:
        """Read `name` from the backend now, whatever the cache holds; returns
        every instance (last-known ones if the backend cannot be read)."""
        entry = await self._current(name, force=True)
        return list(entry.instances)

    def invalidate(self, name: str | None = None) -> None:
        """Make the next read of `name` (of every service, when None) ask the backend."""
        entries = self._entries.values() if name is None else [self._entries.get(name)]
        for entry in entries:
            if entry is not None:
                entry.fetched_at = _NEVER
                entry.retry_at = _NEVER

    # -- events --------------------------------------------------------------

    def on(self, event: InstanceEvent, handler: InstanceHandler) -> None:
        """Call `handler(instance)` when an instance of a cached service comes
        up (``instance:up``) or goes down / away (``instance:down``).

        Changes are seen through watch events and refreshes; the first read of
        a service reports nothing. A handler that raises is logged and the
        others still run.
        """
        if event not in self._handlers:
            raise ValueError(
                f"event={event!r} is not allowed: expected one of "
                + ", ".join(repr(e) for e in _EVENTS)
            )
        self._handlers[event].append(handler)

    def off(self, event: InstanceEvent, handler: InstanceHandler) -> None:
        """Stop calling `handler` for `event` (no error if it was not registered)."""
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    # -- background loops ----------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start `run` in a task group of the client's own; leaving the block stops it.

        Returns once the watch is established (or its first attempt failed),
        so events published after entering reach the cache.
        """
        if self._task_group is not None:
            raise RuntimeError("DiscoveryClient is already entered")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            await task_group.start(self.run)
        except BaseException:
            self._task_group = None
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None, "DiscoveryClient exited without being entered"
        task_group.cancel_scope.cancel()
        try:
            return await task_group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The body's own error, not one wrapped in a group of one.
            if exc is not None and list(group.exceptions) == [exc]:
                return None
            raise

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Watch the backend (when it is watchable) and refresh periodically,
        until cancelled. For a caller's task group: ``await tg.start(client.run)``.
        """
        backend = self._backend
        watchable = isinstance(backend, WatchableBackend)
        interval = self._refresh_interval
        if interval is None and watchable and self._cache_ttl > 0:
            interval = self._cache_ttl
        async with anyio.create_task_group() as task_group:
            if isinstance(backend, WatchableBackend):
                await task_group.start(self._watch, backend)
            if interval is not None:
                task_group.start_soon(self._refresh_loop, interval)
            task_status.started()
            await anyio.sleep_forever()

    async def _watch(
        self,
        backend: WatchableBackend,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        backoff = Backoff("exponential", base_delay=0.5, max_delay=30.0, jitter="equal")
        attempt = 0
        while True:
            try:
                subscription = await backend.watch(self._on_registry_event)
                break
            except Exception as error:
                attempt += 1
                delay = backoff.delay(attempt)
                self._log.warning(
                    "discovery.watch_failed", error=repr(error), attempt=attempt, retry_in=delay
                )
                if attempt == 1:
                    # Entering the client must not wait for the registry to come back.
                    task_status.started()
                await self._sleep(delay)
        self._watching = True
        # Entries read before the watch started may have missed events.
        self.invalidate()
        self._log.info("discovery.watching", services=len(self._entries))
        if attempt == 0:
            task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            self._watching = False
            with anyio.CancelScope(shield=True):
                try:
                    await subscription.unsubscribe()
                except Exception as error:
                    self._log.warning("discovery.unwatch_failed", error=repr(error))

    async def _refresh_loop(self, interval: float) -> None:
        while True:
            await self._sleep(interval)
            for name in list(self._entries):
                await self._current(name, force=True)

    async def _on_registry_event(self, event: RegistryEvent) -> None:
        instance = event.instance
        entry = self._entries.get(instance.name)
        if entry is None:
            # Not a service this client uses: its first read will fetch it.
            return
        by_id = {i.id: i for i in entry.instances}
        if event.kind in ("registered", "status"):
            by_id[instance.id] = instance
        else:
            by_id.pop(instance.id, None)
        self._stats.events_applied += 1
        await self._store(instance.name, tuple(sorted(by_id.values(), key=lambda i: i.id)))

    # -- the cache -----------------------------------------------------------

    async def _current(self, name: str, *, force: bool = False) -> _Entry:
        entry = self._entries.get(name)
        if not force and entry is not None and self._answers_from_cache(entry):
            return entry
        seen = -1 if entry is None else entry.generation
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = anyio.Lock()
        async with lock:
            entry = self._entries.get(name)
            if entry is not None and entry.generation != seen:
                # Someone read the backend while we waited for the lock:
                # theirs is as fresh an answer as ours would be.
                if entry.outage:
                    self._stats.stale_serves += 1
                return entry
            return await self._fetch(name, entry)

    def _answers_from_cache(self, entry: _Entry) -> bool:
        now = self._clock()
        if entry.outage and now < entry.retry_at:
            self._stats.stale_serves += 1
            return True
        if not self._cache_enabled:
            return False
        if self._watching or now - entry.fetched_at < self._cache_ttl:
            self._stats.cache_hits += 1
            return True
        return False

    async def _fetch(self, name: str, entry: _Entry | None) -> _Entry:
        try:
            found = await self._backend.get_instances(name)
        except Exception as error:
            self._stats.refresh_failures += 1
            if entry is None:
                if isinstance(error, RegistryUnavailableError):
                    raise
                raise RegistryUnavailableError(
                    f"cannot read the instances of {name!r} and none are known: {error!r}",
                    service=name,
                ) from error
            now = self._clock()
            if not entry.outage:
                entry.outage = True
                entry.outage_since = now
                self._log.warning(
                    "discovery.serving_stale",
                    service=name,
                    error=repr(error),
                    instances=len(entry.instances),
                )
            entry.retry_at = now + self._stale_retry_interval
            entry.generation += 1
            self._stats.stale_serves += 1
            return entry
        self._stats.refreshes += 1
        instances = tuple(sorted(found, key=lambda i: i.id))
        if entry is None:
            up = tuple(i for i in instances if i.status == InstanceStatus.UP)
            entry = self._entries[name] = _Entry(instances, up, self._clock())
            return entry
        if entry.outage:
            self._log.info(
                "discovery.recovered",
                service=name,
                outage_s=round(self._clock() - entry.outage_since, 3),
            )
            entry.outage = False
            entry.retry_at = _NEVER
        entry.fetched_at = self._clock()
        entry.generation += 1
        await self._store(name, instances)
        return entry

    async def _store(self, name: str, instances: tuple[ServiceInstance, ...]) -> None:
        """Put `instances` in the entry of `name` and report who came up or went down."""
        entry = self._entries[name]
        if instances == entry.instances:
            # Keep the tuples the balancers already hold: their O(1) path.
            return
        before = _up_ids(entry.instances)
        up = tuple(i for i in instances if i.status == InstanceStatus.UP)
        entry.instances = instances
        if up != entry.up:
            entry.up = up
        after = _up_ids(instances)
        current = {i.id: i for i in instances}
        for instance_id, instance in after.items():
            if instance_id not in before:
                self._log.info("discovery.instance_up", service=name, instance=instance_id)
                await self._emit("instance:up", instance)
        for instance_id, instance in before.items():
            if instance_id not in after:
                self._log.info("discovery.instance_down", service=name, instance=instance_id)
                # Still listed (now DOWN, say): hand over its new state.
                await self._emit("instance:down", current.get(instance_id, instance))

    async def _emit(self, event: str, instance: ServiceInstance) -> None:
        for handler in list(self._handlers[event]):
            try:
                result = handler(instance)
                if isawaitable(result):
                    await result
            except Exception as error:
                self._log.warning(
                    "discovery.handler_failed",
                    handler_event=event,
                    instance=instance.id,
                    error=repr(error),
                )
