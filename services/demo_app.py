"""`DemoApp`: what a demo service answers.

- ``GET /health`` (and HEAD): 200 ``{"status": "UP", "service", "instance",
  "version"}``, or 503 with ``"status": "DOWN"`` while `fail_health` is on.
- ``GET /_knobs``: the knobs now, ``{"error_rate", "latency_ms", "fail_health"}``.
- ``POST /_knobs``: change knobs with a JSON object holding any of
  ``error_rate`` (0..1), ``latency_ms`` (>= 0) and ``fail_health`` (bool);
  answers the knobs after the change, or 400 naming a bad value. From
  loopback only (403 otherwise), unless the service allows remote knobs.
- ``GET /_stats``: ``{"requests", "failures"}``, the requests the catch-all
  answered and how many of them got an injected 500.
- anything else, any method: after `latency`, 200 ``{"service", "instance",
  "version", "zone", "tags", "method", "path", "query"}`` (`query` is the
  raw query string), or, for a seeded `error_rate` share of requests, 500
  ``{"error": "injected failure", "service", "instance", "version"}``.

Every answer carries ``X-Served-By: <instance id>``. The latency and the
injected errors touch only the catch-all, so health checks and knob changes
stay quick and truthful while a demo makes the service misbehave.

>>> import anyio, json
>>> app = DemoApp(ServiceIdentity(service="user-service", instance="user-1", version="1.0.0",
...                               zone="us-east-1", tags=("v1",)), Knobs())
>>> request = Request(method="GET", target="/users/7?full=1", headers=(), body=b"")
>>> json.loads(anyio.run(app.handle, request).body)["path"]
'/users/7'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import anyio
import msgspec

from services.http_server import Request, Response, is_loopback
from services.knobs import Knobs, KnobUpdate

Sleep = Callable[[float], Awaitable[None]]

HEALTH_PATH = "/health"
KNOBS_PATH = "/_knobs"
STATS_PATH = "/_stats"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceIdentity:
    """Who answers: shown in every body, so a caller sees which instance and
    version served it."""

    service: str
    instance: str
    version: str
    zone: str | None = None
    tags: tuple[str, ...] = ()


class DemoApp:
    """Answers requests as the module docstring says. `allow_remote_knobs`
    lets ``POST /_knobs`` come from any address (a container's port on the
    host is not loopback to the service); `sleep` is how latency is spent."""

    def __init__(
        self,
        identity: ServiceIdentity,
        knobs: Knobs,
        *,
        allow_remote_knobs: bool = False,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.identity = identity
        self.knobs = knobs
        self.requests = 0
        self.failures = 0
        self._allow_remote_knobs = allow_remote_knobs
        self._sleep = sleep
        self._served_by = (("x-served-by", identity.instance),)

    async def handle(self, request: Request) -> Response:
        """The answer to `request`."""
        if request.path == HEALTH_PATH:
            return self._health(request)
        if request.path == KNOBS_PATH:
            return self._knobs(request)
        if request.path == STATS_PATH:
            return self._stats(request)
        return await self._echo(request)

    def _health(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return self._not_allowed("GET, HEAD")
        status, word = (503, "DOWN") if self.knobs.fail_health else (200, "UP")
        return self._json(status, {"status": word, **self._who()})

    def _knobs(self, request: Request) -> Response:
        if request.method == "GET":
            return self._json(200, self.knobs.as_json())
        if request.method != "POST":
            return self._not_allowed("GET, POST")
        if not (self._allow_remote_knobs or is_loopback(request.client_host)):
            return self._json(403, {"error": "knobs change from loopback only"})
        try:
            update = msgspec.json.decode(request.body, type=KnobUpdate)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            return self._json(400, {"error": str(error)})
        self.knobs.apply(update)
        return self._json(200, self.knobs.as_json())

    def _stats(self, request: Request) -> Response:
        if request.method != "GET":
            return self._not_allowed("GET")
        return self._json(200, {"requests": self.requests, "failures": self.failures})

    async def _echo(self, request: Request) -> Response:
        self.requests += 1
        if self.knobs.latency > 0:
            await self._sleep(self.knobs.latency)
        if self.knobs.should_fail():
            self.failures += 1
            return self._json(500, {"error": "injected failure", **self._who()})
        identity = self.identity
        return self._json(
            200,
            {
                **self._who(),
                "zone": identity.zone,
                "tags": list(identity.tags),
                "method": request.method,
                "path": request.path,
                "query": request.query,
            },
        )

    def _who(self) -> dict[str, str]:
        identity = self.identity
        return {
            "service": identity.service,
            "instance": identity.instance,
            "version": identity.version,
        }

    def _json(self, status: int, payload: object) -> Response:
        return Response.json(status, payload, headers=self._served_by)

    def _not_allowed(self, allowed: str) -> Response:
        response = self._json(405, {"error": f"method not allowed; use {allowed}"})
        return dataclasses.replace(response, headers=(*response.headers, ("allow", allowed)))
