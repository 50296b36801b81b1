"""`ServiceClient`: HTTP calls to a discovered service, with load balancing,
retries on other instances, and a circuit breaker per instance.

The rules of one call:

- Each attempt asks the discovery client for an UP instance, skipping
  instances whose breaker is open and, on a retry, those already tried (it
  goes back to a tried one only when no other is left).
- An attempt fails on a transport error (connection refused or reset,
  timeout) or a 5xx answer; both count against that instance's breaker. A
  4xx is the service's answer and counts as a success.
- Retries (up to `retries`, after `retry_delay` growing exponentially, with
  jitter) follow connection errors, timeouts and 502 / 503 / 504, for
  idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) only, unless
  ``retry_non_idempotent=True``. One exception: an attempt that was never sent
  (connection refused, connect or pool timeout, open circuit) is retried
  whatever the method, since the service cannot have acted on it.
- When the retries run out, the last 5xx response is returned as is (as
  httpx does; call `raise_for_status` to turn it into an error), or the last
  transport error is raised, with a note naming the instances tried. With no
  UP instance left to try at all, `NoInstanceAvailableError` is raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.discovery.errors import NoInstanceAvailableError
from meshgate.durations import parse_duration
from meshgate.resilience.backoff import Backoff
from meshgate.resilience.circuit_breaker import CircuitBreaker, CircuitState
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.errors import CircuitOpenError
from meshgate.resilience.validation import non_negative_int, positive_number

__all__ = ["IDEMPOTENT_METHODS", "RETRYABLE_STATUS_CODES", "ServiceClient"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
"""Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2)."""

RETRYABLE_STATUS_CODES = frozenset({502, 503, 504})
"""Answers that say "this instance could not serve it now", not "the request is wrong"."""

Sleep = Callable[[float], Awaitable[None]]

# Raised before anything reached the service: safe to retry whatever the method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport failures worth another attempt (when the method allows it).
_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_OPEN_STATES = (CircuitState.OPEN, CircuitState.FORCED_OPEN)


class _FailedResponseError(Exception):
    """A 5xx answer, raised inside the breaker so that it counts as a failure."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _counts_as_failure(error: Exception) -> bool:
    return isinstance(error, httpx.TransportError | _FailedResponseError)


class ServiceClient:
    """HTTP client of one discovered service, over one pooled `httpx.AsyncClient`.

    `timeout` bounds each attempt (seconds, or a string such as ``"5s"``);
    `retries` is the number of attempts after the first. `breaker_options`
    are `CircuitBreaker` options for the per-instance breakers (default: 5
    failures open it for 30 s). `http` is a client the caller owns and
    configures; without one, the service client opens its own and `aclose`
    closes it.

    >>> async def main(discovery: DiscoveryClient) -> None:
    ...     async with ServiceClient(discovery, service_name="user-service",
    ...                              timeout=5.0, retries=3, retry_delay=1.0) as users:
    ...         response = await users.get("/users", params={"limit": 10})
    ...         created = await users.post("/users", json={"name": "John"})
    ...         await users.put("/users/1", json={"name": "Jane"})
    ...         await users.delete("/users/1")
    """

    def __init__(
        self,
        discovery_client: DiscoveryClient,
        *,
        service_name: str,
        load_balancing_strategy: str = "round-robin",
        timeout: float | str = 5.0,
        retries: int = 3,
        retry_delay: float | str = 1.0,
        retry_non_idempotent: bool = False,
        breaker_options: Mapping[str, Any] | None = None,
        http: httpx.AsyncClient | None = None,
        scheme: str = "http",
        clock: Clock = monotonic,
        sleep: Sleep = anyio.sleep,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        if not isinstance(service_name, str) or not service_name:
            raise ValueError(f"service_name={service_name!r} is not allowed: expected a name")
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme={scheme!r} is not allowed: expected 'http' or 'https'")
        self._discovery = discovery_client
        self._service = service_name
        self._strategy = load_balancing_strategy
        # Fails now, naming the strategy, rather than on the first request.
        self._balancer = discovery_client.balancer(service_name, load_balancing_strategy)
        self._timeout = positive_number("timeout", parse_duration(timeout, option="timeout"))
        self._retries = non_negative_int("retries", retries)
        delay = parse_duration(retry_delay, option="retry_delay")
        self._backoff = Backoff(
            "exponential", base_delay=delay, max_delay=delay * 8, jitter="equal"
        )
        self._retry_non_idempotent = bool(retry_non_idempotent)
        options = dict(breaker_options or {})
        options.setdefault("failure_predicate", _counts_as_failure)
        options.setdefault("clock", clock)
        # Checked now: a misspelt option should fail here, not on the first call.
        CircuitBreaker(name=f"{service_name}/check", **options)
        self._breaker_options = options
        self._breakers: dict[str, CircuitBreaker] = {}
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=self._timeout)
        self._scheme = scheme
        self._clock = clock
        self._sleep = sleep
        self._log: FilteringBoundLogger = (log or structlog.get_logger("meshgate.discovery")).bind(
            service=service_name
        )

    @property
    def service_name(self) -> str:
        return self._service

    @property
    def breakers(self) -> Mapping[str, CircuitBreaker]:
        """The breaker of each instance called so far, by instance id."""
        return dict(self._breakers)

    # -- HTTP verbs ----------------------------------------------------------

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        """POST `json` (as in the reference: ``post("/users", {"name": "John"})``)."""
        if json is not None:
            kwargs["json"] = json
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        if json is not None:
            kwargs["json"] = json
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        if json is not None:
            kwargs["json"] = json
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def request(
        self, method: str, path: str, *, client_ip: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send `method` `path` to an instance of the service; see the module's rules.

        `kwargs` go to `httpx.AsyncClient.request` (``params``, ``json``,
        ``headers``, ``content``, ``timeout``, ...). `client_ip` feeds the
        ``ip-hash`` strategy. Raises `NoInstanceAvailableError` when no
        instance can be tried, and `RegistryUnavailableError` when the
        registry cannot be read and the service was never seen before.
        """
        method = method.upper()
        if not path.startswith("/"):
            path = "/" + path
        kwargs.setdefault("timeout", self._timeout)
        may_retry = self._retry_non_idempotent or method in IDEMPOTENT_METHODS
        attempts = 1 + self._retries
        tried: list[str] = []
        last_response: httpx.Response | None = None
        last_error: Exception | None = None
        previous_delay: float | None = None
        for attempt in range(1, attempts + 1):
            instance = await self._choose(tried, client_ip)
            if instance is None:
                break
            if instance.id not in tried:
                tried.append(instance.id)
            try:
                return await self._attempt(instance, method, path, kwargs)
            except CircuitOpenError as error:
                # Opened since we chose it, or its half-open probes are taken:
                # nothing was sent, so another instance may take it at once.
                last_response, last_error = None, error
                continue
            except _FailedResponseError as failed:
                last_response, last_error = failed.response, None
                retry = may_retry and failed.response.status_code in RETRYABLE_STATUS_CODES
                reason = f"HTTP {failed.response.status_code}"
            except httpx.TransportError as error:
                last_response, last_error = None, error
                retry = isinstance(error, _NOT_SENT) or (
                    may_retry and isinstance(error, _RETRYABLE_ERRORS)
                )
                reason = type(error).__name__
            if not retry or attempt == attempts:
                break
            previous_delay = self._backoff.delay(attempt, previous_delay)
            self._log.info(
                "service_client.retrying",
                method=method,
                path=path,
                attempt=attempt,
                instance=instance.id,
                reason=reason,
                retry_in=round(previous_delay, 3),
            )
            if previous_delay > 0:
                await self._sleep(previous_delay)
        if last_response is not None:
            return last_response
        if last_error is None or isinstance(last_error, CircuitOpenError):
            raise NoInstanceAvailableError(
                self._service, await self._why_none(tried)
            ) from last_error
        last_error.add_note(
            f"meshgate: {method} {path} on {self._service!r} failed after "
            f"{len(tried)} instance(s) tried: {', '.join(tried)}"
        )
        raise last_error

    # -- one attempt -----------------------------------------------------------

    async def _choose(self, tried: list[str], client_ip: str | None) -> ServiceInstance | None:
        open_ids = {id_ for id_, b in self._breakers.items() if b.state in _OPEN_STATES}
        choose = self._discovery.get_instance
        if tried:
            instance = await choose(
                self._service, self._strategy, client_ip=client_ip, exclude=open_ids.union(tried)
            )
            if instance is not None:
                return instance
        # First attempt, or every other instance tried: any with a closed circuit.
        return await choose(self._service, self._strategy, client_ip=client_ip, exclude=open_ids)

    async def _attempt(
        self, instance: ServiceInstance, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        breaker = self._breakers.get(instance.id)
        if breaker is None:
            breaker = self._breakers[instance.id] = CircuitBreaker(
                name=f"{self._service}/{instance.id}", **self._breaker_options
            )
        balancer = self._balancer
        balancer.on_start(instance)
        start = self._clock()
        ok = False
        try:
            response: httpx.Response = await breaker.execute(
                self._send, instance, method, path, kwargs
            )
            ok = True
            return response
        finally:
            end = self._clock()
            balancer.on_finish(instance, end - start, ok, end)

    async def _send(
        self, instance: ServiceInstance, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response:
        host = f"[{instance.host}]" if ":" in instance.host else instance.host
        url = f"{self._scheme}://{host}:{instance.port}{path}"
        response: httpx.Response = await self._http.request(method, url, **kwargs)
        if response.status_code >= 500:
            raise _FailedResponseError(response)
        return response

    async def _why_none(self, tried: list[str]) -> str:
        if tried:
            return f"every instance's circuit is open (tried {', '.join(tried)})"
        try:
            up = await self._discovery.get_instances(self._service, status=InstanceStatus.UP)
        except Exception:
            return "none is known"
        if not up:
            return "none is registered and UP"
        return "every UP instance's circuit is open"

    # -- lifecycle -------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP client if this service client opened it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
