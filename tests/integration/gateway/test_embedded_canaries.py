"""`GatewayServer.start_canaries`: the gateway judges its own canaries on a
timer (embedded mode), whether it is called before `serve` or while serving."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest

from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.gateway.server import GatewayServer

pytestmark = pytest.mark.anyio

# At weight 0 no request can reach the canary, so only time counts: each
# evaluation after `step_interval` steps it, without any traffic.
_IDLE_CANARY: dict[str, Any] = {
    "routes": [
        {
            "path": "/api/orders/**",
            "service_name": "order-service",
            "canary": {
                "stable": {"version": "1.0.0"},
                "canary": {"version": "2.0.0", "weight": 0},
                "promotion": {"steps": [50, 100], "step_interval": "50ms"},
            },
        }
    ]
}


async def _steps_within(gateway: GatewayServer, seconds: float, *, start_inside: bool) -> int:
    steps: list[dict[str, Any]] = []
    gateway.on("canary:step", steps.append)
    if not start_inside:
        gateway.start_canaries(interval=0.02)
    async with gateway.running(listen="127.0.0.1:0"):
        if start_inside:
            gateway.start_canaries(interval=0.02)
        await anyio.sleep(seconds)
    return len(steps)


async def test_start_canaries_before_serving_evaluates_at_the_given_interval() -> None:
    gateway = GatewayServer.from_config(_IDLE_CANARY, MemoryRegistryBackend())
    assert await _steps_within(gateway, 0.5, start_inside=False) >= 1


async def test_start_canaries_while_serving_starts_evaluating_at_once() -> None:
    gateway = GatewayServer.from_config(_IDLE_CANARY, MemoryRegistryBackend())
    assert await _steps_within(gateway, 0.5, start_inside=True) >= 1


async def test_start_canaries_twice_runs_one_loop_at_the_latest_interval() -> None:
    # A step interval longer than the test, so that the rollout stays active
    # and every turn of the loop evaluates it.
    config = copy.deepcopy(_IDLE_CANARY)
    config["routes"][0]["canary"]["promotion"]["step_interval"] = "10s"
    gateway = GatewayServer.from_config(config, MemoryRegistryBackend())
    evaluations = 0
    engine = gateway.canaries()["/api/orders/**"]
    original = engine.evaluate

    def counted() -> Any:
        nonlocal evaluations
        evaluations += 1
        return original()

    engine.evaluate = counted  # type: ignore[method-assign]
    async with gateway.running(listen="127.0.0.1:0"):
        gateway.start_canaries(interval=1.0)
        gateway.start_canaries(interval=0.05)
        await anyio.sleep(0.3)
    # One loop, at 0.05 s after its first turn, evaluates about 6 times in
    # 0.3 s; at 1 s it would evaluate once, and two loops would double it.
    assert 3 <= evaluations <= 8


def test_start_canaries_refuses_a_non_positive_interval() -> None:
    gateway = GatewayServer.from_config(_IDLE_CANARY, MemoryRegistryBackend())
    with pytest.raises(ValueError, match="interval"):
        gateway.start_canaries(interval=0)
