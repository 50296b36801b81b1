"""Errors raised by the resilience toolkit; all derive from `ResilienceError`."""

from __future__ import annotations


class ResilienceError(Exception):
    """Base class of every error the toolkit raises on behalf of a guard."""


class CircuitOpenError(ResilienceError):
    """The circuit is open (or the half-open probes are taken): no call was made.

    `retry_after` is the number of seconds until the breaker will let a probe
    through, so an HTTP layer can answer with `Retry-After`.
    """

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry after {retry_after:.3f}s")
        self.name = name
        self.retry_after = retry_after


class RetryExhaustedError(ResilienceError):
    """Every attempt failed; `last_error` is the final failure, `attempts` how many ran."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        super().__init__(f"gave up after {attempts} attempt(s): {last_error!r}")
        self.attempts = attempts
        self.last_error = last_error


class BulkheadFullError(ResilienceError):
    """Every slot and every queue place is taken; the call was not queued."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        super().__init__(
            f"bulkhead full: {max_concurrent} running and {max_queue} queued"
        )
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue


class BulkheadTimeoutError(ResilienceError):
    """The call waited in the bulkhead's queue for `queue_timeout` seconds without a slot."""

    def __init__(self, queue_timeout: float) -> None:
        super().__init__(f"waited {queue_timeout:.3f}s in the bulkhead queue without a slot")
        self.queue_timeout = queue_timeout


class RateLimitExceededError(ResilienceError):
    """No permit is available; `retry_after` seconds until the next one."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded; next permit in {retry_after:.3f}s")
        self.retry_after = retry_after


class TimeoutExceededError(ResilienceError):
    """The call ran longer than its time limit and was cancelled."""

    def __init__(self, seconds: float, message: str | None = None) -> None:
        super().__init__(message or f"operation exceeded {seconds:g}s")
        self.seconds = seconds
