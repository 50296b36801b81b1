"""Replaying a rollout on simulated traffic: how often would a healthy canary
be rolled back by noise, and how fast is a bad one caught?

`simulate` drives a real `CanaryEngine` with a `ManualClock` and a seeded
`random.Random`: requests arrive evenly at `Traffic.rate` per second, each is
routed by `engine.choose`, fails with its target's error rate and takes a
log-normal latency (a share of the canary's requests can be made slow), and
the engine is evaluated every `evaluate_every` seconds, as the canary
controller does. Same seed, same result; nothing sleeps.

>>> from meshgate.gateway.canary_config import CanaryConfig
>>> config = msgspec.convert({"stable": {"version": "1"}, "canary": {"version": "2", "weight": 10},
...                           "promotion": {"evaluation_window": 30, "step_interval": 15}},
...                          CanaryConfig)
>>> outcome = simulate(config, Traffic(rate=100, canary_error_rate=0.5), seed=1)
>>> outcome.state, outcome.finished_at is not None and outcome.finished_at <= 30
('rolled-back', True)
"""

from __future__ import annotations

import math
import random

import msgspec

from meshgate.gateway.canary_config import CanaryConfig
from meshgate.gateway.canary_engine import CanaryEngine
from meshgate.gateway.canary_status import TERMINAL_STATES, RolloutState
from meshgate.resilience.clock import ManualClock


class Traffic(msgspec.Struct, frozen=True, kw_only=True):
    """The simulated load: `rate` requests per second over both targets;
    error rates and the slow share are fractions; latencies are log-normal
    around `median_ms` (sigma 0.5), and slow requests take `slow_ms`."""

    rate: float
    canary_error_rate: float = 0.01
    stable_error_rate: float = 0.01
    median_ms: float = 20.0
    canary_slow_share: float = 0.0
    slow_ms: float = 5_000.0


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a simulated rollout ended: its state, when it reached it (seconds
    from the start; None if it was still going at the end), its weight, and
    how many steps it took."""

    state: RolloutState
    finished_at: float | None
    canary_weight: float
    steps_taken: int
    requests: int


def simulate(
    config: CanaryConfig,
    traffic: Traffic,
    *,
    seed: int,
    duration: float = 300.0,
    evaluate_every: float = 1.0,
) -> Outcome:
    """Run one rollout for at most `duration` simulated seconds."""
    rng = random.Random(seed)
    clock = ManualClock()
    engine = CanaryEngine(config, clock=clock, route="simulated")
    steps: list[int] = []
    engine.on("canary:step", lambda info: steps.append(info.step))
    gap = 1.0 / traffic.rate
    requests = 0
    next_evaluation = evaluate_every
    # Time advances in whole requests; the engine is evaluated whenever the
    # simulated time passes an evaluation tick.
    while clock.now < duration:
        clock.advance(gap)
        requests += 1
        target = engine.choose(rng.random())
        error_rate = traffic.canary_error_rate if target == "canary" else traffic.stable_error_rate
        latency = traffic.median_ms * math.exp(0.5 * rng.gauss(0.0, 1.0))
        if target == "canary" and rng.random() < traffic.canary_slow_share:
            latency = traffic.slow_ms
        if rng.random() < error_rate:
            engine.record_failure(target, latency)
        else:
            engine.record_success(target, latency)
        if clock.now >= next_evaluation:
            next_evaluation += evaluate_every
            engine.evaluate()
            if engine.state in TERMINAL_STATES:
                return Outcome(
                    state=engine.state,
                    finished_at=clock.now,
                    canary_weight=engine.canary_weight,
                    steps_taken=len(steps),
                    requests=requests,
                )
    return Outcome(
        state=engine.state,
        finished_at=None,
        canary_weight=engine.canary_weight,
        steps_taken=len(steps),
        requests=requests,
    )


__all__ = ["Outcome", "Traffic", "simulate"]
