"""A replica's shares of the cluster's rate limits, round by round, on an
in-process bus and a manual clock."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_node.presence import PeerTable
from gateway_node.rate_share import RateShare
from meshgate.bus.in_process import InProcessBus
from meshgate.bus.messages import Presence, RateDemand
from meshgate.gateway.keyed_rate_limit import KeyedRateLimit
from meshgate.gateway.server import GatewayServer
from meshgate.resilience.clock import ManualClock
from tests.polling import eventually

pytestmark = pytest.mark.anyio

INTERVAL = 0.5


class CuttableBus(InProcessBus):
    """An in-process bus whose connection a test can cut."""

    cut = False

    @property
    def is_connected(self) -> bool:
        return not self.cut and super().is_connected


def route(name: str, key: str = "route", max_: int = 200) -> dict[str, Any]:
    return {
        "name": name,
        "path": f"/{name}/**",
        "upstreams": ["127.0.0.1:9"],
        "rate_limit": {"max": max_, "window": "1s", "key": key},
    }


def limit_of(gateway: GatewayServer, name: str) -> KeyedRateLimit:
    runtime = gateway.route_runtime(name)
    assert runtime is not None
    assert runtime.rate_limit is not None
    return runtime.rate_limit.limit


def demand(replica: str, per_second: float, route_name: str = "orders") -> RateDemand:
    return RateDemand(
        route=route_name,
        replica=replica,
        demand=per_second,  # window 1 s: per window is per second
        window=1.0,
        interval=INTERVAL,
        at=0.0,
    )


def traffic(limit: KeyedRateLimit, requests: int, clock: ManualClock) -> None:
    for _ in range(requests):
        limit.check("", clock())


def peers_of(*replicas: str) -> PeerTable:
    peers = PeerTable(ttl=6.0)
    for replica in replicas:
        peers.heard(Presence(replica_id=replica, address="h:1", started_at=0.0), now=0.0)
    return peers


async def test_a_starting_replica_takes_only_the_floor_until_it_has_heard_its_peers() -> None:
    clock = ManualClock()
    unlimited = {"name": "free", "path": "/free/**", "upstreams": ["127.0.0.1:9"]}
    gateway = GatewayServer.from_config({"routes": [unlimited, route("orders")]})
    async with CuttableBus() as bus:
        rates = RateShare(bus, gateway, "gw-1", peers_of(), interval=INTERVAL, clock=clock)
        rates.start()
        assert limit_of(gateway, "orders").effective_max == 20  # 10% of 200
        clock.advance(INTERVAL)
        await rates.share_round()
        assert limit_of(gateway, "orders").effective_max == 20  # still settling
        clock.advance(INTERVAL)
        await rates.share_round()
        assert limit_of(gateway, "orders").effective_max == 200  # alone after all


async def test_skewed_traffic_gets_shares_in_proportion_to_demand() -> None:
    clock = ManualClock()
    gateway = GatewayServer.from_config({"routes": [route("orders")]})
    async with CuttableBus() as bus:
        rates = RateShare(bus, gateway, "gw-1", peers_of("gw-2"), interval=INTERVAL, clock=clock)
        rates.start()
        clock.advance(2 * INTERVAL)
        traffic(limit_of(gateway, "orders"), 450, clock)  # 450 in 1 s
        await rates.on_demand(demand("gw-2", 50.0))
        await rates.share_round()
        # floor 10 each of 200/s; needs 440 and 40 share the rest of 180
        expected = (10 + 180 * 440 / 480) / 200
        assert limit_of(gateway, "orders").scale == pytest.approx(expected)
        assert limit_of(gateway, "orders").effective_max == 175


async def test_each_round_publishes_this_replicas_demand_per_window() -> None:
    clock = ManualClock()
    gateway = GatewayServer.from_config(
        {
            "routes": [
                {**route("orders"), "rate_limit": {"max": 100, "window": "1m", "key": "route"}}
            ]
        }
    )
    heard: list[RateDemand] = []

    async def keep(message: RateDemand) -> None:
        heard.append(message)

    async with CuttableBus() as bus:
        await bus.subscribe(bus.subjects.all_rate_demand, RateDemand, keep)
        rates = RateShare(bus, gateway, "gw-1", peers_of(), interval=INTERVAL, clock=clock)
        rates.start()
        traffic(limit_of(gateway, "orders"), 5, clock)
        clock.advance(INTERVAL)
        await rates.share_round()
        await eventually(lambda: bool(heard))
    assert heard[0].replica == "gw-1"
    assert heard[0].demand == pytest.approx(5 / INTERVAL * 60)  # per minute
    assert heard[0].window == 60.0


async def test_while_the_bus_is_cut_and_for_a_settle_after_it_returns_shares_stay() -> None:
    clock = ManualClock()
    gateway = GatewayServer.from_config({"routes": [route("orders")]})
    async with CuttableBus() as bus:
        rates = RateShare(bus, gateway, "gw-1", peers_of("gw-2"), interval=INTERVAL, clock=clock)
        rates.start()
        clock.advance(2 * INTERVAL)
        await rates.share_round()
        assert limit_of(gateway, "orders").effective_max == 100  # two idle replicas
        bus.cut = True
        clock.advance(10.0)  # gw-2's presence and reports run out meanwhile
        await rates.share_round()
        assert limit_of(gateway, "orders").effective_max == 100
        bus.cut = False
        clock.advance(INTERVAL)
        await rates.share_round()
        assert limit_of(gateway, "orders").effective_max == 100  # settling again
        clock.advance(2 * INTERVAL)
        await rates.share_round()
        assert limit_of(gateway, "orders").effective_max == 200  # gw-2 is truly gone


async def test_per_client_limits_take_an_equal_part_of_each_key() -> None:
    clock = ManualClock()
    gateway = GatewayServer.from_config({"routes": [route("search", key="ip", max_=90)]})
    async with CuttableBus() as bus:
        peers = peers_of("gw-2", "gw-3")
        rates = RateShare(bus, gateway, "gw-1", peers, interval=INTERVAL, clock=clock)
        rates.start()
        assert limit_of(gateway, "search").effective_max == 90  # no floor per key
        clock.advance(2 * INTERVAL)
        await rates.share_round()
        assert limit_of(gateway, "search").effective_max == 30


async def test_a_route_replaced_at_runtime_keeps_its_share_from_the_first_request() -> None:
    clock = ManualClock()
    gateway = GatewayServer.from_config({"routes": [route("orders")]})
    async with CuttableBus() as bus:
        rates = RateShare(bus, gateway, "gw-1", peers_of("gw-2"), interval=INTERVAL, clock=clock)
        rates.start()
        clock.advance(2 * INTERVAL)
        await rates.share_round()
        gateway.add_route(route("orders"), replace=True)
        assert limit_of(gateway, "orders").effective_max == 100
        gateway.add_route(route("fresh"))
        assert limit_of(gateway, "fresh").effective_max == 20  # unknown: the floor
