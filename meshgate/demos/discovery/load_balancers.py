"""Load balancers: the six strategies of the reference and power of two
choices, each asked for 1,000 instances of the same four-instance service
while one instance is four times slower than the others. Then the weighted
round-robin order, zone-aware falling back to another zone, and ip-hash
keeping clients where they were when an instance is added.

Every pick goes through `DiscoveryClient.get_instance(name, strategy)` over
an in-process registry, as a gateway or a `ServiceClient` picks.

Run it: ``meshgate demo load-balancers``.
"""

from __future__ import annotations

import heapq
from collections import Counter

import anyio

from meshgate.demos.discovery.printed_log import quiet_logger
from meshgate.discovery import (
    DiscoveryClient,
    InstanceStatus,
    MemoryRegistryBackend,
    ServiceInstance,
)

SERVICE = "user-service"
PICKS = 1_000

# id, zone, weight
FLEET = (("a", "us-east-1", 5), ("b", "us-east-1", 3), ("c", "eu-west-1", 1), ("d", "eu-west-1", 1))
SLOW = "c"
# Simulated request durations, in ticks; one request arrives per tick.
FAST_TICKS, SLOW_TICKS = 3, 12

STRATEGIES = (
    ("round-robin", "in turn, blind to load"),
    ("random", "uniform draws"),
    ("least-connections", "fewest in flight: the slow c gets less"),
    ("weighted-round-robin", "5 : 3 : 1 : 1 by metadata weight"),
    ("ip-hash", "40 clients, each pinned to one instance"),
    ("zone-aware", "own zone us-east-1 only"),
    ("p2c", "less loaded of two random ones"),
)


def client_ip(number: int) -> str:
    return f"203.0.113.{number}"


async def simulate(client: DiscoveryClient, strategy: str) -> tuple[Counter[str], int]:
    """`PICKS` requests, one per tick, each reported to the balancer when it
    starts and ends; returns picks per instance and the most requests ever
    in flight on the slow instance."""
    balancer = client.balancer(SERVICE, strategy)
    running: list[tuple[int, int, ServiceInstance]] = []  # (end tick, sequence, instance)
    counts: Counter[str] = Counter()
    in_flight: Counter[str] = Counter()
    peak_on_slow = 0
    for tick in range(PICKS):
        while running and running[0][0] <= tick:
            _, _, done = heapq.heappop(running)
            in_flight[done.id] -= 1
            duration = SLOW_TICKS if done.id == SLOW else FAST_TICKS
            balancer.on_finish(done, duration / 1000, True, tick / 1000)
        ip = client_ip(tick % 40) if strategy == "ip-hash" else None
        instance = await client.get_instance(SERVICE, strategy, client_ip=ip)
        assert instance is not None
        balancer.on_start(instance)
        counts[instance.id] += 1
        in_flight[instance.id] += 1
        peak_on_slow = max(peak_on_slow, in_flight[SLOW])
        duration = SLOW_TICKS if instance.id == SLOW else FAST_TICKS
        heapq.heappush(running, (tick + duration, tick, instance))
    return counts, peak_on_slow


async def distribution(client: DiscoveryClient) -> None:
    print(f"1. {PICKS:,} requests, one per tick, through each strategy. a and b are in")
    print("   us-east-1 (the client's zone), c and d in eu-west-1; weights 5, 3, 1, 1.")
    print(f"   A request takes {FAST_TICKS} ticks, on c {SLOW_TICKS}: c is the slow instance.")
    ids = [instance_id for instance_id, _, _ in FLEET]
    header = "".join(f"{instance_id:>6}" for instance_id in ids)
    print(f"  {'strategy':<21}{header}   peak in flight on c")
    for strategy, note in STRATEGIES:
        counts, peak = await simulate(client, strategy)
        cells = "".join(f"{counts[instance_id]:>6}" for instance_id in ids)
        print(f"  {strategy:<21}{cells}   {peak:>3}   {note}")


async def weighted_order(client: DiscoveryClient) -> None:
    print()
    print("2. weighted-round-robin is smooth (as in nginx): a's 5 picks of every 10")
    print("   are spread out, not sent in a burst.")
    fresh = DiscoveryClient(client.backend, log=quiet_logger())
    order = []
    for _ in range(20):
        instance = await fresh.get_instance(SERVICE, "weighted-round-robin")
        assert instance is not None
        order.append(instance.id)
    print(f"  {' '.join(order[:10])} | {' '.join(order[10:])}")


async def zone_fallback(backend: MemoryRegistryBackend) -> None:
    print()
    print("3. zone-aware keeps traffic in us-east-1 while it has an UP instance there,")
    print("   and spills to the other zone only when it has none.")
    client = DiscoveryClient(backend, zone="us-east-1", log=quiet_logger())

    async def six_picks(moment: str) -> None:
        await client.refresh(SERVICE)  # the client hears of the change
        chosen = []
        for _ in range(6):
            instance = await client.get_instance(SERVICE, "zone-aware")
            assert instance is not None
            chosen.append(f"{instance.id}({instance.zone})")
        print(f"  {moment:<27} {' '.join(chosen)}")

    await six_picks("all UP:")
    await backend.set_status(SERVICE, "a", InstanceStatus.DOWN)
    await six_picks("a DOWN:")
    await backend.set_status(SERVICE, "b", InstanceStatus.DOWN)
    await six_picks("a and b DOWN (zone empty):")
    await backend.set_status(SERVICE, "a", InstanceStatus.UP)
    await backend.set_status(SERVICE, "b", InstanceStatus.UP)
    await six_picks("back UP:")


async def ip_hash_moves(backend: MemoryRegistryBackend) -> None:
    print()
    print("4. ip-hash: 1,000 clients, each always on the same instance. Adding a fifth")
    print("   instance e moves only the clients e takes over (consistent hashing):")
    print("   about 1/5 of them, where hash-mod-n would move 4/5.")
    client = DiscoveryClient(backend, log=quiet_logger())
    clients = [f"198.51.{n // 256}.{n % 256}" for n in range(1_000)]

    async def placement() -> dict[str, str]:
        await client.refresh(SERVICE)
        placed = {}
        for ip in clients:
            instance = await client.get_instance(SERVICE, "ip-hash", client_ip=ip)
            assert instance is not None
            placed[ip] = instance.id
        return placed

    before = await placement()
    again = await placement()
    print(f"  asked twice, every client got the same instance: {before == again}")
    extra = ServiceInstance(id="e", name=SERVICE, host="10.0.0.5", port=3001, zone="eu-west-1")
    await backend.register(extra, ttl=3600)
    after = await placement()
    moved = [ip for ip in clients if before[ip] != after[ip]]
    destinations = Counter(after[ip] for ip in moved)
    print(
        f"  e added: {len(moved)} of {len(clients)} clients moved ({len(moved) / 10:.1f}%), "
        f"to: {dict(destinations)}"
    )
    await backend.deregister(SERVICE, "e")
    back = await placement()
    print(f"  e removed: every client is back where it was: {back == before}")


async def main() -> None:
    backend = MemoryRegistryBackend()
    for number, (instance_id, zone, weight) in enumerate(FLEET, start=1):
        await backend.register(
            ServiceInstance(
                id=instance_id,
                name=SERVICE,
                host=f"10.0.0.{number}",
                port=3001,
                zone=zone,
                metadata={"weight": weight},
            ),
            ttl=3600,
        )
    client = DiscoveryClient(backend, zone="us-east-1", log=quiet_logger())
    await distribution(client)
    await weighted_order(client)
    await zone_fallback(backend)
    await ip_hash_moves(backend)


if __name__ == "__main__":
    anyio.run(main)
