"""Service discovery, measured with real parts: a real nats-server (JetStream
in a temp dir), a registry node as a separate process (`meshgate registry`),
and `DiscoveryClient`s in other processes that report what they see.

Run: `.venv/bin/python benchmarks/discovery.py [--quick] [--backend nats-kv|memory]
[--sweep-interval SECONDS]` (under a minute; `--quick` shrinks every loop for
a smoke run).

What it prints, one table per question of the discovery issue:

1. Registration → visible in a second process's `DiscoveryClient` cache.
   Registrations are sent one after the other from this process; three
   watcher processes each hold an entered `DiscoveryClient` (fed by registry
   events) and stamp the moment its `instance:up` handler runs, i.e. the
   moment the instance is in their cache. Both ends read `time.monotonic()`,
   which on Linux is one system-wide clock (CLOCK_MONOTONIC), so the
   difference between processes is meaningful. Measured with the registry
   nearly empty, and again once it holds the 10,000 instances of (3).
2. Heartbeats stop → `expired` event at every subscriber. Instances with a
   short lease heartbeat a few times, then stop, staggered so that the stops
   fall at every phase of the registry's sweep. The delay runs from the
   moment the last heartbeat was sent to the moment each watcher hears
   `expired`, and is compared with the lease (TTL). Also measured twice.
3. 10,000 instances of 100 services: resident memory (VmRSS) of the registry
   node and of nats-server before and after registering them, and the node's
   CPU use once idle; the memory a `DiscoveryClient` cache holding all of
   them takes (tracemalloc); and the cost of one `get_instance` call per
   strategy, best of 5 runs.
4. Load-balancer distribution over 100,000 picks: chi-square and the largest
   deviation from the expected share, per strategy; weighted round-robin
   against its weights; the clients ip-hash moves when an instance is added.

Every loop is bounded, and randomness is seeded where the strategy lets it.
The numbers are only as quiet as the machine: other busy processes show up
as a longer tail in (1) and (2).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from meshgate.bus.connection import Bus
from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import RegistryEvent
from meshgate.bus.nats_server import NatsServer, local_nats_server
from meshgate.discovery import DiscoveryClient
from meshgate.discovery.backends.bus_client import RegistryClient, RegistryUnavailableError
from meshgate.discovery.balancers import create_balancer
from meshgate.logs import configure_logging

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]

WATCHERS = 3
TTL = 2.0  # the lease of the instances whose expiry is timed, seconds
STRATEGIES = (
    "round-robin",
    "random",
    "least-connections",
    "weighted-round-robin",
    "ip-hash",
    "zone-aware",
    "p2c",
)
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass(frozen=True)
class Sizes:
    registrations: int
    expiring: int
    services: int
    per_service: int
    calls: int
    picks: int


FULL = Sizes(
    registrations=1_000, expiring=30, services=100, per_service=100, calls=100_000, picks=100_000
)
QUICK = Sizes(
    registrations=200, expiring=6, services=20, per_service=100, calls=20_000, picks=20_000
)


# --- small helpers ------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid`, KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def nats_server_pid(server: NatsServer) -> int | None:
    """The pid of `server`'s process: the one whose command line names its work dir."""
    log_file = server.log_file
    if log_file is None:
        return None
    marker = str(log_file.parent).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    return None


def instance(service: str, number: int, *, zone: str | None = None) -> ServiceInstance:
    return ServiceInstance(
        id=f"{service}-{number:05d}",
        name=service,
        host=f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}",
        port=8000 + number % 1000,
        zone=zone or ZONES[number % len(ZONES)],
        tags=("api", f"v{1 + number % 2}"),
        metadata={"version": f"{1 + number % 2}.0.0", "weight": 1 + number % 4},
    )


async def in_parallel(jobs: Sequence[Callable[[], Awaitable[None]]], width: int) -> None:
    """Run `jobs` with at most `width` at a time."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    async with anyio.create_task_group() as tg:
        for _ in range(min(width, len(jobs))):
            tg.start_soon(worker)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print()


# --- the watcher process -------------------------------------------------------------


async def watcher(nats_url: str, prefix: str, services: list[str]) -> None:
    """Hold an entered `DiscoveryClient` with `services` cached, and print
    ``up ID T`` when an instance enters the cache and ``expired ID T`` when an
    expired event arrives, T being `time.monotonic()`."""
    out = sys.stdout

    def report(kind: str, instance_id: str) -> None:
        out.write(f"{kind} {instance_id} {time.monotonic():.6f}\n")
        out.flush()

    async def on_event(event: RegistryEvent) -> None:
        if event.kind == "expired":
            report("expired", event.instance.id)

    async with await Bus.connect(nats_url, prefix=prefix) as bus:
        registry = RegistryClient(bus, timeout=5.0)
        client = DiscoveryClient(registry)
        client.on("instance:up", lambda i: report("up", i.id))
        async with client:
            subscription = await registry.watch(on_event)
            for service in services:
                await client.get_instances(service)  # cached: events now apply to it
            await bus.flush()
            report("ready", "-")
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    await subscription.unsubscribe()


@dataclass
class Watcher:
    """A watcher process and what it has reported: kind → instance id → time."""

    process: anyio.abc.Process
    seen: dict[str, dict[str, float]] = field(default_factory=lambda: {"up": {}, "expired": {}})
    ready: anyio.Event = field(default_factory=anyio.Event)

    async def read(self) -> None:
        assert self.process.stdout is not None
        lines = BufferedByteReceiveStream(self.process.stdout)
        try:
            while True:
                kind, instance_id, at = (await lines.receive_until(b"\n", 4096)).decode().split()
                if kind == "ready":
                    self.ready.set()
                else:
                    self.seen[kind][instance_id] = float(at)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            return


async def until(condition: Callable[[], bool], limit: float, what: str) -> None:
    """Wait up to `limit` seconds for `condition`; say so on stderr if it never holds."""
    with anyio.move_on_after(limit):
        # Polled: the condition spans what three reader tasks have collected.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)
    if not condition():
        print(f"  (gave up waiting after {limit:g} s for {what})", file=sys.stderr)


# --- 1. registration → visible --------------------------------------------------------


async def registration_latency(
    registry: RegistryClient,
    watchers: list[Watcher],
    numbers: range,
    services: list[str],
    stored: str,
) -> list[object]:
    """Register `numbers` one after another; the table row of what it took."""
    sent: dict[str, float] = {}
    replied: list[float] = []
    for number in numbers:
        registration = instance(services[number % len(services)], number)
        start = time.monotonic()
        sent[registration.id] = start
        await registry.register(registration, ttl=600)
        replied.append((time.monotonic() - start) * 1000)
    await until(
        lambda: all(id_ in w.seen["up"] for w in watchers for id_ in sent),
        30,
        "every registration to reach every watcher",
    )
    per_watcher = [
        [(w.seen["up"][id_] - at) * 1000 for id_, at in sent.items() if id_ in w.seen["up"]]
        for w in watchers
    ]
    pooled = [delay for delays in per_watcher for delay in delays]
    worst_p99 = max(percentile(delays, 0.99) for delays in per_watcher if delays)
    return [
        stored,
        len(sent),
        f"{statistics.median(replied):.2f}",
        f"{percentile(replied, 0.99):.2f}",
        f"{statistics.median(pooled):.2f}",
        f"{percentile(pooled, 0.99):.2f}",
        f"{max(pooled):.2f}",
        f"{worst_p99:.2f}",
    ]


def print_registration_table(rows: list[list[object]]) -> None:
    print(
        f"1. Registration → visible in the cache of {WATCHERS} other processes' "
        "`DiscoveryClient`s (registrations sent one after another; ms)\n"
    )
    table(
        [
            "instances already stored",
            "registrations",
            "reply p50",
            "reply p99",
            "visible p50",
            "visible p99",
            "visible max",
            "worst watcher's p99",
        ],
        rows,
    )


# --- 2. heartbeats stop → expired ------------------------------------------------------


async def expiry(
    registry: RegistryClient,
    watchers: list[Watcher],
    count: int,
    ttl: float,
    service: str,
    stored: str,
) -> list[object]:
    """`count` instances heartbeat, then stop; the table row of how long
    each watcher took to hear `expired`, from the last heartbeat sent."""
    last_beat: dict[str, float] = {}
    beats = 3
    interval = ttl / 4

    async def keep_alive(number: int) -> None:
        registration = instance(service, number)
        # Staggered starts: the stops fall at every phase of the sweep.
        await anyio.sleep(number / count)
        await registry.register(registration, ttl=ttl)
        last_beat[registration.id] = time.monotonic()
        for _ in range(beats):
            await anyio.sleep(interval)
            sent = time.monotonic()
            renewed = await registry.heartbeat(service, registration.id)
            assert renewed is not None, f"{registration.id} expired while heartbeating"
            last_beat[registration.id] = sent

    async with anyio.create_task_group() as tg:
        for number in range(count):
            tg.start_soon(keep_alive, number)
    await until(
        lambda: all(id_ in w.seen["expired"] for w in watchers for id_ in last_beat),
        ttl + 10,
        "every expired event",
    )
    delays = [
        w.seen["expired"][id_] - at
        for w in watchers
        for id_, at in last_beat.items()
        if id_ in w.seen["expired"]
    ]
    heard = len(delays)
    within = sum(1 for delay in delays if delay <= ttl + 1.0)
    return [
        stored,
        f"{heard} of {count} × {len(watchers)}",
        f"{min(delays):.3f}",
        f"{statistics.median(delays):.3f}",
        f"{percentile(delays, 0.99):.3f}",
        f"{max(delays):.3f}",
        f"{within} of {heard}",
    ]


def print_expiry_table(rows: list[list[object]], ttl: float, sweep_interval: float) -> None:
    print(
        f"2. Heartbeats stop → `expired` event at each of {WATCHERS} subscriber processes "
        f"(lease {ttl:g} s, registry sweep every {sweep_interval:g} s; seconds from the "
        "last heartbeat sent)\n"
    )
    table(
        [
            "instances already stored",
            "events heard",
            "min",
            "p50",
            "p99",
            "max",
            f"within TTL + 1 s = {ttl + 1:g} s",
        ],
        rows,
    )


# --- 3. 10,000 instances: memory and get_instance ----------------------------------------


@dataclass
class Load:
    """What registering the load took, and the memory rows it gave."""

    total: int
    rate: float
    rows: list[list[object]]
    idle_cpu: float = 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of the file, 12 and 13 after the name
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_row(what: str, before: int, after: int, total: int) -> list[object]:
    return [
        what,
        f"{before / 1024:.1f}",
        f"{after / 1024:.1f}",
        f"{(after - before) / 1024:.1f}",
        f"{(after - before) * 1024 / total:,.0f}",
    ]


async def load(
    registry: RegistryClient,
    registry_pid: int,
    nats_pid: int | None,
    sizes: Sizes,
    services: list[str],
) -> Load:
    """Register `sizes.services` × `sizes.per_service` instances, 32 at a time;
    the registry node's and nats-server's memory before and after, and the
    node's CPU use once idle (its lease sweeps)."""
    total = sizes.services * sizes.per_service
    await anyio.sleep(1.5)  # a sweep or two, so the baseline is settled
    node_before = rss_kib(registry_pid)
    nats_before = rss_kib(nats_pid) if nats_pid else None
    jobs: list[Callable[[], Awaitable[None]]] = []
    for service_index, service in enumerate(services):
        for number in range(sizes.per_service):
            registration = instance(service, service_index * sizes.per_service + number)

            async def register(registration: ServiceInstance = registration) -> None:
                await registry.register(registration, ttl=600)

            jobs.append(register)
    start = time.monotonic()
    await in_parallel(jobs, width=32)
    elapsed = time.monotonic() - start
    await anyio.sleep(2.5)  # let sweeps run over the full bucket
    rows = [memory_row("registry node (VmRSS)", node_before, rss_kib(registry_pid), total)]
    if nats_pid is not None and nats_before is not None:
        rows.append(memory_row("nats-server (VmRSS)", nats_before, rss_kib(nats_pid), total))
    idle_from, idle_window = cpu_seconds(registry_pid), 5.0
    await anyio.sleep(idle_window)
    idle_cpu = (cpu_seconds(registry_pid) - idle_from) / idle_window
    return Load(total=total, rate=total / elapsed, rows=rows, idle_cpu=idle_cpu)


async def cache_memory(
    registry: RegistryClient, services: list[str], loaded: Load, sizes: Sizes
) -> DiscoveryClient:
    """Fill a `DiscoveryClient` with every service and print the memory table;
    returns the client."""
    # The client's cache: what stays allocated once every service is read.
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    client = DiscoveryClient(registry, zone=ZONES[0])
    for service in services:
        await client.get_instances(service)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows: list[list[object]] = [
        *loaded.rows,
        [
            "DiscoveryClient cache (tracemalloc)",
            "-",
            "-",
            f"{(after - before) / 1024 / 1024:.1f}",
            f"{(after - before) / loaded.total:,.0f}",
        ],
    ]
    print(
        f"3a. Memory for {loaded.total:,} instances of {sizes.services} services "
        f"(registered at {loaded.rate:,.0f}/s, 32 in flight; the registry node then "
        f"uses {loaded.idle_cpu * 100:.1f}% of a core while idle, sweeping leases)\n"
    )
    table(["memory", "before MiB", "after MiB", "added MiB", "bytes per instance"], rows)
    return client


async def get_instance_cost(client: DiscoveryClient, service: str, calls: int) -> None:
    ips = [f"198.51.{n // 256}.{n % 256}" for n in range(1024)]
    get = client.get_instance

    async def bare(name: str, strategy: str, *, client_ip: str | None = None) -> None:
        return None

    async def loop_of(call: Callable[..., Awaitable[object]], strategy: str, n: int) -> None:
        if strategy == "ip-hash":
            for k in range(n):
                await call(service, strategy, client_ip=ips[k & 1023])
        else:
            for _ in range(n):
                await call(service, strategy)

    async def best(call: Callable[..., Awaitable[object]], strategy: str) -> float:
        await loop_of(call, strategy, min(calls, 2_000))  # build rings, warm caches
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            await loop_of(call, strategy, calls)
            runs.append(time.perf_counter() - start)
        return min(runs) / calls * 1e6

    rows: list[list[object]] = []
    async with client:  # watching, as a gateway's client is: no age checks
        loop_cost = await best(bare, "round-robin")
        for strategy in STRATEGIES:
            total = await best(get, strategy)
            rows.append(
                [
                    strategy,
                    f"{total:.2f}",
                    f"{total - loop_cost:.2f}",
                    "yes" if total < 2.0 else "no",
                ]
            )
    print(
        f"3b. `await client.get_instance(service, strategy)` on a service of "
        f"{len(await client.get_instances(service))} instances, best of 5 × {calls:,} calls "
        f"(the loop and an awaited no-op cost {loop_cost:.2f} µs)\n"
    )
    table(["strategy", "µs per call", "µs beyond the loop", "under 2 µs"], rows)


# --- 4. distribution ---------------------------------------------------------------------


def chi_square(counts: Sequence[int], expected: Sequence[float]) -> float:
    return sum((c - e) ** 2 / e for c, e in zip(counts, expected, strict=True) if e > 0)


def fleet(size: int) -> tuple[ServiceInstance, ...]:
    # Even positions in zone-a, odd in zone-b; weights 1..5.
    return tuple(
        ServiceInstance(
            id=f"i{n:02d}",
            name="svc",
            host=f"10.0.0.{n}",
            port=8000,
            zone="zone-a" if n % 2 == 0 else "zone-b",
            metadata={"weight": 1 + n % 5},
        )
        for n in range(size)
    )


def picks_of(strategy: str, instances: tuple[ServiceInstance, ...], picks: int) -> Counter[str]:
    """`picks` picks; load-aware strategies see 16 requests in flight, each
    ending at a random later moment (seeded), as on equal instances."""
    rng = random.Random(7)
    options: dict[str, Any] = {}
    if strategy in ("random", "p2c"):
        options["rng"] = random.Random(11)
    if strategy == "zone-aware":
        options["zone"] = "zone-a"
    balancer = create_balancer(strategy, **options)
    counts: Counter[str] = Counter()
    in_flight: list[ServiceInstance] = []
    for k in range(picks):
        ip = f"{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}.7" if strategy == "ip-hash" else None
        chosen = balancer.pick(instances, client_ip=ip)
        assert chosen is not None
        counts[chosen.id] += 1
        balancer.on_start(chosen)
        in_flight.append(chosen)
        if len(in_flight) > 16:
            done = in_flight.pop(rng.randrange(len(in_flight)))
            balancer.on_finish(done, 0.01, True, k / 1000)
    return counts


def distribution(picks: int) -> None:
    size = 10
    instances = fleet(size)
    rows: list[list[object]] = []
    for strategy in STRATEGIES:
        counts = picks_of(strategy, instances, picks)
        if strategy == "weighted-round-robin":
            weights = [i.weight for i in instances]
            shares = [w / sum(weights) for w in weights]
            basis = "weights 1..5"
        elif strategy == "zone-aware":
            local = [1.0 if i.zone == "zone-a" else 0.0 for i in instances]
            shares = [x / sum(local) for x in local]
            basis = "even over the 5 in its zone, none elsewhere"
        else:
            shares = [1 / size] * size
            basis = "even over 10"
        observed = [counts[i.id] for i in instances]
        expected = [share * picks for share in shares]
        chi2 = chi_square(observed, expected)
        df = sum(1 for e in expected if e > 0) - 1
        deviation = max(
            abs(o - e) / e * 100 for o, e in zip(observed, expected, strict=True) if e > 0
        )
        outside = sum(o for o, e in zip(observed, expected, strict=True) if e == 0)
        note = basis if not outside else f"{basis}; {outside} picks outside the zone"
        rows.append([strategy, f"{chi2:.1f}", df, f"{deviation:.2f}%", note])
    print(f"4a. Distribution over {picks:,} picks among {size} instances\n")
    table(["strategy", "chi²", "df", "largest deviation from expected", "expected"], rows)
    ip_hash_moves(instances, picks)


def ip_hash_moves(instances: tuple[ServiceInstance, ...], clients: int) -> None:
    ips = [f"{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}.9" for k in range(clients)]
    rows: list[list[object]] = []
    for size in (3, 5, 10):
        before_set = instances[:size]
        added = ServiceInstance(id="new", name="svc", host="10.0.1.1", port=8000)
        balancer = create_balancer("ip-hash")
        before = [balancer.pick(before_set, client_ip=ip) for ip in ips]
        after = [balancer.pick((*before_set, added), client_ip=ip) for ip in ips]
        moved = [(b, a) for b, a in zip(before, after, strict=True) if b is not a]
        to_new = sum(1 for _, a in moved if a is added)
        fraction = len(moved) / clients * 100
        limit = (1 / size + 0.02) * 100
        rows.append(
            [
                f"{size} → {size + 1}",
                f"{fraction:.2f}%",
                f"{100 / (size + 1):.2f}%",
                f"{limit:.2f}%",
                "yes" if fraction <= limit else "no",
                f"{to_new / max(len(moved), 1) * 100:.0f}%",
            ]
        )
    print(f"4b. ip-hash: clients moved when an instance is added ({clients:,} client addresses)\n")
    table(
        ["instances", "moved", "ideal 1/(n+1)", "goal ≤ 1/n + 2%", "met", "moved to the new one"],
        rows,
    )


# --- the run --------------------------------------------------------------------------------


async def until_served(registry: RegistryClient) -> None:
    with anyio.fail_after(20):
        while True:
            try:
                await registry.get_services()
            except RegistryUnavailableError:
                await anyio.sleep(0.1)
            else:
                return


async def start_watcher(
    url: str, prefix: str, services: list[str], tg: anyio.abc.TaskGroup
) -> Watcher:
    command = [
        sys.executable,
        str(SCRIPT),
        "--watch",
        url,
        "--prefix",
        prefix,
        "--services",
        ",".join(services),
    ]
    process = await anyio.open_process(command, cwd=REPO, stderr=None)
    watching = Watcher(process)
    tg.start_soon(watching.read)
    return watching


async def stop(process: anyio.abc.Process) -> None:
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run(sizes: Sizes, backend: str, sweep_interval: float) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    async with local_nats_server() as nats:
        assert nats.log_file is not None
        node_log = nats.log_file.parent / "registry.log"
        command = [
            sys.executable,
            "-m",
            "meshgate.cli",
            "registry",
            "--nats",
            nats.url,
            "--backend",
            backend,
            "--prefix",
            prefix,
            "--sweep-interval",
            str(sweep_interval),
        ]
        with node_log.open("wb") as log:
            node = await anyio.open_process(command, cwd=REPO, stdout=log, stderr=log)
        print(
            f"nats-server {nats.version} at {nats.url}; registry node pid {node.pid} "
            f"(`meshgate registry --backend {backend}`); Python {sys.version.split()[0]}\n"
        )
        try:
            async with await Bus.connect(nats.url, prefix=prefix) as bus:
                registry = RegistryClient(bus, timeout=10.0)
                await until_served(registry)
                warm_up = 50
                for number in range(warm_up):  # first-use costs (bucket, consumers) not measured
                    await registry.register(instance("warm-up", number), ttl=600)
                latency_services = [f"latency-{n}" for n in range(10)]
                services = [f"svc-{n:03d}" for n in range(sizes.services)]
                first = range(sizes.registrations)
                later = range(sizes.registrations, sizes.registrations + sizes.registrations // 5)
                small = f"{warm_up + len(first):,}"
                large = f"{warm_up + len(first) + sizes.services * sizes.per_service:,}"
                registrations: list[list[object]] = []
                expiries: list[list[object]] = []
                async with anyio.create_task_group() as tg:
                    watchers = [
                        await start_watcher(nats.url, prefix, latency_services, tg)
                        for _ in range(WATCHERS)
                    ]
                    with anyio.fail_after(30):
                        for watching in watchers:
                            await watching.ready.wait()
                    registrations.append(
                        await registration_latency(
                            registry, watchers, first, latency_services, small
                        )
                    )
                    expiries.append(
                        await expiry(registry, watchers, sizes.expiring, TTL, "expiring-1", small)
                    )
                    loaded = await load(registry, node.pid, nats_server_pid(nats), sizes, services)
                    registrations.append(
                        await registration_latency(
                            registry, watchers, later, latency_services, large
                        )
                    )
                    expiries.append(
                        await expiry(registry, watchers, sizes.expiring, TTL, "expiring-2", large)
                    )
                    for watching in watchers:
                        await stop(watching.process)
                    tg.cancel_scope.cancel()
                print_registration_table(registrations)
                print_expiry_table(expiries, TTL, sweep_interval)
                client = await cache_memory(registry, services, loaded, sizes)
                await get_instance_cost(client, services[0], sizes.calls)
        finally:
            await stop(node)
    distribution(sizes.picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shrink every loop (a smoke run)")
    parser.add_argument("--backend", default="nats-kv", choices=("nats-kv", "memory"))
    parser.add_argument(
        "--sweep-interval",
        type=float,
        default=0.5,
        help="the registry node's --sweep-interval (default: its own default, %(default)s s)",
    )
    # The watcher role: this script started again as a second process.
    parser.add_argument("--watch", metavar="NATS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--services", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("warning")
    if args.watch:
        anyio.run(watcher, args.watch, args.prefix, args.services.split(","), backend="asyncio")
        return
    sizes = QUICK if args.quick else FULL
    anyio.run(run, sizes, args.backend, args.sweep_interval, backend="asyncio")


if __name__ == "__main__":
    main()
