"""The resilience options of a route and the gateway's defaults for them.

Each Struct maps one to one onto a constructor: `CircuitBreakerConfig` onto
`CircuitBreaker`, `RetryConfig` onto `RetryPolicy`, `RateLimitConfig` onto
`RateLimiter` (and the gateway's per-client `KeyedRateLimit`),
`BulkheadConfig` onto `Bulkhead`, `OutlierDetectionConfig` onto
`OutlierDetector`. Same names, snake_case; durations are seconds or strings
such as ``"15s"``. `options()` gives the keyword arguments, durations in
seconds. A field left out stays UNSET, so the constructor's default applies,
or, on a route, the gateway's `resilience.default_*` (see `config_options`).

Each Struct is checked by building what it configures, so a config file is
refused for exactly the values the toolkit would refuse, named the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, UnsetType

from meshgate.gateway.canary_config import Duration
from meshgate.gateway.config_options import constructor_options, positive_duration
from meshgate.resilience.bulkhead import Bulkhead
from meshgate.resilience.circuit_breaker import CircuitBreaker
from meshgate.resilience.rate_limiter import RateLimiter
from meshgate.resilience.retry import RetryPolicy
from meshgate.resilience.sliding_window import WindowSpec
from meshgate.resilience.validation import percentage, positive_int, positive_number

RateLimitKey = Literal["ip", "route", "header"]


class CircuitBreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of `meshgate.resilience.CircuitBreaker`.

    >>> CircuitBreakerConfig(failure_threshold=3, reset_timeout="15s").options()
    {'failure_threshold': 3, 'reset_timeout': 15.0}
    """

    failure_threshold: int | UnsetType = UNSET
    success_threshold: int | UnsetType = UNSET
    reset_timeout: Duration | UnsetType = UNSET
    timeout: Duration | UnsetType | None = UNSET
    sliding_window: WindowSpec | UnsetType | None = UNSET
    minimum_calls: int | UnsetType | None = UNSET
    failure_rate_threshold: float | UnsetType | None = UNSET
    slow_call_threshold: float | UnsetType | None = UNSET
    slow_call_duration: Duration | UnsetType | None = UNSET
    permitted_calls_in_half_open: int | UnsetType | None = UNSET
    open_backoff_multiplier: float | UnsetType = UNSET
    max_reset_timeout: Duration | UnsetType | None = UNSET

    DURATIONS: ClassVar[tuple[str, ...]] = (
        "reset_timeout",
        "timeout",
        "slow_call_duration",
        "max_reset_timeout",
    )

    def __post_init__(self) -> None:
        CircuitBreaker(**self.options())

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `CircuitBreaker` (add `name=` and callbacks)."""
        return constructor_options(self, self.DURATIONS)


class RetryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of `meshgate.resilience.RetryPolicy`, and the gateway's own:
    `retry_on` (upstream statuses worth another instance; default 502, 503,
    504), `retry_non_idempotent` (retry POST and PATCH after they reached an
    upstream; default False: only when nothing was sent) and `budget_percent`
    (retries may add at most this share of the route's traffic, plus one a
    second; default 20, None for no budget).

    >>> RetryConfig(max_attempts=2, backoff="fixed", base_delay="500ms").options()
    {'max_attempts': 2, 'backoff': 'fixed', 'base_delay': 0.5}
    >>> RetryConfig(retry_on=(503,), budget_percent=10).gateway_options()
    {'retry_on': (503,), 'budget_percent': 10.0}
    """

    max_attempts: int | UnsetType = UNSET
    backoff: Literal["fixed", "linear", "exponential"] | UnsetType = UNSET
    base_delay: Duration | UnsetType = UNSET
    max_delay: Duration | UnsetType = UNSET
    jitter: bool | Literal["full", "equal", "decorrelated"] | UnsetType = UNSET
    retry_on: tuple[int, ...] | UnsetType = UNSET
    retry_non_idempotent: bool | UnsetType = UNSET
    budget_percent: float | UnsetType | None = UNSET

    DURATIONS: ClassVar[tuple[str, ...]] = ("base_delay", "max_delay")
    GATEWAY_ONLY: ClassVar[tuple[str, ...]] = (
        "retry_on",
        "retry_non_idempotent",
        "budget_percent",
    )

    def __post_init__(self) -> None:
        RetryPolicy(**self.options())
        if self.retry_on is not UNSET:
            for status in self.retry_on:
                if not 500 <= status <= 599:
                    raise ValueError(
                        f"retry_on has {status!r}: expected 5xx statuses (a 4xx is the "
                        "client's mistake, and another instance would answer the same)"
                    )
        if self.budget_percent not in (UNSET, None):
            percentage("budget_percent", self.budget_percent)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `RetryPolicy` (add predicates and callbacks)."""
        options = constructor_options(self, self.DURATIONS)
        for name in self.GATEWAY_ONLY:
            options.pop(name, None)
        return options

    def gateway_options(self) -> dict[str, Any]:
        """The gateway's own retry options that are written."""
        options = {
            name: getattr(self, name)
            for name in self.GATEWAY_ONLY
            if getattr(self, name) is not UNSET
        }
        if options.get("budget_percent") is not None:
            options["budget_percent"] = float(options["budget_percent"])
        return options


class RateLimitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of `meshgate.resilience.RateLimiter`, and what a limit counts.

    `key` says whose requests share one allowance: ``"ip"`` (each client
    address; the default), ``"route"`` (all clients together), or
    ``"header:X-Api-Key"`` (each value of that header). `max_keys` bounds how
    many keys the gateway remembers.

    >>> limit = RateLimitConfig(max=50, window="1m", key="header:X-Api-Key")
    >>> limit.options(), limit.key_kind, limit.key_header
    ({'max': 50, 'window': 60.0}, 'header', 'X-Api-Key')
    """

    strategy: Literal["token-bucket", "sliding-window"] | UnsetType = UNSET
    max: int | UnsetType = UNSET
    window: Duration | UnsetType = UNSET
    key: str | UnsetType = UNSET
    max_keys: int | UnsetType = UNSET

    DURATIONS: ClassVar[tuple[str, ...]] = ("window",)

    def __post_init__(self) -> None:
        RateLimiter(**self.options())
        if self.max_keys is not UNSET:
            positive_int("max_keys", self.max_keys)
        if self.key is not UNSET:
            kind, _, header = self.key.partition(":")
            if kind not in ("ip", "route", "header") or (kind == "header") != bool(header.strip()):
                raise ValueError(
                    f"key={self.key!r} is not allowed: expected 'ip', 'route' or "
                    "'header:<name>' such as 'header:X-Api-Key'"
                )

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `RateLimiter` (`key` and `max_keys` are the gateway's)."""
        options = constructor_options(self, self.DURATIONS)
        options.pop("key", None)
        options.pop("max_keys", None)
        return options

    def keyed_options(self) -> dict[str, Any]:
        """Keyword arguments for the gateway's `KeyedRateLimit`, which has no
        defaults of its own: `RateLimiter`'s fill what is not written."""
        limiter = RateLimiter(**self.options())
        options: dict[str, Any] = {
            "strategy": limiter.strategy,
            "max": limiter.max,
            "window": limiter.window,
        }
        if self.max_keys is not UNSET:
            options["max_keys"] = self.max_keys
        return options

    @property
    def key_kind(self) -> RateLimitKey:
        kind = "ip" if self.key is UNSET else self.key.partition(":")[0]
        if kind == "route":
            return "route"
        return "header" if kind == "header" else "ip"

    @property
    def key_header(self) -> str | None:
        """The header whose value is the key, for ``"header:<name>"``."""
        if self.key is UNSET or self.key_kind != "header":
            return None
        return self.key.partition(":")[2].strip()


class BulkheadConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of `meshgate.resilience.Bulkhead`.

    >>> BulkheadConfig(max_concurrent=10, queue_timeout="2s").options()
    {'max_concurrent': 10, 'queue_timeout': 2.0}
    """

    max_concurrent: int | UnsetType = UNSET
    max_queue: int | UnsetType = UNSET
    queue_timeout: Duration | UnsetType | None = UNSET

    DURATIONS: ClassVar[tuple[str, ...]] = ("queue_timeout",)

    def __post_init__(self) -> None:
        Bulkhead(**self.options())

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `Bulkhead`."""
        return constructor_options(self, self.DURATIONS)


class OutlierDetectionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the gateway's `OutlierDetector` (passive health checking,
    as Envoy's outlier detection): `consecutive_failures` in a row take an
    instance out of rotation for `ejection_time`, longer each time up to
    `max_ejection_time`, and at most `max_ejection_percent` of a service's
    instances are out at once.

    >>> OutlierDetectionConfig(consecutive_failures=3, ejection_time="30s").options()
    {'consecutive_failures': 3, 'ejection_time': 30.0}
    """

    consecutive_failures: int | UnsetType = UNSET
    ejection_time: Duration | UnsetType = UNSET
    max_ejection_percent: float | UnsetType = UNSET
    max_ejection_time: Duration | UnsetType = UNSET

    DURATIONS: ClassVar[tuple[str, ...]] = ("ejection_time", "max_ejection_time")

    def __post_init__(self) -> None:
        # Checked here, not by building a detector: the checks are few, and
        # this keeps config loading free of the proxy's modules.
        options = self.options()
        if "consecutive_failures" in options:
            positive_int("consecutive_failures", options["consecutive_failures"])
        for name in self.DURATIONS:
            if name in options:
                positive_number(name, options[name])
        if "max_ejection_percent" in options:
            percentage("max_ejection_percent", options["max_ejection_percent"])

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `OutlierDetector`."""
        return constructor_options(self, self.DURATIONS)


class ResilienceDefaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every route gets unless it says otherwise; a route's own options
    are laid over these field by field. None: no such guard by default.

    >>> defaults = msgspec.convert(
    ...     {"default_circuit_breaker": {"failure_threshold": 5, "reset_timeout": "10s"},
    ...      "default_timeout": "10s"}, ResilienceDefaults)
    >>> defaults.default_timeout_seconds
    10.0
    """

    default_circuit_breaker: CircuitBreakerConfig | None = None
    default_retry: RetryConfig | None = None
    default_timeout: Duration | None = None
    default_rate_limit: RateLimitConfig | None = None
    default_bulkhead: BulkheadConfig | None = None
    default_outlier_detection: OutlierDetectionConfig | None = None

    def __post_init__(self) -> None:
        positive_duration(self.default_timeout, "default_timeout")

    @property
    def default_timeout_seconds(self) -> float | None:
        return positive_duration(self.default_timeout, "default_timeout")
