"""A route's rate limit holds for the whole cluster: 1, 2 and 4 in-process
replicas on a real nats-server, traffic skewed 90/10, admitted within 10% of
the limit.

The traffic is paced calls of each replica's `KeyedRateLimit.check`, the very
call the proxy makes per request, so that the offered load is exact and the
test needs no HTTP load generator; the HTTP path is covered by the system
test."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from meshgate.bus.nats_server import NatsServer
from meshgate.gateway.keyed_rate_limit import KeyedRateLimit
from tests.integration.cluster.conftest import Parts, Replica, cluster

pytestmark = pytest.mark.anyio

LIMIT = 200  # per second, for the whole cluster
OFFERED = 500.0  # requests per second, over all replicas
WARM_UP = 1.5  # seconds: settle (2 rounds) and a few rounds of reports
MEASURED = 3.0

CONFIG: dict[str, Any] = {
    "routes": [
        {
            "name": "orders",
            "path": "/orders/**",
            "upstreams": ["127.0.0.1:9"],
            "rate_limit": {"max": LIMIT, "window": "1s", "key": "route"},
        }
    ]
}


def limit_of(replica: Replica) -> KeyedRateLimit:
    runtime = replica.gateway.route_runtime("orders")
    assert runtime is not None
    assert runtime.rate_limit is not None
    return runtime.rate_limit.limit


async def offer(limit: KeyedRateLimit, rate: float, start: float, admitted: list[int]) -> None:
    """Check `rate` requests a second from `start` for WARM_UP + MEASURED
    seconds; count those admitted in the measured part."""
    sent = 0
    end = start + WARM_UP + MEASURED
    while (now := time.monotonic()) < end:
        due = int((now - start) * rate)
        while sent < due:
            decision = limit.check("", now)
            if decision.admitted and now >= start + WARM_UP:
                admitted[0] += 1
            sent += 1
        await anyio.sleep(0.005)


def skewed(replicas: int) -> list[float]:
    """90% of the traffic on the first replica, the rest spread over the others."""
    if replicas == 1:
        return [OFFERED]
    return [0.9 * OFFERED] + [0.1 * OFFERED / (replicas - 1)] * (replicas - 1)


@pytest.mark.parametrize("replicas", [1, 2, 4])
async def test_skewed_traffic_is_admitted_within_ten_percent_of_the_cluster_limit(
    nats_server: NatsServer, prefix: str, replicas: int
) -> None:
    ids = [f"gw-{n}" for n in range(replicas)]
    async with cluster(nats_server.url, prefix, ids, CONFIG, Parts(rates=True)) as started:
        admitted = [0]
        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            for member, rate in zip(started, skewed(replicas), strict=True):
                tg.start_soon(offer, limit_of(member), rate, start, admitted)
    expected = LIMIT * MEASURED
    assert admitted[0] == pytest.approx(expected, rel=0.10)
