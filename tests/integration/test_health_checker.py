"""HealthChecker against real loopback HTTP servers.

The registry is a stand-in served on the bus (it records StatusReports and
answers queries from a dict), so these tests do not depend on the registry
node. Most run on InProcessBus under both anyio backends; one runs over a
real nats-server.
"""

from __future__ import annotations

import itertools
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal

import anyio
import anyio.abc
import pytest
from structlog.testing import capture_logs

from meshgate.bus.connection import Bus
from meshgate.bus.in_process import InProcessBus
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    QueryReply,
    QueryRequest,
    RegistryEvent,
    RegistryEventKind,
    Reply,
    StatusReport,
)
from meshgate.bus.nats_server import NatsServer
from meshgate.bus.protocol import MessageBus
from registry_node.health_checker import HealthChecker
from tests.polling import eventually

pytestmark = pytest.mark.anyio

INTERVAL = 0.05
AT = 1_700_000_000.0

Mode = Literal["ok", "fail", "hang"]


# --- a tiny HTTP responder ----------------------------------------------------


@dataclass
class Hit:
    at: float
    mode: Mode


@dataclass
class HealthEndpoint:
    """A loopback HTTP server whose every request answers as `mode` says:
    200, 500, or never. `hits` records each request as it arrives."""

    port: int
    mode: Mode = "ok"
    hits: list[Hit] = field(default_factory=list)

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = await stream.receive()
                request += chunk
            mode = self.mode
            self.hits.append(Hit(anyio.current_time(), mode))
            if mode == "hang":
                await anyio.sleep_forever()
            status = "200 OK" if mode == "ok" else "500 Internal Server Error"
            await stream.send(
                f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )


def trailing(hits: Sequence[Hit], mode: Mode) -> int:
    """How many of the latest `hits` in a row were answered as `mode`."""
    count = 0
    for hit in reversed(hits):
        if hit.mode != mode:
            break
        count += 1
    return count


@asynccontextmanager
async def health_endpoint(mode: Mode = "ok") -> AsyncIterator[HealthEndpoint]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    endpoint = HealthEndpoint(port=listener.extra(anyio.abc.SocketAttribute.local_port), mode=mode)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        # A probe that gave up closes its end; that is its business.
        with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await endpoint.handle(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield endpoint
        tg.cancel_scope.cancel()


# --- a stand-in registry ------------------------------------------------------


@dataclass
class Report:
    report: StatusReport
    hits: list[Hit]
    """The probes the instance's endpoint had seen when the report came."""


class FakeRegistry:
    """Answers status reports (recording them) and queries (from `instances`)."""

    def __init__(self, endpoints: dict[str, HealthEndpoint] | None = None) -> None:
        self.instances: dict[str, list[ServiceInstance]] = {}
        self.endpoints = endpoints or {}
        self.reports: list[Report] = []
        self._send, self._receive = anyio.create_memory_object_stream[Report](100)

    async def serve(self, bus: MessageBus) -> None:
        await bus.serve(bus.subjects.registry_status, StatusReport, self._on_status)
        await bus.serve(bus.subjects.registry_query, QueryRequest, self._on_query)

    async def _on_status(self, report: StatusReport) -> Reply:
        endpoint = self.endpoints.get(report.instance_id)
        seen = Report(report, list(endpoint.hits) if endpoint else [])
        self.reports.append(seen)
        self._send.send_nowait(seen)
        return Reply(ok=True)

    async def _on_query(self, query: QueryRequest) -> QueryReply:
        return QueryReply(instances=tuple(self.instances.get(query.service, ())))

    async def next_report(self, within: float = 3.0) -> Report:
        with anyio.fail_after(within):
            return await self._receive.receive()


def instance_at(
    endpoint: HealthEndpoint,
    instance_id: str,
    *,
    service: str = "user-service",
    status: InstanceStatus = InstanceStatus.UP,
) -> ServiceInstance:
    return ServiceInstance(
        id=instance_id,
        name=service,
        host="127.0.0.1",
        port=endpoint.port,
        status=status,
        health_check_interval=INTERVAL,
    )


async def announce(bus: MessageBus, kind: RegistryEventKind, instance: ServiceInstance) -> None:
    await bus.publish(
        bus.subjects.registry_events(instance.name),
        RegistryEvent(kind=kind, instance=instance, at=AT),
    )


@asynccontextmanager
async def running(checker: HealthChecker) -> AsyncIterator[HealthChecker]:
    async with anyio.create_task_group() as tg:
        await tg.start(checker.run)
        yield checker
        tg.cancel_scope.cancel()


@asynccontextmanager
async def cluster(
    *endpoints: tuple[str, HealthEndpoint],
) -> AsyncIterator[tuple[InProcessBus, FakeRegistry]]:
    async with InProcessBus() as bus:
        registry = FakeRegistry(dict(endpoints))
        await registry.serve(bus)
        yield bus, registry


# --- tests --------------------------------------------------------------------


async def test_a_failing_instance_is_reported_down_after_exactly_unhealthy_threshold_probes() -> (
    None
):
    async with health_endpoint("fail") as endpoint, cluster(("user-1", endpoint)) as (bus, reg):
        checker = HealthChecker(bus, unhealthy_threshold=3, timeout=1.0)
        with capture_logs() as logs:
            async with running(checker):
                await announce(bus, "registered", instance_at(endpoint, "user-1"))
                seen = await reg.next_report()
    assert seen.report.service == "user-service"
    assert seen.report.instance_id == "user-1"
    assert seen.report.status == InstanceStatus.DOWN
    assert seen.report.reason == "GET /health: 500"
    assert len(seen.hits) == 3
    changed = [entry for entry in logs if entry["event"] == "health.status_changed"]
    assert changed[0]["status"] == "DOWN"
    assert changed[0]["instance_id"] == "user-1"


async def test_a_recovered_instance_is_reported_up_after_exactly_healthy_threshold_successes() -> (
    None
):
    async with health_endpoint("fail") as endpoint, cluster(("user-1", endpoint)) as (bus, reg):
        checker = HealthChecker(bus, unhealthy_threshold=2, healthy_threshold=3, timeout=1.0)
        async with running(checker):
            await announce(bus, "registered", instance_at(endpoint, "user-1"))
            assert (await reg.next_report()).report.status == InstanceStatus.DOWN
            endpoint.mode = "ok"
            seen = await reg.next_report()
            assert seen.report.status == InstanceStatus.UP
            assert trailing(seen.hits, "ok") == 3
            assert len(reg.reports) == 2


async def test_a_starting_instance_is_reported_up_after_healthy_threshold_successes() -> None:
    async with health_endpoint("ok") as endpoint, cluster(("user-1", endpoint)) as (bus, reg):
        checker = HealthChecker(bus, healthy_threshold=2, timeout=1.0)
        async with running(checker):
            starting = instance_at(endpoint, "user-1", status=InstanceStatus.STARTING)
            await announce(bus, "registered", starting)
            seen = await reg.next_report()
    assert seen.report.status == InstanceStatus.UP
    assert len(seen.hits) == 2


async def test_a_healthy_up_instance_is_never_reported() -> None:
    async with (
        health_endpoint("ok") as endpoint,
        cluster(("user-1", endpoint)) as (bus, reg),
        running(HealthChecker(bus, timeout=1.0)),
    ):
        await announce(bus, "registered", instance_at(endpoint, "user-1"))
        await eventually(lambda: len(endpoint.hits) >= 5)
    assert reg.reports == []


async def test_a_hanging_instance_does_not_delay_the_probes_of_a_healthy_one() -> None:
    timeout = 1.0
    async with (
        health_endpoint("hang") as hanging,
        health_endpoint("ok") as healthy,
        cluster(("slow-1", hanging), ("fast-1", healthy)) as (bus, reg),
    ):
        checker = HealthChecker(bus, unhealthy_threshold=1, timeout=timeout)
        async with running(checker):
            await announce(bus, "registered", instance_at(hanging, "slow-1"))
            await announce(bus, "registered", instance_at(healthy, "fast-1"))
            seen = await reg.next_report(within=timeout + 1.0)
            healthy_times = [hit.at for hit in healthy.hits]
    # The hanging one failed by timeout...
    assert seen.report.instance_id == "slow-1"
    assert seen.report.status == InstanceStatus.DOWN
    assert seen.report.reason == "GET /health: no answer within 1s"
    assert len(hanging.hits) == 1
    # ...while the healthy one kept its cadence the whole time.
    assert len(healthy_times) >= int(timeout / INTERVAL * 0.6)
    gaps = [later - earlier for earlier, later in itertools.pairwise(healthy_times)]
    assert max(gaps) < timeout / 4


@pytest.mark.parametrize("kind", ["deregistered", "expired"])
async def test_an_instance_that_left_the_registry_is_no_longer_probed(
    kind: RegistryEventKind,
) -> None:
    async with (
        health_endpoint("ok") as leaving,
        health_endpoint("ok") as staying,
        cluster() as (bus, _),
    ):
        checker = HealthChecker(bus, timeout=1.0)
        async with running(checker):
            await announce(bus, "registered", instance_at(leaving, "user-1"))
            await announce(bus, "registered", instance_at(staying, "user-2"))
            await eventually(lambda: len(leaving.hits) >= 2)
            await announce(bus, kind, instance_at(leaving, "user-1"))
            await eventually(lambda: ("user-service", "user-1") not in checker.watched)
            await anyio.sleep(INTERVAL)  # a request already on the wire may still land
            hits_after_leaving = len(leaving.hits)
            staying_before = len(staying.hits)
            await anyio.sleep(INTERVAL * 6)
            assert len(leaving.hits) == hits_after_leaving
            assert len(staying.hits) >= staying_before + 3
            assert checker.watched == {("user-service", "user-2")}


async def test_instances_of_named_services_are_found_by_querying_the_registry_at_start() -> None:
    async with health_endpoint("fail") as endpoint, cluster(("order-1", endpoint)) as (bus, reg):
        reg.instances["order-service"] = [instance_at(endpoint, "order-1", service="order-service")]
        checker = HealthChecker(bus, services=["order-service"], unhealthy_threshold=2)
        async with running(checker):
            # `start` returns after the first query, so it is watched already
            assert checker.watched == {("order-service", "order-1")}
            seen = await reg.next_report()
    assert (seen.report.service, seen.report.status) == ("order-service", InstanceStatus.DOWN)


async def test_a_rescan_drops_instances_the_registry_no_longer_lists() -> None:
    async with health_endpoint("ok") as endpoint, cluster() as (bus, reg):
        reg.instances["user-service"] = [instance_at(endpoint, "user-1")]
        checker = HealthChecker(bus, services=["user-service"], rescan_interval=INTERVAL)
        async with running(checker):
            assert checker.watched == {("user-service", "user-1")}
            reg.instances["user-service"] = []
            await eventually(lambda: ("user-service", "user-1") not in checker.watched)


async def test_a_status_event_from_the_registry_is_adopted() -> None:
    async with health_endpoint("fail") as endpoint, cluster(("user-1", endpoint)) as (bus, reg):
        checker = HealthChecker(bus, unhealthy_threshold=3, timeout=1.0)
        async with running(checker):
            await announce(bus, "registered", instance_at(endpoint, "user-1"))
            assert (await reg.next_report()).report.status == InstanceStatus.DOWN
            # Someone else marked it UP: the checker starts counting afresh.
            hits_before = len(endpoint.hits)
            await announce(bus, "status", instance_at(endpoint, "user-1"))
            seen = await reg.next_report()
            assert seen.report.status == InstanceStatus.DOWN
            assert len(seen.hits) - hits_before >= 3


async def test_a_report_the_registry_missed_is_sent_again_after_the_next_probe() -> None:
    async with health_endpoint("fail") as endpoint, InProcessBus() as bus:
        checker = HealthChecker(bus, unhealthy_threshold=1, timeout=1.0)
        async with running(checker):
            with capture_logs() as logs:
                await announce(bus, "registered", instance_at(endpoint, "user-1"))
                await eventually(lambda: any(e["event"] == "health.report_failed" for e in logs))
            # the registry comes up only now
            registry = FakeRegistry({"user-1": endpoint})
            await registry.serve(bus)
            seen = await registry.next_report()
    assert seen.report.status == InstanceStatus.DOWN


async def test_an_out_of_service_instance_is_not_probed() -> None:
    async with health_endpoint("ok") as endpoint, cluster() as (bus, _):
        checker = HealthChecker(bus)
        async with running(checker):
            out = instance_at(endpoint, "user-1", status=InstanceStatus.OUT_OF_SERVICE)
            await announce(bus, "registered", out)
            await anyio.sleep(INTERVAL * 3)
            assert checker.watched == frozenset()
    assert endpoint.hits == []


class TestOverNats:
    @pytest.fixture
    def anyio_backend(self) -> str:
        """nats-py runs on asyncio only."""
        return "asyncio"

    async def test_a_failing_instance_is_reported_down_over_a_real_nats_server(
        self, nats_server: NatsServer
    ) -> None:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        async with (
            health_endpoint("fail") as endpoint,
            await Bus.connect(nats_server.url, prefix=prefix, name="registry") as registry_bus,
            await Bus.connect(nats_server.url, prefix=prefix, name="health") as checker_bus,
        ):
            registry = FakeRegistry({"user-1": endpoint})
            await registry.serve(registry_bus)
            checker = HealthChecker(checker_bus, unhealthy_threshold=2, timeout=1.0)
            async with running(checker):
                await announce(registry_bus, "registered", instance_at(endpoint, "user-1"))
                seen = await registry.next_report()
        assert seen.report.status == InstanceStatus.DOWN
        assert len(seen.hits) == 2


# --- the `meshgate health` process ------------------------------------------

_RUN_COMMAND = (
    "import argparse, sys\n"
    "from registry_node.health_command import configure, run\n"
    "parser = argparse.ArgumentParser(prog='meshgate health')\n"
    "configure(parser)\n"
    "sys.exit(run(parser.parse_args(sys.argv[1:])))\n"
)


class TestCommand:
    @pytest.fixture
    def anyio_backend(self) -> str:
        """The process runs on asyncio (nats-py); the test only drives it."""
        return "asyncio"

    async def test_it_exits_2_with_one_line_on_stderr_when_nats_is_unreachable(self) -> None:
        with anyio.fail_after(10):
            done = await anyio.run_process(
                [sys.executable, "-c", _RUN_COMMAND, "--nats", f"nats://127.0.0.1:{free_port()}"],
                check=False,
            )
        assert done.returncode == 2
        lines = done.stderr.decode().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("meshgate health: cannot connect to nats://127.0.0.1:")

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
    async def test_it_exits_0_on_a_stop_signal(
        self, nats_server: NatsServer, signum: signal.Signals
    ) -> None:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        args = ["--nats", nats_server.url, "--prefix", prefix, "--services", "user-service"]
        async with await Bus.connect(nats_server.url, prefix=prefix) as bus:
            asked = anyio.Event()

            async def on_query(query: QueryRequest) -> QueryReply:
                asked.set()  # the checker is up: it asks about --services at start
                return QueryReply()

            await bus.serve(bus.subjects.registry_query, QueryRequest, on_query)
            with anyio.fail_after(10):
                async with await anyio.open_process(
                    [sys.executable, "-c", _RUN_COMMAND, *args]
                ) as process:
                    await asked.wait()
                    process.send_signal(signum)
                    assert await process.wait() == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
