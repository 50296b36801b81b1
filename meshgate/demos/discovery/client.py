"""Discovery client: find the instances of a service, filter them by zone,
tags, metadata and status, pick one per request, and keep them in a cache
that refreshes with age, reports who came and went, and keeps serving the
last-known instances while the registry is down.

The registry is a `MemoryRegistryBackend` in this process, which the client
polls; with registry nodes on NATS (`RegistryClient`), the client is fed
every change as an event instead and its cache never goes stale by age.

Run it: ``meshgate demo discovery-client``.
"""

from __future__ import annotations

import anyio

from meshgate.demos.discovery.printed_log import quiet_logger
from meshgate.discovery import (
    DiscoveryClient,
    InstanceStatus,
    MemoryRegistryBackend,
    RegistryUnavailableError,
    ServiceInstance,
)

SERVICE = "user-service"


class FlakyRegistry(MemoryRegistryBackend):
    """A memory registry that can be taken down: while `is_down`, reads
    raise ConnectionError, as a registry out of reach would."""

    def __init__(self) -> None:
        super().__init__()
        self.is_down = False
        self.reads = 0

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        self.reads += 1
        if self.is_down:
            raise ConnectionError("registry unreachable")
        return await super().get_instances(service)


def user_instance(
    number: int, zone: str, version: str, status: InstanceStatus = InstanceStatus.UP
) -> ServiceInstance:
    major = version.split(".")[0]
    return ServiceInstance(
        id=f"user-{number}",
        name=SERVICE,
        host="10.0.0." + str(number),
        port=3001,
        zone=zone,
        tags=("api", f"v{major}"),
        metadata={"version": version},
        status=status,
    )


def row(instance: ServiceInstance) -> str:
    tags = ",".join(instance.tags)
    return (
        f"{instance.id:<7} {instance.address:<14} {instance.zone:<10} "
        f"v{instance.version:<6} [{tags}] {instance.status}"
    )


async def filters(client: DiscoveryClient) -> None:
    print("1. Five instances of user-service; the health checker found user-5 DOWN.")
    for instance in await client.get_instances(SERVICE):
        print(f"  {row(instance)}")

    def show(query: str, found: list[ServiceInstance]) -> None:
        print(f"  get_instances({query}): {', '.join(i.id for i in found) or '(none)'}")

    show("zone='us-east-1'", await client.get_instances(SERVICE, zone="us-east-1"))
    show("tags=['v2']", await client.get_instances(SERVICE, tags=["v2"]))
    show(
        "metadata={'version': '2.0.0'}",
        await client.get_instances(SERVICE, metadata={"version": "2.0.0"}),
    )
    show("status='UP'", await client.get_instances(SERVICE, status="UP"))
    show(
        "zone='eu-west-1', tags=['v2']",
        await client.get_instances(SERVICE, zone="eu-west-1", tags=["v2"]),
    )


async def picks(client: DiscoveryClient) -> None:
    print()
    print("2. get_instance picks one UP instance per request (round-robin here);")
    print("   user-5 is DOWN, so it is never picked.")
    chosen = []
    for _ in range(8):
        instance = await client.get_instance(SERVICE, "round-robin")
        assert instance is not None
        chosen.append(instance.id)
    print(f"  8 picks: {' '.join(chosen)}")


async def cache(client: DiscoveryClient, registry: FlakyRegistry) -> None:
    print()
    print("3. The cache (cache_ttl=0.3 s): a new instance registers, but the client")
    print("   answers from its cache until the entry is 0.3 s old, then reads again")
    print("   and says who came and who went (client.on('instance:up' / 'instance:down')).")
    client.on("instance:up", lambda i: print(f"  instance:up   {i.id} ({i.address}, {i.zone})"))
    client.on("instance:down", lambda i: print(f"  instance:down {i.id}"))
    await registry.register(user_instance(6, "us-east-1", "2.0.0"), ttl=30)
    await registry.deregister(SERVICE, "user-1")
    reads = registry.reads
    up = await client.get_instances(SERVICE, status="UP")
    print(f"  at once:      {len(up)} UP: {', '.join(i.id for i in up)} (from the cache)")
    await anyio.sleep(0.35)
    up = await client.get_instances(SERVICE, status="UP")
    print(f"  after 0.35 s: {len(up)} UP: {', '.join(i.id for i in up)}")
    print(f"  registry reads meanwhile: {registry.reads - reads}")
    print("  the health checker finds user-5 healthy again; client.invalidate() makes")
    print("  the next read go to the registry, as a watch event would:")
    await registry.set_status(SERVICE, "user-5", InstanceStatus.UP)
    client.invalidate(SERVICE)  # what a watch event does at once, without waiting
    await client.get_instances(SERVICE)
    stats = client.stats
    print(f"  stats: {stats.cache_hits} cache hits, {stats.refreshes} registry reads")


async def outage(client: DiscoveryClient, registry: FlakyRegistry) -> None:
    print()
    print("4. The registry goes down. The client keeps answering with the instances")
    print("   it last saw (and logs it once), asking again at most every 0.2 s;")
    print("   only a service it has never seen fails.")
    registry.is_down = True
    await anyio.sleep(0.35)  # the cached entry is now old enough to be read again
    for _ in range(3):
        instance = await client.get_instance(SERVICE, "round-robin")
        assert instance is not None
        print(f"  get_instance → {instance.id} (last-known)")
    try:
        await client.get_instance("order-service")
    except RegistryUnavailableError as error:
        print("  get_instance('order-service') → RegistryUnavailableError:")
        print(f"    {error}")
    print("  -- the registry comes back --")
    registry.is_down = False
    await anyio.sleep(0.25)
    up = await client.get_instances(SERVICE, status="UP")
    print(f"  {len(up)} UP: {', '.join(i.id for i in up)}")
    stats = client.stats
    print(
        f"  stats: {stats.stale_serves} stale serves, "
        f"{stats.refresh_failures} failed registry reads"
    )


async def main() -> None:
    registry = FlakyRegistry()
    fleet = [
        user_instance(1, "us-east-1", "1.0.0"),
        user_instance(2, "us-east-1", "2.0.0"),
        user_instance(3, "eu-west-1", "1.0.0"),
        user_instance(4, "eu-west-1", "2.0.0"),
        user_instance(5, "us-east-1", "2.0.0", InstanceStatus.DOWN),
    ]
    for instance in fleet:
        await registry.register(instance, ttl=30)
    client = DiscoveryClient(
        registry,
        cache_ttl=0.3,
        stale_retry_interval=0.2,
        zone="us-east-1",
        log=quiet_logger(),
    )
    await filters(client)
    await picks(client)
    await cache(client, registry)
    await outage(client, registry)


if __name__ == "__main__":
    anyio.run(main)
