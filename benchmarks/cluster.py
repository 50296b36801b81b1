"""N gateway replicas as one gateway, measured: how fast an open circuit
reaches the other replicas, and how close a route's rate limit holds for the
whole cluster.

Run: `.venv/bin/python benchmarks/cluster.py [--quick]` (about 40 s; `--quick`
about 20 s). Everything runs on a private nats-server (JetStream in a temp
dir) on loopback.

1. Circuit adoption. Three gateway replicas as real processes
   (`python -m gateway_node`, JSON logs to files). Each trial sends failing
   requests to gw-a until its breaker opens (3 failures), then resets it
   through gw-a's admin API (the reset reaches the others too). The delay of
   a replica is the time from gw-a's transition (the `at` of its
   `CircuitEvent`, stamped in the breaker's hook) to that replica's
   ``circuit.adopted`` log line for the same generation. Both are the wall
   clock of one machine.
2. Cluster-wide rate limit. 1, 2 and 4 replicas in this process, each with
   its own NATS connection, presence and `RateShare` (reports every 0.5 s);
   traffic is paced calls of each replica's `KeyedRateLimit.check` (what the
   proxy calls per request) at 2.5x the limit, skewed 90/10 (the first
   replica takes 90%, the others share the rest) or even. After a warm-up
   (start-up settle and a few report rounds), the admitted requests are
   compared with the limit over the measured time.

Numbers are only as quiet as the machine: other busy processes lengthen the
adoption tail.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
import anyio.abc
import httpx

from gateway_node.presence import PeerTable, announce_presence, watch_presence
from gateway_node.rate_share import RateShare
from meshgate.bus.connection import Bus
from meshgate.bus.messages import CircuitEvent, Presence
from meshgate.bus.nats_server import NatsServer
from meshgate.gateway.keyed_rate_limit import KeyedRateLimit
from meshgate.gateway.server import GatewayServer
from meshgate.logs import configure_logging

REPO = Path(__file__).resolve().parents[1]
REPLICAS = ("gw-a", "gw-b", "gw-c")
LIMIT = 200  # per second, for the cluster
OFFERED = 2.5 * LIMIT


@dataclass(frozen=True)
class Sizes:
    trials: int
    warm_up: float
    measured: float


FULL = Sizes(trials=50, warm_up=2.0, measured=5.0)
QUICK = Sizes(trials=15, warm_up=1.5, measured=2.5)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- 1. circuit adoption ------------------------------------------------------------


async def failing_upstream(
    *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    """An HTTP/1.1 server that answers every request 500, keeping the connection."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        task_status.started(server.sockets[0].getsockname()[1])
        await anyio.sleep_forever()


@asynccontextmanager
async def gateway_process(
    replica_id: str, config: Path, nats_url: str, prefix: str, log_file: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    port, admin_port = free_port(), free_port()
    args = [
        *("-m", "gateway_node", "--config", str(config)),
        *("--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}"),
        *("--nats", nats_url, "--prefix", prefix, "--replica-id", replica_id),
    ]
    with log_file.open("ab") as log:
        process = await anyio.open_process(
            [sys.executable, *args], cwd=REPO, stdout=log, stderr=log
        )
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as proxy,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_port}", timeout=5.0) as admin,
        ):
            with anyio.fail_after(30):
                while True:
                    try:
                        if (await admin.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await anyio.sleep(0.1)
            yield proxy, admin
    finally:
        if process.returncode is None:
            process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()


def adoptions(log_file: Path) -> dict[int, float]:
    """generation -> wall time of the replica's ``circuit.adopted`` of an open circuit."""
    found: dict[int, float] = {}
    for line in log_file.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "circuit.adopted" and entry.get("to_state") == "open":
            found[int(entry["generation"])] = datetime.fromisoformat(entry["timestamp"]).timestamp()
    return found


async def circuit_adoption(nats_url: str, workdir: Path, trials: int) -> None:
    prefix = f"b{uuid.uuid4().hex[:8]}"
    opened: dict[int, float] = {}
    heard: set[str] = set()

    async def on_circuit(event: CircuitEvent) -> None:
        if event.replica == "gw-a" and event.to_state == "open":
            opened[event.generation] = event.at

    async def on_presence(presence: Presence) -> None:
        heard.add(presence.replica_id)

    async with AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        upstream = await tg.start(failing_upstream)
        config = workdir / "gateway.toml"
        config.write_text(
            "[[routes]]\n"
            'name = "pay"\n'
            'path = "/pay/**"\n'
            f'upstreams = ["127.0.0.1:{upstream}"]\n'
            "[routes.circuit_breaker]\n"
            "failure_threshold = 3\n"
            'reset_timeout = "60s"\n'
            "[routes.retry]\n"
            "max_attempts = 1\n"
        )
        bus = await stack.enter_async_context(await Bus.connect(nats_url, prefix=prefix))
        await bus.subscribe(bus.subjects.all_circuit_events, CircuitEvent, on_circuit)
        await bus.subscribe(bus.subjects.presence, Presence, on_presence)
        logs = {rid: workdir / f"{rid}.log" for rid in REPLICAS}
        clients = [
            await stack.enter_async_context(
                gateway_process(rid, config, nats_url, prefix, logs[rid])
            )
            for rid in REPLICAS
        ]
        with anyio.fail_after(15):
            while heard < set(REPLICAS):  # noqa: ASYNC110 - filled by a subscription
                await anyio.sleep(0.05)
        await anyio.sleep(2.5)  # a presence round: every replica knows the others
        proxy_a, admin_a = clients[0]
        for _ in range(trials):
            for _ in range(3):
                await proxy_a.get("/pay/x")
            await anyio.sleep(0.05)
            await admin_a.post("/admin/circuits", params={"route": "pay", "action": "reset"})
            await anyio.sleep(0.05)
        await anyio.sleep(0.5)

    rows = []
    per_trial: dict[int, list[float]] = {}
    for rid in REPLICAS[1:]:
        adopted = adoptions(logs[rid])
        delays = [
            (adopted[generation] - at) * 1000
            for generation, at in opened.items()
            if generation in adopted
        ]
        for generation, at in opened.items():
            if generation in adopted:
                per_trial.setdefault(generation, []).append((adopted[generation] - at) * 1000)
        rows.append(_delay_row(f"gw-a -> {rid}", delays, len(opened)))
    everywhere = [max(d) for d in per_trial.values() if len(d) == len(REPLICAS) - 1]
    rows.append(_delay_row("gw-a -> both", everywhere, len(opened)))
    print(f"1. Circuit opened on gw-a, adopted by the other replica processes ({trials} trials)\n")
    table(["", "adopted", "p50 ms", "p99 ms", "max ms", "mean ms"], rows)


def _delay_row(label: str, delays: Sequence[float], trials: int) -> list[object]:
    if not delays:
        return [label, f"0/{trials}", "-", "-", "-", "-"]
    return [
        label,
        f"{len(delays)}/{trials}",
        f"{percentile(delays, 0.50):.2f}",
        f"{percentile(delays, 0.99):.2f}",
        f"{max(delays):.2f}",
        f"{statistics.fmean(delays):.2f}",
    ]


# --- 2. cluster-wide rate limit -------------------------------------------------------


CONFIG = {
    "routes": [
        {
            "name": "orders",
            "path": "/orders/**",
            "upstreams": ["127.0.0.1:9"],
            "rate_limit": {"max": LIMIT, "window": "1s", "key": "route"},
        }
    ]
}


@asynccontextmanager
async def limited_replica(
    nats_url: str, prefix: str, replica_id: str
) -> AsyncIterator[KeyedRateLimit]:
    async with AsyncExitStack() as stack:
        bus = await stack.enter_async_context(
            await Bus.connect(nats_url, prefix=prefix, name=replica_id)
        )
        gateway = GatewayServer.from_config(CONFIG)
        peers = PeerTable(ttl=6.0)
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(watch_presence, bus, peers)

        def presence(leaving: bool) -> Presence:
            return Presence(replica_id=replica_id, address="-", started_at=0.0, leaving=leaving)

        tg.start_soon(functools.partial(announce_presence, bus, presence, interval=0.2))
        await tg.start(RateShare(bus, gateway, replica_id, peers, interval=0.5).run)
        runtime = gateway.route_runtime("orders")
        assert runtime is not None
        assert runtime.rate_limit is not None
        yield runtime.rate_limit.limit


async def offer(
    limit: KeyedRateLimit, rate: float, start: float, sizes: Sizes, admitted: list[int], index: int
) -> None:
    sent = 0
    end = start + sizes.warm_up + sizes.measured
    while (now := time.monotonic()) < end:
        due = int((now - start) * rate)
        while sent < due:
            if limit.check("", now).admitted and now >= start + sizes.warm_up:
                admitted[index] += 1
            sent += 1
        await anyio.sleep(0.005)


def spread(replicas: int, skew: str) -> list[float]:
    if replicas == 1:
        return [1.0]
    if skew == "even":
        return [1.0 / replicas] * replicas
    return [0.9] + [0.1 / (replicas - 1)] * (replicas - 1)


async def rate_accuracy(nats_url: str, sizes: Sizes) -> None:
    rows = []
    for replicas, skew in ((1, "-"), (2, "90/10"), (4, "90/10"), (2, "even"), (4, "even")):
        prefix = f"b{uuid.uuid4().hex[:8]}"
        async with AsyncExitStack() as stack:
            limits = [
                await stack.enter_async_context(limited_replica(nats_url, prefix, f"gw-{n}"))
                for n in range(replicas)
            ]
            await anyio.sleep(0.5)  # presence heard all round
            admitted = [0] * replicas
            start = time.monotonic()
            async with anyio.create_task_group() as tg:
                for index, (limit, part) in enumerate(
                    zip(limits, spread(replicas, skew), strict=True)
                ):
                    tg.start_soon(offer, limit, OFFERED * part, start, sizes, admitted, index)
        expected = LIMIT * sizes.measured
        rows.append(
            [
                replicas,
                skew,
                f"{OFFERED:g}/s",
                sum(admitted),
                f"{expected:g}",
                f"{sum(admitted) / expected:.3f}",
                " / ".join(str(n) for n in admitted),
            ]
        )
    print(
        f"2. Cluster-wide limit of {LIMIT}/s, offered {OFFERED:g}/s for {sizes.warm_up:g} s "
        f"warm-up + {sizes.measured:g} s measured\n"
    )
    table(
        [
            "replicas",
            "skew",
            "offered",
            "admitted",
            "limit x time",
            "admitted / limit",
            "per replica",
        ],
        rows,
    )


async def run(sizes: Sizes) -> None:
    with tempfile.TemporaryDirectory() as workdir, NatsServer() as server:
        await circuit_adoption(server.url, Path(workdir), sizes.trials)
        await rate_accuracy(server.url, sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer trials, shorter runs")
    args = parser.parse_args()
    configure_logging("warning")
    anyio.run(run, QUICK if args.quick else FULL, backend="asyncio")


if __name__ == "__main__":
    main()
