"""Routes changed at runtime on one replica reach every replica through the
route bucket on a real nats-server, and a replica started later finds them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from gateway_node.route_store import RouteStore, route_key
from meshgate.bus.messages import ConfigEvent
from meshgate.bus.nats_server import NatsServer
from meshgate.gateway.config_file import route_config_from_mapping
from tests.integration.cluster.conftest import Parts, Replica, cluster, recorded, replica
from tests.integration.gateway_http.conftest import Backend
from tests.polling import eventually

pytestmark = pytest.mark.anyio

PARTS = Parts(routes=True)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    await server.start()
    yield server
    await server.stop()


def file_config(backend: Backend) -> dict[str, Any]:
    return {
        "routes": [
            {
                "name": "from-file",
                "path": "/file/**",
                "strip_prefix": "/file",
                "upstreams": [f"127.0.0.1:{backend.port}"],
            }
        ]
    }


def orders(backend: Backend, **extra: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "path": "/orders/**",
        "strip_prefix": "/orders",
        "upstreams": [f"127.0.0.1:{backend.port}"],
        **extra,
    }


def serves(member: Replica, name: str) -> bool:
    return member.gateway.route_runtime(name) is not None


async def test_a_route_added_replaced_and_removed_on_one_replica_follows_on_the_others(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    async with cluster(nats_server.url, prefix, ["gw-a", "gw-b"], file_config(backend), PARTS) as (
        a,
        b,
    ):
        events = await recorded(a.bus, a.bus.subjects.config_events, ConfigEvent)
        a.gateway.add_route(orders(backend))
        await eventually(lambda: serves(b, "orders"))
        reply = await b.client.get("/orders/headers")
        assert reply.status_code == 200
        assert reply.json()["target"] == "/headers"

        b.gateway.add_route(orders(backend, methods=["GET"]), replace=True)

        def a_has_get_only() -> bool:
            runtime = a.gateway.route_runtime("orders")
            return runtime is not None and runtime.config.methods == ("GET",)

        await eventually(a_has_get_only)
        assert (await a.client.delete("/orders/x")).status_code == 405

        a.gateway.remove_route("orders")
        await eventually(lambda: not serves(b, "orders"))
        assert (await b.client.get("/orders/x")).status_code == 404

        await eventually(lambda: len(events) == 3)
        assert [(e.kind, e.route) for e in events] == [
            ("added", "orders"),
            ("changed", "orders"),
            ("removed", "orders"),
        ]
        assert events[0].config is not None
        assert events[0].config["path"] == "/orders/**"


async def test_its_own_change_coming_back_from_the_bucket_rebuilds_nothing(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    async with cluster(nats_server.url, prefix, ["gw-a", "gw-b"], file_config(backend), PARTS) as (
        a,
        b,
    ):
        a.gateway.add_route(orders(backend))
        added = a.gateway.route_runtime("orders")
        await eventually(lambda: serves(b, "orders"))
        adopted = b.gateway.route_runtime("orders")
        await anyio.sleep(0.3)
        assert a.gateway.route_runtime("orders") is added
        assert b.gateway.route_runtime("orders") is adopted
        store = RouteStore(a.bus)
        assert list((await store.routes()).keys()) == ["orders"]


async def test_a_replica_started_later_applies_the_bucket_over_its_file(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    async with cluster(nats_server.url, prefix, ["gw-a"], file_config(backend), PARTS) as (a,):
        written = await recorded(
            a.bus, a.bus.subjects.config_events, ConfigEvent
        )  # each follows its write to the bucket
        a.gateway.add_route(orders(backend))
        a.gateway.remove_route("from-file")
        await eventually(lambda: len(written) == 2)
        assert (await RouteStore(a.bus).routes()).keys() == {"orders", "from-file"}
        async with replica(nats_server.url, prefix, "gw-late", file_config(backend), PARTS) as late:
            # Applied before it served its first request.
            assert serves(late, "orders")
            assert not serves(late, "from-file")
            assert (await late.client.get("/orders/x")).status_code == 200
            assert (await late.client.get("/file/x")).status_code == 404


async def test_an_operator_writing_the_bucket_changes_every_replica_and_junk_is_skipped(
    nats_server: NatsServer, prefix: str, backend: Backend
) -> None:
    async with cluster(nats_server.url, prefix, ["gw-a", "gw-b"], file_config(backend), PARTS) as (
        a,
        b,
    ):
        store = RouteStore(a.bus)
        kv = await a.bus.key_value(store.bucket)
        await kv.put(route_key("junk"), b"{not json")
        await kv.put(route_key("bad"), b'{"path": "/bad/**"}')  # no target
        await store.put(route_config_from_mapping(orders(backend)))
        await eventually(lambda: serves(a, "orders") and serves(b, "orders"))
        assert not serves(a, "junk")
        assert not serves(a, "bad")
        await store.remove("from-file")
        await eventually(lambda: not serves(a, "from-file") and not serves(b, "from-file"))
