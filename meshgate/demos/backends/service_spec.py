"""`ServiceSpec`: what one demo instance is — its service, instance id,
version, zone, tags — and how badly it behaves (error rate, latency)."""

from __future__ import annotations

import msgspec

from meshgate.bus.instance import ServiceInstance


class ServiceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One instance of a demo service.

    `error_rate` is the fraction of requests answered 500, drawn from a
    random generator seeded with `seed` (by default the instance id), so a
    demo prints the same story every run. `latency` is seconds added to
    every answer. `tags` go to the registry as they are; `version` and
    `zone` also become `metadata["version"]` and the instance's zone, which
    version routes and canaries select by.

    >>> spec = ServiceSpec(service="user-service", instance="user-v2-1", version="2.0.0",
    ...                    tags=("v2",))
    >>> spec.as_instance("127.0.0.1", 3001).metadata
    {'version': '2.0.0'}
    """

    service: str
    instance: str
    version: str = "1.0.0"
    zone: str = "local"
    tags: tuple[str, ...] = ()
    metadata: dict[str, str | int | float | bool] = {}
    error_rate: float = 0.0
    latency: float = 0.0
    seed: int | str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate={self.error_rate!r} is not allowed: expected 0..1")
        if self.latency < 0:
            raise ValueError(f"latency={self.latency!r} is not allowed: expected >= 0 seconds")

    def as_instance(self, host: str, port: int) -> ServiceInstance:
        """The registration of this instance listening on host:port."""
        return ServiceInstance(
            id=self.instance,
            name=self.service,
            host=host,
            port=port,
            zone=self.zone,
            tags=self.tags,
            metadata={**self.metadata, "version": self.version},
        )
