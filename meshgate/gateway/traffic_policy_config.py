"""A route's traffic policy, as users write it (the reference's
`TrafficPolicy`): time limits, retries, and a copy of the traffic sent to a
mirror service."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType

from meshgate.gateway.canary_config import Duration
from meshgate.gateway.config_options import constructor_options, positive_duration
from meshgate.gateway.resilience_config import RetryConfig
from meshgate.gateway.upstream_address import check_upstreams
from meshgate.resilience.validation import percentage, positive_int


class MirrorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where mirrored requests go (a discovered `service`, or fixed
    `upstreams`; exactly one) and the options of the gateway's `TrafficMirror`:
    the `percentage` of requests copied, whether the client's answer waits for
    the mirror's (`wait_for_response`), at most `max_concurrent` copies in
    flight, bodies up to `max_body_bytes`, each copy cut off after `timeout`.

    >>> MirrorConfig(service="analytics-service", percentage=50, timeout="2s").options()
    {'percentage': 50.0, 'timeout': 2.0}
    """

    service: str | None = None
    upstreams: tuple[str, ...] = ()
    percentage: float | UnsetType = UNSET
    wait_for_response: bool | UnsetType = UNSET
    max_concurrent: int | UnsetType = UNSET
    max_body_bytes: int | UnsetType = UNSET
    timeout: Duration | UnsetType = UNSET

    DURATIONS: ClassVar[tuple[str, ...]] = ("timeout",)

    def __post_init__(self) -> None:
        if (self.service is None) == (not self.upstreams):
            raise ValueError(
                "mirror needs exactly one of service (discovered) and upstreams (fixed addresses)"
            )
        if self.service is not None and not self.service:
            raise ValueError("service='' is not allowed: expected a service name")
        check_upstreams(self.upstreams)
        if self.percentage is not UNSET:
            percentage("percentage", self.percentage)
        if self.max_concurrent is not UNSET:
            positive_int("max_concurrent", self.max_concurrent)
        if self.max_body_bytes is not UNSET:
            positive_int("max_body_bytes", self.max_body_bytes)
        if self.timeout is not UNSET:
            positive_duration(self.timeout, "timeout")

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `TrafficMirror` (where to send is `service`/`upstreams`)."""
        options = constructor_options(self, self.DURATIONS)
        options.pop("service", None)
        options.pop("upstreams", None)
        if "percentage" in options:
            options["percentage"] = float(options["percentage"])
        return options


class TrafficPolicyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`timeout` for the whole request, retries included; `per_try_timeout`
    for each attempt; `retry`; `mirror`.

    >>> policy = msgspec.convert({"timeout": "5s", "per_try_timeout": "2s",
    ...     "retry": {"max_attempts": 2}, "mirror": {"service": "analytics-service"}},
    ...     TrafficPolicyConfig)
    >>> policy.timeout_seconds, policy.per_try_timeout_seconds
    (5.0, 2.0)
    """

    timeout: Duration | None = None
    per_try_timeout: Duration | None = None
    retry: RetryConfig | None = None
    mirror: MirrorConfig | None = None

    def __post_init__(self) -> None:
        total = self.timeout_seconds
        per_try = self.per_try_timeout_seconds
        if total is not None and per_try is not None and per_try > total:
            raise ValueError(
                f"per_try_timeout={self.per_try_timeout!r} is not allowed: expected at most "
                f"timeout ({self.timeout!r}), which bounds all the tries together"
            )

    @property
    def timeout_seconds(self) -> float | None:
        return positive_duration(self.timeout, "timeout")

    @property
    def per_try_timeout_seconds(self) -> float | None:
        return positive_duration(self.per_try_timeout, "per_try_timeout")
