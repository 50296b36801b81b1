"""`Knobs`: how badly a demo service behaves right now, and the seeded draw
that decides which requests fail.

A service starts with the knobs of its command line and changes them while
it runs through ``POST /_knobs`` (see `services.demo_app`), so a demo or a
test can break an instance, watch the gateway react, and mend it again.

No I/O and no clock here: the service reads the knobs and sleeps itself.

>>> knobs = Knobs(error_rate=0.5, seed="user-1")
>>> [knobs.should_fail() for _ in range(6)]
[True, False, False, True, False, True]
>>> knobs.apply(KnobUpdate(error_rate=0.0, latency_ms=20))
>>> knobs.as_json()
{'error_rate': 0.0, 'latency_ms': 20.0, 'fail_health': False}
"""

from __future__ import annotations

import math
import random

import msgspec
from msgspec import UNSET, UnsetType


def check_error_rate(value: float) -> float:
    """`value` if it is a fraction in 0..1; `ValueError` naming it otherwise."""
    if isinstance(value, bool) or not (0.0 <= value <= 1.0):
        raise ValueError(f"error_rate={value!r} is not allowed: expected a fraction in 0..1")
    return float(value)


def check_latency(value: float, *, option: str = "latency") -> float:
    """`value` if it is a finite delay >= 0; `ValueError` naming `option` otherwise."""
    if isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{option}={value!r} is not allowed: expected a delay >= 0")
    return float(value)


class KnobUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /_knobs``: each knob that is given changes, the
    others stay. `latency_ms` is milliseconds, as latencies are everywhere
    on the wire."""

    error_rate: float | UnsetType = UNSET
    latency_ms: float | UnsetType = UNSET
    fail_health: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.error_rate is not UNSET:
            check_error_rate(self.error_rate)
        if self.latency_ms is not UNSET:
            check_latency(self.latency_ms, option="latency_ms")


class Knobs:
    """`error_rate` (the fraction of requests answered 500), `latency`
    (seconds added before every answer) and `fail_health` (``/health``
    answers 503). Failures are drawn from a generator seeded with `seed`, so
    the same instance fails the same requests on every run."""

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        latency: float = 0.0,
        fail_health: bool = False,
        seed: int | str | None = None,
    ) -> None:
        self.error_rate = check_error_rate(error_rate)
        self.latency = check_latency(latency)
        self.fail_health = bool(fail_health)
        # A str seed is hashed deterministically by Random (unlike hash()).
        self._random = random.Random(seed)

    def should_fail(self) -> bool:
        """Whether the next request gets an injected 500. Draws nothing when
        the rate is 0 or 1, so turning errors off and on again does not move
        the sequence."""
        if self.error_rate <= 0.0:
            return False
        if self.error_rate >= 1.0:
            return True
        return self._random.random() < self.error_rate

    def apply(self, update: KnobUpdate) -> None:
        """Change the knobs that `update` names (already checked by it)."""
        if update.error_rate is not UNSET:
            self.error_rate = float(update.error_rate)
        if update.latency_ms is not UNSET:
            self.latency = float(update.latency_ms) / 1000.0
        if update.fail_health is not UNSET:
            self.fail_health = update.fail_health

    def as_json(self) -> dict[str, float | bool]:
        """The knobs as ``GET /_knobs`` shows them (latency in milliseconds)."""
        return {
            "error_rate": self.error_rate,
            "latency_ms": round(self.latency * 1000.0, 3),
            "fail_health": self.fail_health,
        }
