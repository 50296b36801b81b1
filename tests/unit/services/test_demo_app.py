"""What a demo service answers, driven with plain `Request` values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.demo_app import DemoApp, ServiceIdentity
from services.http_server import Request, Response
from services.knobs import Knobs

pytestmark = pytest.mark.anyio

IDENTITY = ServiceIdentity(
    service="order-service", instance="order-2", version="2.0.0", zone="eu-1", tags=("canary",)
)


class Sleeps:
    """Records the latency the app spends instead of spending it."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def request(
    method: str, target: str, body: bytes = b"", client_host: str | None = "127.0.0.1"
) -> Request:
    return Request(method=method, target=target, headers=(), body=body, client_host=client_host)


def body_of(response: Response) -> Any:
    return json.loads(response.body)


def app_with(knobs: Knobs | None = None, **options: Any) -> tuple[DemoApp, Sleeps]:
    sleeps = Sleeps()
    return DemoApp(IDENTITY, knobs or Knobs(), sleep=sleeps, **options), sleeps


async def test_any_other_path_answers_who_served_it() -> None:
    app, _ = app_with()
    response = await app.handle(request("POST", "/orders/42?expand=items&x=1"))
    assert response.status == 200
    assert body_of(response) == {
        "service": "order-service",
        "instance": "order-2",
        "version": "2.0.0",
        "zone": "eu-1",
        "tags": ["canary"],
        "method": "POST",
        "path": "/orders/42",
        "query": "expand=items&x=1",
    }
    assert ("x-served-by", "order-2") in response.headers
    assert ("content-type", "application/json") in response.headers


async def test_health_is_up_until_told_to_fail() -> None:
    knobs = Knobs()
    app, _ = app_with(knobs)
    up = await app.handle(request("GET", "/health"))
    assert (up.status, body_of(up)["status"]) == (200, "UP")
    knobs.fail_health = True
    down = await app.handle(request("GET", "/health"))
    assert (down.status, body_of(down)["status"]) == (503, "DOWN")


async def test_latency_and_errors_touch_only_the_catch_all() -> None:
    app, sleeps = app_with(Knobs(error_rate=1.0, latency=0.25))
    assert (await app.handle(request("GET", "/health"))).status == 200
    assert (await app.handle(request("GET", "/_knobs"))).status == 200
    assert (await app.handle(request("GET", "/_stats"))).status == 200
    assert sleeps.slept == []
    failed = await app.handle(request("GET", "/orders"))
    assert failed.status == 500
    assert body_of(failed) == {
        "error": "injected failure",
        "service": "order-service",
        "instance": "order-2",
        "version": "2.0.0",
    }
    assert sleeps.slept == [0.25]


async def test_stats_count_requests_and_injected_failures() -> None:
    app, _ = app_with(Knobs(error_rate=0.5, seed="order-2"))
    statuses = [(await app.handle(request("GET", f"/orders/{n}"))).status for n in range(40)]
    stats = body_of(await app.handle(request("GET", "/_stats")))
    assert stats == {"requests": 40, "failures": statuses.count(500)}
    assert 0 < stats["failures"] < 40


async def test_knobs_change_from_loopback_and_show_what_they_became() -> None:
    knobs = Knobs()
    app, _ = app_with(knobs)
    changed = await app.handle(
        request("POST", "/_knobs", b'{"error_rate": 0.5, "latency_ms": 20, "fail_health": true}')
    )
    assert changed.status == 200
    assert body_of(changed) == {"error_rate": 0.5, "latency_ms": 20.0, "fail_health": True}
    assert (knobs.error_rate, knobs.latency, knobs.fail_health) == (0.5, 0.02, True)
    assert body_of(await app.handle(request("GET", "/_knobs"))) == body_of(changed)


async def test_knobs_refuse_other_addresses_unless_allowed() -> None:
    body = b'{"fail_health": true}'
    app, _ = app_with()
    refused = await app.handle(request("POST", "/_knobs", body, client_host="10.0.0.7"))
    assert refused.status == 403
    assert not app.knobs.fail_health
    open_app, _ = app_with(allow_remote_knobs=True)
    allowed = await open_app.handle(request("POST", "/_knobs", body, client_host="10.0.0.7"))
    assert allowed.status == 200
    assert open_app.knobs.fail_health


async def test_a_bad_knob_update_is_a_400_that_names_it() -> None:
    app, _ = app_with()
    for body in (b'{"error_rate": 2}', b"not json", b'{"speed": 1}'):
        response = await app.handle(request("POST", "/_knobs", body))
        assert response.status == 400
        assert body_of(response)["error"]
    assert app.knobs.as_json() == Knobs().as_json()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/_knobs", "GET, POST"),
        ("PUT", "/_stats", "GET"),
    ],
)
async def test_reserved_paths_answer_405_with_allow(method: str, path: str, allowed: str) -> None:
    app, _ = app_with()
    response = await app.handle(request(method, path))
    assert response.status == 405
    assert ("allow", allowed) in response.headers
