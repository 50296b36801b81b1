"""`ProxyEngine`: the gateway's request handler, in the order DESIGN.md gives:
route → CORS → rate limit → version/canary → breaker → bulkhead → retry (a
new instance per try) → timeout → proxy; then metrics, outcomes and mirror.

The decisions live in the objects it calls (matcher, limiters, breaker core,
canary engine, balancers); this module only sequences them and turns each
refusal into its HTTP answer:

| refusal | answer |
|---|---|
| no route / path matched but not the method | 404 / 405 with `Allow` |
| bad path, unknown explicit version | 400 |
| rate limit | 429, `Retry-After`, `RateLimit-*` |
| circuit open, bulkhead full, no healthy instance | 503 (`Retry-After` when known) |
| upstream silent past the timeout | 504 |
| upstream unreachable or broken | 502 |

What counts as a failure: for the breaker, the outlier detector and the
canary, an upstream 5xx or the gateway's own 502/504 after calling it; a 503
that the gateway gives without calling the upstream counts for none of them
(the breaker must not keep itself open, a version must not be blamed for an
open circuit). For the route's metrics every 5xx is a failure, refusals
included, so a route that turns every client away does not look healthy.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable

from meshgate.bus.instance import ServiceInstance
from meshgate.gateway.access_log import AccessEntry, AccessLog
from meshgate.gateway.cors import CorsPolicy
from meshgate.gateway.gateway_metrics import UNVERSIONED, GatewayMetrics
from meshgate.gateway.http.proxy import relay_response, upstream_request_headers
from meshgate.gateway.http.request import EMPTY_BODY, Request, Responder
from meshgate.gateway.http.upstream import UpstreamPools
from meshgate.gateway.http.upstream_errors import UpstreamError, UpstreamTimeoutError
from meshgate.gateway.matcher import MethodNotAllowed, RouteMatch, RouteTable
from meshgate.gateway.mirror import Spawn
from meshgate.gateway.rewrite import upstream_path
from meshgate.gateway.route_runtime import CANARY_HEADER, RouteRuntime, VersionView
from meshgate.gateway.version_router import UnknownVersionError
from meshgate.resilience.breaker_core import REJECT
from meshgate.resilience.clock import Clock, monotonic
from meshgate.resilience.errors import BulkheadFullError, BulkheadTimeoutError

Sleep = Callable[[float], Awaitable[None]]

REPLAY_BUFFER_BYTES = 64 * 1024
"""Request bodies up to this size are held, so that a retry or a mirror can
send them again; larger ones stream once and are never retried after sending."""


def _retry_after(seconds: float) -> list[tuple[bytes, bytes]]:
    return [(b"Retry-After", str(max(1, math.ceil(seconds))).encode())]


class _Outcome:
    """How one request ended, for the bookkeeping after it."""

    __slots__ = ("called", "latency_ms", "ok", "status", "version")

    def __init__(self) -> None:
        self.status = 0
        self.ok = True
        self.called = False
        self.latency_ms = 0.0
        self.version = UNVERSIONED


class ProxyEngine:
    """Serves requests against a table of routes; swap `routes` at any time
    (copy-on-write tables: requests in flight keep the route they matched).

    `spawn` starts a background coroutine in the gateway's task group (for
    fire-and-forget mirrors); `sleep` paces retry backoff.
    """

    __slots__ = (
        "_clock",
        "_cors",
        "_log_access",
        "_metrics",
        "_pools",
        "_sleep",
        "_spawn",
        "routes",
    )

    def __init__(
        self,
        routes: RouteTable[RouteRuntime],
        pools: UpstreamPools,
        *,
        spawn: Spawn,
        metrics: GatewayMetrics | None = None,
        cors: CorsPolicy | None = None,
        access_log: AccessLog | None = None,
        clock: Clock = monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        self.routes = routes
        self._pools = pools
        self._spawn = spawn
        self._metrics = metrics
        self._cors = cors
        self._log_access = access_log
        self._clock = clock
        self._sleep = asyncio.sleep if sleep is None else sleep

    async def handle(self, request: Request, responder: Responder) -> None:
        """Answer one request (the `HttpServer` handler)."""
        headers = request.headers
        cors = self._cors
        cors_headers: list[tuple[bytes, bytes]] = []
        if cors is not None:
            origin = headers.get("origin")
            if request.method == "OPTIONS" and origin is not None:
                asked = headers.get("access-control-request-method")
                if asked is not None:
                    allowed = cors.preflight(
                        origin, asked, headers.get("access-control-request-headers")
                    )
                    await self._preflight(responder, allowed, origin, asked)
                    return
            cors_headers = cors.response_headers(origin)
        host = headers.get_bytes(b"host")
        match = self.routes.match(
            request.method, request.path, None if host is None else host.decode("latin-1")
        )
        if match is None:
            await responder.send_error(
                404, "not_found", f"no route for {request.path}", headers=cors_headers
            )
            return
        if isinstance(match, MethodNotAllowed):
            await responder.send_error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}",
                headers=[(b"Allow", match.allow_header.encode()), *cors_headers],
            )
            return
        runtime = match.route
        outcome = _Outcome()
        start = self._clock()
        try:
            limit = runtime.rate_limit
            if limit is not None:
                header = limit.key_header
                key = limit.key_of(
                    request.client_host, None if header is None else request.headers.get(header)
                )
                decision = limit.limit.check(key, start)
                rate_headers = [
                    (b"RateLimit-Limit", b"%d" % decision.limit),
                    (b"RateLimit-Remaining", b"%d" % decision.remaining),
                    (b"RateLimit-Reset", b"%d" % math.ceil(decision.reset_after)),
                ]
                if not decision.admitted:
                    outcome.status = 429
                    await responder.send_error(
                        429,
                        "rate_limited",
                        f"rate limit of {decision.limit} per {limit.limit.window:g}s reached "
                        f"on route {runtime.name}",
                        headers=[*_retry_after(decision.retry_after), *rate_headers, *cors_headers],
                    )
                    return
                cors_headers = [*cors_headers, *rate_headers] if cors_headers else rate_headers

            path = request.path
            view = runtime.default_view
            if runtime.versions is not None:
                try:
                    resolution = runtime.versions.resolve(request, rand=runtime.random.random())
                except UnknownVersionError as error:
                    outcome.status = 400
                    await responder.send_error(
                        400, "unknown_version", str(error), headers=cors_headers
                    )
                    return
                path = resolution.path
                view = runtime.view_for(resolution.version)
            elif runtime.canary is not None:
                view = self._canary_view(request, runtime)
            outcome.version = view.name

            breaker = runtime.breaker
            epoch = 0
            if breaker is not None:
                if breaker.allow(start) is REJECT:
                    outcome.status = 503
                    await responder.send_error(
                        503,
                        "circuit_open",
                        f"the circuit of route {runtime.name} is open",
                        headers=[*_retry_after(breaker.retry_after(start)), *cors_headers],
                    )
                    return
                epoch = breaker.epoch
            try:
                bulkhead = runtime.bulkhead
                if bulkhead is None:
                    await self._attempts(
                        request, responder, runtime, view, path, match, cors_headers, outcome, start
                    )
                else:
                    try:
                        await bulkhead.execute(
                            self._attempts,
                            request,
                            responder,
                            runtime,
                            view,
                            path,
                            match,
                            cors_headers,
                            outcome,
                            start,
                        )
                    except (BulkheadFullError, BulkheadTimeoutError) as error:
                        outcome.status = 503
                        await responder.send_error(
                            503,
                            "overloaded",
                            f"route {runtime.name}: {error}",
                            headers=cors_headers,
                        )
            except BaseException:
                # Cancelled (the client left) or broken: no outcome to count,
                # but a half-open probe slot must be handed back (rule 7).
                if breaker is not None:
                    breaker.release(epoch)
                raise
            if breaker is not None:
                if outcome.called:
                    now = self._clock()
                    breaker.on_result(outcome.ok, now - start, now, epoch)
                else:
                    breaker.release(epoch)
        finally:
            self._account(request, runtime, outcome, start)

    async def _preflight(
        self,
        responder: Responder,
        allowed: list[tuple[bytes, bytes]] | None,
        origin: str,
        asked: str,
    ) -> None:
        if allowed is None:
            await responder.send_error(403, "cors_refused", f"origin {origin} may not {asked}")
        else:
            await responder.start(204, allowed, content_length=0)
            await responder.end()

    def _canary_view(self, request: Request, runtime: RouteRuntime) -> VersionView:
        canary = runtime.canary
        assert canary is not None
        force = request.headers.get(CANARY_HEADER)
        if force is not None:
            force = force.strip().lower()
            if force not in ("always", "never"):
                force = None
        sticky = canary.config.sticky
        key: str | None = None
        if sticky == "ip":
            key = request.client_host
        elif sticky is not None:
            kind, _, name = sticky.partition(":")
            if kind == "header":
                key = request.headers.get(name)
            elif kind == "cookie":
                key = _cookie(request.headers.get("cookie"), name)
        if key is None:
            target = canary.choose_for(force, rand=runtime.random.random())
        else:
            target = canary.choose_for(force, key=key)
        return runtime.canary_view(target)

    async def _attempts(
        self,
        request: Request,
        responder: Responder,
        runtime: RouteRuntime,
        view: VersionView,
        path: str,
        match: RouteMatch[RouteRuntime],
        cors_headers: list[tuple[bytes, bytes]],
        outcome: _Outcome,
        start: float,
    ) -> None:
        policies = runtime.policies
        retry = runtime.retry
        if retry.budget is not None:
            retry.budget.record_request(start)
        deadline = None if policies.timeout is None else start + policies.timeout
        per_try = policies.per_try_timeout
        target = upstream_path(runtime.config, match, path, request.query).encode("latin-1")

        if request.body is EMPTY_BODY:
            # most requests: no body, and no coroutine to find that out
            too_large, body, content_length, replayable = False, None, request.content_length, True
        else:
            too_large, body, content_length, replayable = await self._body(
                request, retry.max_attempts, runtime
            )
        if too_large:
            outcome.status = 413
            await responder.send_error(
                413,
                "body_too_large",
                f"the request body exceeds {runtime.policies.max_body_bytes} bytes",
                headers=cors_headers,
            )
            return
        # Built once for every attempt; only a request without Host (HTTP/1.0)
        # needs each instance's address in it.
        headers: list[tuple[bytes, bytes]] | None = None
        has_host = request.headers.get_bytes(b"host") is not None
        mirror = runtime.mirror
        if mirror is not None and mirror.is_sampled(runtime.random.random()):
            mirror_body = body if isinstance(body, bytes) else (b"" if body is None else None)
            mirror_headers = upstream_request_headers(request, _mirror_pool)
            await mirror.mirror(request.method, target, mirror_headers, mirror_body, self._spawn)

        tried: list[str] = []
        attempt = 0
        last_error: UpstreamError | None = None
        while True:
            attempt += 1
            now = self._clock()
            candidates = runtime.static_candidates(view, now)
            if candidates is None:
                candidates = await runtime.candidates(view, now)
            population = len(candidates)
            instance: ServiceInstance | None
            if tried:
                # A retry draws among the instances not tried yet, beside the
                # balancer: through it, a round-robin cursor would land the
                # next request's first try on the failing instance again.
                fresh = [i for i in candidates if i.id not in tried] or list(candidates)
                instance = runtime.random.choice(fresh) if fresh else None
            else:
                instance = runtime.balancer.pick(candidates, client_ip=request.client_host)
            if instance is None:
                if last_error is not None:
                    break
                outcome.status = 503
                await responder.send_error(
                    503,
                    "no_healthy_instance",
                    f"no healthy instance of {runtime.source.name}"
                    + ("" if view.name == UNVERSIONED else f" version {view.name}"),
                    headers=[*_retry_after(1.0), *cors_headers],
                )
                return
            tried.append(instance.id)
            timeout = per_try
            if deadline is not None:
                left = deadline - now
                if left <= 0:
                    last_error = UpstreamTimeoutError("the route's timeout ran out")
                    break
                timeout = left if timeout is None else min(timeout, left)
            pool = self._pools.get(instance.host, instance.port)
            if headers is None or not has_host:
                headers = upstream_request_headers(request, pool)
            balancer = runtime.balancer
            balancer.on_start(instance)
            outcome.called = True
            sent_at = self._clock()
            finished = False  # whether the balancer heard how this try ended
            try:
                try:
                    response = await pool.request(
                        request.method,
                        target,
                        headers,
                        body,
                        content_length=content_length,
                        response_timeout=timeout,
                    )
                except UpstreamError as error:
                    last_error = error
                    ended = self._clock()
                    finished = True
                    balancer.on_finish(instance, ended - sent_at, False, ended)
                    self._instance_result(runtime, instance.id, False, ended, population)
                    if (
                        attempt < retry.max_attempts
                        and (replayable or not error.request_sent)
                        and retry.may_retry(request.method, error.request_sent, ended)
                    ):
                        await self._pause(retry.delay(attempt), deadline)
                        continue
                    break
                status = response.status
                failed = status >= 500
                received = self._clock()
                if (
                    status in retry.retry_on
                    and attempt < retry.max_attempts
                    and replayable
                    and retry.may_retry(request.method, True, received)
                ):
                    await response.discard()
                    finished = True
                    balancer.on_finish(instance, received - sent_at, False, received)
                    self._instance_result(runtime, instance.id, False, received, population)
                    await self._pause(retry.delay(attempt), deadline)
                    continue
                latency_ms = (received - sent_at) * 1000.0
                result = await relay_response(
                    request, responder, response, latency_ms, cors_headers
                )
                ended = self._clock()
                ok = not failed and result.error is None
                finished = True
                balancer.on_finish(instance, ended - sent_at, ok, ended)
                self._instance_result(runtime, instance.id, ok, ended, population)
                outcome.status = status
                outcome.ok = ok
                return
            except BaseException:
                # Cancelled mid-try (the client left): a load-aware balancer
                # must not count this request in flight forever.
                if not finished:
                    now = self._clock()
                    balancer.on_finish(instance, now - sent_at, False, now)
                raise
        # every attempt failed at the transport level
        outcome.ok = False
        assert last_error is not None
        if isinstance(last_error, UpstreamTimeoutError):
            outcome.status = 504
            await responder.send_error(
                504,
                "upstream_timeout",
                f"{runtime.source.name} did not answer in time",
                headers=cors_headers,
            )
        else:
            outcome.status = 502
            await responder.send_error(
                502,
                "upstream_failed",
                f"{runtime.source.name} failed: {last_error}",
                headers=cors_headers,
            )

    async def _body(
        self, request: Request, max_attempts: int, runtime: RouteRuntime
    ) -> tuple[bool, bytes | AsyncIterable[bytes] | None, int | None, bool]:
        """(too_large, body, content_length, replayable) for the upstream request."""
        body = request.body
        if body is EMPTY_BODY:
            return False, None, request.content_length, True
        limit = runtime.policies.max_body_bytes
        length = request.content_length
        if limit is not None and length is not None and length > limit:
            return True, None, None, False
        whole = body.take_if_received()
        if whole is not None:
            return False, whole, len(whole), True
        wants_copy = max_attempts > 1 or runtime.mirror is not None
        if wants_copy and length is not None and length <= REPLAY_BUFFER_BYTES:
            whole = await body.read_all(REPLAY_BUFFER_BYTES)
            return False, whole, len(whole), True
        return False, body, body.length, False

    async def _pause(self, delay: float, deadline: float | None) -> None:
        if delay <= 0:
            return
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - self._clock()))
        await self._sleep(delay)

    def _instance_result(
        self, runtime: RouteRuntime, instance_id: str, ok: bool, now: float, population: int
    ) -> None:
        outliers = runtime.outliers
        if outliers is not None:
            outliers.on_result(instance_id, ok, now, population)

    def _account(
        self, request: Request, runtime: RouteRuntime, outcome: _Outcome, start: float
    ) -> None:
        if outcome.status == 0:
            return  # cancelled, or the client went away before an answer
        latency_ms = (self._clock() - start) * 1000.0
        ok = outcome.ok and outcome.status < 500
        if self._metrics is not None:
            self._metrics.record(
                runtime.name,
                outcome.version,
                outcome.status,
                ok,
                latency_ms,
                reached_upstream=outcome.called,
            )
        canary = runtime.canary
        if canary is not None and outcome.called:
            target = runtime.view_for(outcome.version).canary_target
            if target is not None:
                if ok:
                    canary.record_success(target, latency_ms)
                else:
                    canary.record_failure(target, latency_ms)
        access = self._log_access
        if access is not None:
            access.write(
                AccessEntry(
                    time=time.time(),
                    method=request.method,
                    path=request.path,
                    route=runtime.name,
                    version=outcome.version,
                    status=outcome.status,
                    duration_ms=round(latency_ms, 3),
                    client=request.client_host,
                    request_id=request.request_id,
                )
            )


def _cookie(header: str | None, name: str) -> str | None:
    if header is None:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class _MirrorPool:
    """The Host a mirrored request without one gets: none in particular."""

    host = "mirror"
    port = 80


_mirror_pool = _MirrorPool()
