"""`ServiceFleet`: several `DemoService`s started together, registered in a
registry backend, and stopped together::

    registry = MemoryRegistryBackend()
    async with ServiceFleet(SHOP_SERVICES, registry) as fleet:
        fleet["payment-1"].fail_with = 500     # an outage, mid-demo
        ...
    # every instance deregistered and stopped, even if the body raised
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AsyncExitStack
from types import TracebackType

from meshgate.demos.backends.demo_service import DemoService
from meshgate.demos.backends.service_spec import ServiceSpec
from meshgate.discovery.backends.protocol import RegistryBackend

# Far longer than any demo runs: these instances do not heartbeat.
_LEASE_SECONDS = 600.0


class ServiceFleet:
    """The instances of `specs`, by instance id; registered in `registry`
    (when given) from start to stop."""

    def __init__(
        self,
        specs: Iterable[ServiceSpec],
        registry: RegistryBackend | None = None,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        self.registry = registry
        self._services: dict[str, DemoService] = {}
        for spec in specs:
            if spec.instance in self._services:
                raise ValueError(f"instance id {spec.instance!r} is used twice")
            self._services[spec.instance] = DemoService(spec, host=host)
        self._stack: AsyncExitStack | None = None

    def __getitem__(self, instance: str) -> DemoService:
        return self._services[instance]

    def __iter__(self) -> Iterator[DemoService]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    def of(self, service: str) -> list[DemoService]:
        """The instances of `service`, in the order they were given."""
        return [s for s in self._services.values() if s.spec.service == service]

    async def __aenter__(self) -> ServiceFleet:
        async with AsyncExitStack() as stack:
            for service in self._services.values():
                await service.start()
                stack.push_async_callback(service.stop)
                if self.registry is not None:
                    await self.registry.register(service.as_instance(), ttl=_LEASE_SECONDS)
                    stack.push_async_callback(
                        self.registry.deregister, service.spec.service, service.name
                    )
            # All started: keep the cleanups for __aexit__ instead of running them now.
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
