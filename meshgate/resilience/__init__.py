"""The resilience toolkit: guards for calls that can fail, hang or overload.

Stands alone (no bus, no discovery, no gateway). Every guard has an async
`execute(fn, *args, **kwargs)`; the decisions (breaker states, windows,
limiters, backoff) live in pure cores that take `now`, so they can be driven
exactly in tests and shared between processes.

>>> import anyio
>>> from meshgate.resilience import CircuitBreaker, RetryPolicy
>>> breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0)
>>> retry = RetryPolicy(max_attempts=3, backoff="exponential", base_delay=0.1)
>>> async def fetch() -> str:
...     return "ok"
>>> anyio.run(breaker.execute, retry.execute, fetch)
'ok'
"""

from meshgate.resilience.adaptive_limit import AimdLimit, ConcurrencyLimit, GradientLimit
from meshgate.resilience.adaptive_limiter import AdaptiveConcurrencyLimiter
from meshgate.resilience.backoff import Backoff
from meshgate.resilience.breaker_core import BreakerCore, BreakerSnapshot, CircuitState
from meshgate.resilience.bulkhead import Bulkhead
from meshgate.resilience.circuit_breaker import CircuitBreaker, CircuitBreakerRegistry
from meshgate.resilience.clock import Clock, ManualClock
from meshgate.resilience.decorators import (
    bulkhead,
    circuit_breaker,
    fallback,
    rate_limit,
    retry,
    timeout,
)
from meshgate.resilience.errors import (
    BulkheadFullError,
    BulkheadTimeoutError,
    CircuitOpenError,
    RateLimitExceededError,
    ResilienceError,
    RetryExhaustedError,
    TimeoutExceededError,
)
from meshgate.resilience.latency_histogram import LatencyHistogram
from meshgate.resilience.metrics import MetricsCollector, MetricsRegistry, MetricsSnapshot
from meshgate.resilience.rate_limiter import RateLimiter
from meshgate.resilience.retry import RetryPolicy
from meshgate.resilience.retry_budget import RetryBudget
from meshgate.resilience.timeout import Timeout, with_timeout

__all__ = [
    "AdaptiveConcurrencyLimiter",
    "AimdLimit",
    "Backoff",
    "BreakerCore",
    "BreakerSnapshot",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadTimeoutError",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "ConcurrencyLimit",
    "GradientLimit",
    "LatencyHistogram",
    "ManualClock",
    "MetricsCollector",
    "MetricsRegistry",
    "MetricsSnapshot",
    "RateLimitExceededError",
    "RateLimiter",
    "ResilienceError",
    "RetryBudget",
    "RetryExhaustedError",
    "RetryPolicy",
    "Timeout",
    "TimeoutExceededError",
    "bulkhead",
    "circuit_breaker",
    "fallback",
    "rate_limit",
    "retry",
    "timeout",
    "with_timeout",
]
