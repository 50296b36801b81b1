"""`ServiceRegistry`: a service registers itself, keeps its lease alive, and
leaves the registry when it stops.

The lease rules it follows:

- It registers with a time to live `ttl` (default three health-check
  intervals) and heartbeats every ``ttl / 3``, so two heartbeats in a row may
  be lost before the lease runs out.
- A heartbeat answered with None means the registry no longer knows the
  instance (the registry restarted without persistence, or the lease expired
  while this process was paused): it registers again by itself and logs
  ``registry.reregistered``.
- A heartbeat that raises (registry unreachable) is logged and tried again
  sooner, with jittered exponential backoff capped at the heartbeat interval;
  nothing is raised to the service, which goes on serving.
- With ``self_check=True`` it also probes its own health endpoint every
  ``health_check_interval`` and reports UP / DOWN changes with `set_status`.
- Leaving (`deregister`, the end of ``async with``, the end of `run`, or a
  signal with `deregister_on_signal`) removes the instance at once, so
  clients stop picking it before its lease would have run out.

Signed registrations are the backend's business: when the registry nodes
hold a registration key, hand in a `RegistryClient` that holds it too, and
every register, heartbeat, status report and deregister goes out signed::

    signer = RegistrationSigner(load_registration_key(key_file))
    registry = ServiceRegistry(config, RegistryClient(bus, signer=signer))

A registry that refuses the signature answers ``forbidden``: `register` and
`run` raise `PermissionError` at once (retrying cannot fix a key), while a
refused heartbeat is logged and retried like any failed one.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Annotated, Any, Self

import anyio
import anyio.abc
import httpx
import msgspec
import structlog
from structlog.typing import FilteringBoundLogger

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends.protocol import RegistryBackend
from meshgate.discovery.errors import InvalidRegistrationError
from meshgate.durations import parse_duration
from meshgate.resilience.backoff import Backoff
from meshgate.resilience.validation import positive_number

__all__ = ["ServiceRegistration", "ServiceRegistry", "load_registration"]

Sleep = Callable[[float], Awaitable[None]]

_Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
_Interval = Annotated[float, msgspec.Meta(gt=0)]
_Path = Annotated[str, msgspec.Meta(pattern="^/")]
_Name = Annotated[str, msgspec.Meta(min_length=1)]


class ServiceRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a service says about itself when it registers: the reference's
    config keys in snake_case, plus an optional `instance_id`.

    Without `instance_id` the id is ``{name}-{host}-{port}``, the same on
    every restart, so a restarted process replaces its own registration
    instead of leaving a twin behind until the old lease runs out.

    >>> ServiceRegistration(name="user-service", port=3001).id
    'user-service-127.0.0.1-3001'
    """

    name: _Name
    port: _Port
    host: str = "127.0.0.1"
    health_check_path: _Path = "/health"
    health_check_interval: _Interval = 30.0
    metadata: dict[str, str | int | float | bool] = {}
    zone: str | None = None
    tags: tuple[str, ...] = ()
    instance_id: str | None = None

    @property
    def id(self) -> str:
        """The instance id this registration registers under."""
        return self.instance_id or f"{self.name}-{self.host}-{self.port}"

    def to_instance(self, status: InstanceStatus = InstanceStatus.UP) -> ServiceInstance:
        """The `ServiceInstance` that goes to the registry."""
        return ServiceInstance(
            id=self.id,
            name=self.name,
            host=self.host,
            port=self.port,
            zone=self.zone,
            tags=self.tags,
            metadata=dict(self.metadata),
            status=status,
            health_check_path=self.health_check_path,
            health_check_interval=self.health_check_interval,
        )


_FIELDS: tuple[str, ...] = ServiceRegistration.__struct_fields__


def _snake_case(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def load_registration(config: ServiceRegistration | Mapping[str, Any]) -> ServiceRegistration:
    """`config` checked and turned into a `ServiceRegistration`.

    Raises `InvalidRegistrationError` (a `ValueError`) naming the bad key.
    ``health_check_interval`` also takes a duration string such as ``"15s"``.

    >>> load_registration({"name": "user-service", "port": 3001, "health_check_interval": "15s"})
    ... # doctest: +ELLIPSIS
    ServiceRegistration(name='user-service', port=3001, ..., health_check_interval=15.0, ...)
    >>> load_registration({"name": "user-service", "port": 3001, "healthCheckPath": "/hc"})
    Traceback (most recent call last):
    ...
    meshgate.discovery.errors.InvalidRegistrationError: unknown registration key \
'healthCheckPath' (did you mean 'health_check_path'?); the keys are name, port, host, \
health_check_path, health_check_interval, metadata, zone, tags, instance_id
    """
    if isinstance(config, ServiceRegistration):
        # Constructing a Struct directly skips its constraints: check them here too.
        raw: dict[str, Any] = msgspec.structs.asdict(config)
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise InvalidRegistrationError(
            f"config={config!r} is not allowed: expected a mapping or a ServiceRegistration"
        )
    for key in raw:
        if key not in _FIELDS:
            snake = _snake_case(str(key))
            hint = f" (did you mean {snake!r}?)" if snake in _FIELDS else ""
            raise InvalidRegistrationError(
                f"unknown registration key {key!r}{hint}; the keys are {', '.join(_FIELDS)}"
            )
    interval = raw.get("health_check_interval")
    if isinstance(interval, str):
        try:
            raw["health_check_interval"] = parse_duration(interval, option="health_check_interval")
        except ValueError as error:
            raise InvalidRegistrationError(str(error)) from None
    try:
        return msgspec.convert(raw, ServiceRegistration)
    except msgspec.ValidationError as error:
        # msgspec's message names the key and its path, e.g. "at `$.port`".
        raise InvalidRegistrationError(f"invalid service registration: {error}") from None


class ServiceRegistry:
    """Registers one service instance and keeps it registered.

    The heartbeats run in a task group the registry owns, opened by
    ``async with``; leaving the block deregisters. Inside it, `register` and
    `deregister` may be called as the service's life requires::

        async with ServiceRegistry(config, backend) as registry, anyio.create_task_group() as tg:
            tg.start_soon(serve_http)
            await registry.register()
            await registry.deregister_on_signal()   # returns on SIGTERM / SIGINT, deregistered
            tg.cancel_scope.cancel()

    Or, in a task group of the caller's, ``await tg.start(registry.run)``:
    registers (retrying until the registry answers), heartbeats, and
    deregisters when cancelled.

    `ttl` defaults to ``3 * health_check_interval``. `http` is the client for
    the self-check (the caller's; otherwise one is opened and closed here).
    `sleep` is the only time source of the loops: tests pass a fake.

    >>> from meshgate.discovery.backends.memory import MemoryRegistryBackend
    >>> async def main() -> None:
    ...     backend = MemoryRegistryBackend()
    ...     config = {"name": "user-service", "port": 3001, "tags": ["api", "v2"]}
    ...     async with ServiceRegistry(config, backend) as registry:
    ...         await registry.register()
    ...         print([i.id for i in await backend.get_instances("user-service")])
    ...     print(await backend.get_instances("user-service"))
    >>> import structlog.testing
    >>> with structlog.testing.capture_logs():  # the example's output without its logs
    ...     anyio.run(main)
    ['user-service-127.0.0.1-3001']
    []
    """

    def __init__(
        self,
        config: ServiceRegistration | Mapping[str, Any],
        backend: RegistryBackend,
        *,
        ttl: float | str | None = None,
        self_check: bool = False,
        http: httpx.AsyncClient | None = None,
        probe_timeout: float = 2.0,
        deregister_timeout: float = 5.0,
        sleep: Sleep = anyio.sleep,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self._registration = load_registration(config)
        self._backend = backend
        if ttl is None:
            self._ttl = 3 * self._registration.health_check_interval
        else:
            self._ttl = positive_number("ttl", parse_duration(ttl, option="ttl"))
        self._self_check = bool(self_check)
        self._http = http
        self._owns_http = False
        self._probe_timeout = positive_number("probe_timeout", probe_timeout)
        self._deregister_timeout = positive_number("deregister_timeout", deregister_timeout)
        self._sleep = sleep
        self._log: FilteringBoundLogger = (log or structlog.get_logger("meshgate.discovery")).bind(
            service=self._registration.name, instance=self._registration.id
        )
        # What the last probe said, and what the registry was last told.
        self._status = InstanceStatus.UP
        self._reported = InstanceStatus.UP
        self._registered = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._loops: anyio.CancelScope | None = None

    # -- reading -------------------------------------------------------------

    @property
    def registration(self) -> ServiceRegistration:
        return self._registration

    @property
    def instance(self) -> ServiceInstance:
        """The instance as this process would register it now."""
        return self._registration.to_instance(self._status)

    @property
    def ttl(self) -> float:
        """The lease's time to live, seconds."""
        return self._ttl

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: a third of the lease."""
        return self._ttl / 3

    @property
    def is_registered(self) -> bool:
        return self._registered

    @property
    def status(self) -> InstanceStatus:
        """UP, or what the last self-check found."""
        return self._status

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._task_group is not None:
            raise RuntimeError("ServiceRegistry is already entered")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None, "ServiceRegistry exited without being entered"
        try:
            await self._leave()
        finally:
            task_group.cancel_scope.cancel()
            result: bool | None
            try:
                result = await task_group.__aexit__(exc_type, exc, tb)
            except BaseExceptionGroup as group:
                if exc is None or list(group.exceptions) != [exc]:
                    raise
                result = None
        return result

    async def register(self) -> ServiceInstance:
        """Register now and keep the lease alive in the background; returns
        what the registry stored. Errors of this first registration propagate
        (a read-only backend raises `PermissionError`). Calling it again
        while registered registers again (e.g. after changing nothing but
        wanting a fresh lease) without starting a second heartbeat.
        """
        if self._task_group is None:
            raise RuntimeError(
                "ServiceRegistry.register() needs the registry's task group: use "
                "`async with ServiceRegistry(config, backend) as registry:` and call it "
                "inside, or run `await task_group.start(registry.run)`"
            )
        stored = await self._register_once()
        if self._loops is None:
            await self._task_group.start(self._maintain)
        return stored

    async def deregister(self) -> None:
        """Stop heartbeating and remove the instance from the registry.

        A no-op when not registered. Errors of the backend propagate; the
        heartbeats are stopped either way.
        """
        self._stop_loops()
        if not self._registered:
            return
        self._registered = False
        registration = self._registration
        with anyio.fail_after(self._deregister_timeout, shield=True):
            await self._backend.deregister(registration.name, registration.id)
        self._log.info("registry.deregistered")

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Register, retrying with backoff while the registry cannot be reached,
        then heartbeat until cancelled, then deregister. For a task group of
        the caller's: ``await tg.start(registry.run)`` returns once registered.
        """
        backoff = Backoff("exponential", base_delay=0.5, max_delay=30.0, jitter="equal")
        attempt = 0
        try:
            while True:
                try:
                    await self._register_once()
                    break
                except PermissionError:
                    raise  # a read-only backend: no retry will change that
                except Exception as error:
                    attempt += 1
                    delay = backoff.delay(attempt)
                    self._log.warning(
                        "registry.register_failed",
                        error=repr(error),
                        attempt=attempt,
                        retry_in=round(delay, 3),
                    )
                    await self._sleep(delay)
            task_status.started()
            await self._maintain()
        finally:
            await self._leave()

    async def deregister_on_signal(self, *signals: int) -> signal.Signals:
        """Wait for one of `signals` (default SIGTERM and SIGINT), deregister,
        and return the signal; the caller then stops its own work.

        Leaving the registry first means clients stop choosing this instance
        while it finishes the requests it has. Must run in the main thread.
        """
        wanted = [signal.Signals(s) for s in signals] or [signal.SIGTERM, signal.SIGINT]
        with anyio.open_signal_receiver(*wanted) as received:
            async for signum in received:
                self._log.info("registry.signal_received", signal=signal.Signals(signum).name)
                await self._leave()
                return signal.Signals(signum)
        raise RuntimeError("the signal receiver closed without a signal")

    # -- internals -----------------------------------------------------------

    async def _register_once(self) -> ServiceInstance:
        if self._self_check:
            self._status = await self._probe()
        instance = self.instance
        stored = await self._backend.register(instance, ttl=self._ttl)
        self._reported = instance.status
        self._registered = True
        self._log.info(
            "registry.registered",
            address=instance.address,
            ttl=self._ttl,
            status=instance.status.value,
        )
        return stored

    async def _maintain(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.CancelScope() as scope:
            self._loops = scope
            try:
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(self._heartbeat_loop)
                    if self._self_check:
                        task_group.start_soon(self._health_loop)
                    task_status.started()
            finally:
                if self._loops is scope:
                    self._loops = None

    def _stop_loops(self) -> None:
        loops, self._loops = self._loops, None
        if loops is not None:
            loops.cancel()

    async def _leave(self) -> None:
        """Deregister on the way out: shielded, bounded, and never raising,
        since the lease runs out by itself if the registry is gone."""
        try:
            await self.deregister()
        except Exception as error:
            self._log.warning("registry.deregister_failed", error=repr(error))
        finally:
            if self._owns_http and self._http is not None:
                http, self._http, self._owns_http = self._http, None, False
                with anyio.CancelScope(shield=True):
                    await http.aclose()

    async def _heartbeat_loop(self) -> None:
        interval = self.heartbeat_interval
        backoff = Backoff(
            "exponential", base_delay=min(1.0, interval / 4), max_delay=interval, jitter="equal"
        )
        failures = 0
        delay = interval
        registration = self._registration
        while True:
            await self._sleep(delay)
            try:
                beat = await self._backend.heartbeat(registration.name, registration.id)
                if beat is None:
                    await self._backend.register(self.instance, ttl=self._ttl)
                    self._reported = self._status
                    self._log.warning("registry.reregistered", reason="heartbeat_unknown")
            except Exception as error:
                failures += 1
                delay = backoff.delay(failures)
                self._log.warning(
                    "registry.heartbeat_failed",
                    error=repr(error),
                    attempt=failures,
                    retry_in=round(delay, 3),
                )
                continue
            if failures:
                self._log.info("registry.heartbeat_recovered", failed_attempts=failures)
            failures = 0
            delay = interval

    async def _health_loop(self) -> None:
        registration = self._registration
        while True:
            await self._sleep(registration.health_check_interval)
            self._status = await self._probe()
            if self._status == self._reported:
                continue
            try:
                updated = await self._backend.set_status(
                    registration.name, registration.id, self._status
                )
                if updated is None:
                    await self._backend.register(self.instance, ttl=self._ttl)
                    self._log.warning("registry.reregistered", reason="status_unknown")
            except Exception as error:
                # `_reported` is unchanged, so the next probe reports again.
                self._log.warning("registry.status_report_failed", error=repr(error))
                continue
            self._log.info(
                "registry.status_changed", old=self._reported.value, new=self._status.value
            )
            self._reported = self._status

    async def _probe(self) -> InstanceStatus:
        registration = self._registration
        host = registration.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"  # listening everywhere: reachable on loopback
        if ":" in host:
            host = f"[{host}]"
        url = f"http://{host}:{registration.port}{registration.health_check_path}"
        if self._http is None:
            self._http = httpx.AsyncClient()
            self._owns_http = True
        try:
            response = await self._http.get(url, timeout=self._probe_timeout)
        except httpx.HTTPError as error:
            self._log.info("registry.self_check_failed", url=url, error=repr(error))
            return InstanceStatus.DOWN
        if response.is_success:
            return InstanceStatus.UP
        self._log.info("registry.self_check_failed", url=url, status_code=response.status_code)
        return InstanceStatus.DOWN
