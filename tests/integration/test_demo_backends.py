"""The demos' backends: real HTTP services on loopback that say who served a
request, fail as their knobs say (repeatably), and are registered for
exactly as long as they run."""

from __future__ import annotations

import httpx
import pytest

from meshgate.demos.backends import ServiceFleet, ServiceSpec
from meshgate.discovery import MemoryRegistryBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # HttpServer runs on asyncio's protocols


SPECS = (
    ServiceSpec(service="user-service", instance="user-v1-1", tags=("v1",), zone="zone-a"),
    ServiceSpec(service="user-service", instance="user-v2-1", version="2.0.0", tags=("v2",)),
    ServiceSpec(service="order-service", instance="order-canary-1", error_rate=0.5, seed=3),
)


async def test_each_instance_answers_json_naming_itself_and_the_request() -> None:
    async with ServiceFleet(SPECS) as fleet, httpx.AsyncClient() as http:
        service = fleet["user-v2-1"]
        reply = await http.post(f"http://{service.address}/users/1?full=1", json={"a": 1})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "service": "user-service",
        "instance": "user-v2-1",
        "version": "2.0.0",
        "path": "/users/1?full=1",
        "method": "POST",
    }
    assert service.requests == 1


async def test_the_error_rate_fails_the_same_requests_on_every_run() -> None:
    runs = []
    for _ in range(2):
        async with ServiceFleet(SPECS) as fleet, httpx.AsyncClient() as http:
            url = f"http://{fleet['order-canary-1'].address}/orders"
            runs.append([(await http.get(url)).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


async def test_fail_with_answers_every_request_with_that_status_until_cleared() -> None:
    async with ServiceFleet(SPECS) as fleet, httpx.AsyncClient() as http:
        service = fleet["user-v1-1"]
        service.fail_with = 503
        down = await http.get(f"http://{service.address}/x")
        service.fail_with = None
        up = await http.get(f"http://{service.address}/x")
    assert (down.status_code, down.json()["error"]) == (503, "injected failure")
    assert up.status_code == 200


async def test_instances_are_registered_while_the_fleet_runs_and_stopped_after() -> None:
    registry = MemoryRegistryBackend()
    async with ServiceFleet(SPECS, registry) as fleet:
        users = {i.id: i for i in await registry.get_instances("user-service")}
        address = fleet["user-v1-1"].address
    assert sorted(users) == ["user-v1-1", "user-v2-1"]
    assert users["user-v1-1"].tags == ("v1",)
    assert users["user-v1-1"].zone == "zone-a"
    assert users["user-v2-1"].version == "2.0.0"
    assert users["user-v1-1"].address == address
    assert await registry.get_instances("user-service") == []
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://{address}/x")


def test_a_spec_refuses_an_error_rate_outside_0_to_1() -> None:
    with pytest.raises(ValueError, match=r"error_rate=1\.5"):
        ServiceSpec(service="s", instance="i", error_rate=1.5)
