"""Traffic mirroring: a copy of some requests goes to another service, and
nothing about it can touch the main response.

Rules:

1. A request is mirrored with probability `percentage / 100` (randomness is
   passed in, so tests choose it).
2. Only requests whose body the gateway already holds are mirrored (no body,
   or one buffered for retries, up to `max_body_bytes`); a streamed upload is
   not read twice. Skips are counted, never silent.
3. At most `max_concurrent` mirror requests are in flight; past that a
   mirror is dropped and counted, so a slow mirror target cannot pile up
   memory or sockets.
4. Fire-and-forget mirrors run in the gateway's task group; with
   `wait_for_response` the main response waits for the mirror (bounded by
   `timeout`) but still never sees its outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import structlog

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.gateway.upstream_source import UpstreamSource

Spawn = Callable[[Callable[[], Awaitable[None]]], None]
"""Starts a coroutine function in a task group that outlives the request."""

SendMirror = Callable[
    [ServiceInstance, str, bytes, list[tuple[bytes, bytes]], bytes, float], Awaitable[int]
]
"""(instance, method, target, headers, body, timeout) -> status: the HTTP call."""

_log = structlog.get_logger("meshgate.gateway")


@dataclass(slots=True)
class MirrorStats:
    sent: int = 0
    failed: int = 0
    dropped_busy: int = 0
    skipped_body: int = 0
    skipped_no_instance: int = 0


class TrafficMirror:
    """Copies sampled requests to `source`'s instances."""

    __slots__ = (
        "_balancer",
        "_in_flight",
        "_send",
        "_source",
        "max_body_bytes",
        "max_concurrent",
        "percentage",
        "stats",
        "timeout",
        "wait_for_response",
    )

    def __init__(
        self,
        source: UpstreamSource,
        balancer: LoadBalancer,
        send: SendMirror,
        *,
        percentage: float = 100.0,
        wait_for_response: bool = False,
        max_concurrent: int = 32,
        max_body_bytes: int = 64 * 1024,
        timeout: float = 5.0,
    ) -> None:
        self._source = source
        self._balancer = balancer
        self._send = send
        self.percentage = percentage
        self.wait_for_response = wait_for_response
        self.max_concurrent = max_concurrent
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self._in_flight = 0
        self.stats = MirrorStats()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def is_sampled(self, rand: float) -> bool:
        """Whether a request drawn `rand` in [0, 1) is mirrored."""
        return rand * 100.0 < self.percentage

    async def mirror(
        self,
        method: str,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | None,
        spawn: Spawn,
    ) -> None:
        """Send the copy (or count why not). Never raises."""
        if body is None:
            self.stats.skipped_body += 1
            return
        if len(body) > self.max_body_bytes:
            self.stats.skipped_body += 1
            return
        if self._in_flight >= self.max_concurrent:
            self.stats.dropped_busy += 1
            return
        instances = await self._source.instances()
        instance = self._balancer.pick(instances)
        if instance is None:
            self.stats.skipped_no_instance += 1
            return
        self._in_flight += 1
        copied = list(headers)

        async def send() -> None:
            try:
                with anyio.move_on_after(self.timeout):
                    await self._send(instance, method, target, copied, body, self.timeout)
                    self.stats.sent += 1
                    return
                self.stats.failed += 1
            except Exception as error:
                self.stats.failed += 1
                _log.debug("mirror.failed", target=self._source.name, error=repr(error))
            finally:
                self._in_flight -= 1

        if self.wait_for_response:
            await send()
        else:
            spawn(send)
