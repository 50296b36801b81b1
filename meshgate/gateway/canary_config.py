"""The canary's configuration, as users write it (the reference's canary
mapping in snake_case). Decoding is validation: msgspec names the path of a
wrong key or type, `__post_init__` checks what types cannot say."""

from __future__ import annotations

from typing import Literal

import msgspec

from meshgate.durations import parse_duration
from meshgate.gateway.instance_filter import InstanceFilter

Duration = float | str
"""Seconds, or a string such as ``"500ms"``, ``"15s"``, ``"2m"``."""


class CanaryTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One side of a rollout: its version, its starting weight (percent), and
    which instances serve it (by default, those whose `metadata.version` is
    `version`)."""

    version: str
    weight: float = 0.0
    filter: InstanceFilter | None = None

    def __post_init__(self) -> None:
        if not self.version:
            raise ValueError("version must not be empty")
        if not 0 <= self.weight <= 100:
            raise ValueError(f"weight={self.weight!r} is not allowed: expected 0..100")

    @property
    def instance_filter(self) -> InstanceFilter:
        if self.filter is not None:
            return self.filter
        return InstanceFilter(metadata={"version": self.version})


class PromotionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When the canary moves on, and when it is taken back.

    `error_threshold` is percent; `latency_threshold` is the canary's p99 in
    milliseconds; durations are seconds or strings such as ``"30s"``.
    """

    strategy: Literal["error-rate", "latency"] = "error-rate"
    error_threshold: float = 5.0
    latency_threshold: float = 1000.0
    evaluation_window: Duration = 30.0
    min_requests: int = 10
    steps: tuple[float, ...] = (10.0, 25.0, 50.0, 75.0, 100.0)
    step_interval: Duration = 15.0
    auto_promote: bool = True
    auto_rollback: bool = True

    def __post_init__(self) -> None:
        parse_duration(self.evaluation_window, option="evaluation_window")
        parse_duration(self.step_interval, option="step_interval")
        if not 0 <= self.error_threshold <= 100:
            raise ValueError(
                f"error_threshold={self.error_threshold!r} is not allowed: expected 0..100"
            )
        if self.latency_threshold <= 0:
            raise ValueError(
                f"latency_threshold={self.latency_threshold!r} is not allowed: expected > 0 ms"
            )
        if self.min_requests < 0:
            raise ValueError(f"min_requests={self.min_requests!r} is not allowed: expected >= 0")
        if not self.steps:
            raise ValueError("steps must not be empty")
        if any(not 0 < s <= 100 for s in self.steps) or list(self.steps) != sorted(self.steps):
            raise ValueError(
                f"steps={list(self.steps)!r} is not allowed: expected rising percentages in 0..100"
            )

    @property
    def evaluation_window_seconds(self) -> float:
        return parse_duration(self.evaluation_window, option="evaluation_window")

    @property
    def step_interval_seconds(self) -> float:
        return parse_duration(self.step_interval, option="step_interval")


class CanaryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A rollout from `stable` to `canary`.

    >>> config = msgspec.convert({
    ...     "stable": {"version": "1.0.0", "weight": 90},
    ...     "canary": {"version": "2.0.0", "weight": 10},
    ...     "promotion": {"error_threshold": 5, "step_interval": "15s"},
    ... }, CanaryConfig)
    >>> config.promotion.step_interval_seconds
    15.0
    """

    stable: CanaryTarget
    canary: CanaryTarget
    promotion: PromotionConfig = PromotionConfig()
    sticky: str | None = "ip"
    """What keeps a client on one version while the weights stay: ``"ip"``,
    ``"header:<name>"``, ``"cookie:<name>"``, or None for a fresh draw per
    request. The ``X-Canary: always|never`` header overrides it, for testing."""

    def __post_init__(self) -> None:
        if self.sticky is not None and self.sticky != "ip":
            kind, _, name = self.sticky.partition(":")
            if kind not in ("header", "cookie") or not name.strip():
                raise ValueError(
                    f"sticky={self.sticky!r} is not allowed: expected 'ip', "
                    "'header:<name>', 'cookie:<name>' or None"
                )
        if self.stable.version == self.canary.version:
            raise ValueError(
                f"canary.version={self.canary.version!r} is the stable version: they must differ"
            )
