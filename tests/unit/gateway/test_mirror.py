"""The mirror's bookkeeping, with the HTTP call replaced by a recorder; the
real HTTP path is covered by the gateway's integration tests."""

from collections.abc import Awaitable, Callable

import anyio
import pytest

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers import RoundRobinBalancer
from meshgate.gateway.mirror import TrafficMirror
from meshgate.gateway.upstream_source import StaticUpstreams

pytestmark = pytest.mark.anyio

Sent = list[tuple[str, str, bytes, bytes]]


def _mirror(
    sent: Sent, *, delay: float = 0.0, fail: bool = False, **options: object
) -> TrafficMirror:
    async def send(
        instance: ServiceInstance,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout: float,  # noqa: ASYNC109 - the mirror's call signature
    ) -> int:
        await anyio.sleep(delay)
        if fail:
            raise ConnectionRefusedError("mirror target down")
        sent.append((instance.id, method, target, body))
        return 200

    source = StaticUpstreams("analytics", ["127.0.0.1:9100"])
    return TrafficMirror(source, RoundRobinBalancer(), send, **options)  # type: ignore[arg-type]


def test_sampling_follows_the_percentage() -> None:
    mirror = _mirror([], percentage=25)
    assert mirror.is_sampled(0.0)
    assert mirror.is_sampled(0.2499)
    assert not mirror.is_sampled(0.25)


async def test_fire_and_forget_mirrors_run_in_the_given_task_group() -> None:
    sent: Sent = []
    mirror = _mirror(sent)
    async with anyio.create_task_group() as tg:
        spawn: Callable[[Callable[[], Awaitable[None]]], None] = tg.start_soon
        await mirror.mirror("POST", b"/orders", [], b"{}", spawn)
        assert sent == []  # not waited for
    assert sent == [("127.0.0.1:9100", "POST", b"/orders", b"{}")]
    assert mirror.stats.sent == 1


async def test_wait_for_response_sends_before_returning() -> None:
    sent: Sent = []
    mirror = _mirror(sent, wait_for_response=True)
    await mirror.mirror("GET", b"/p", [], b"", lambda fn: None)
    assert len(sent) == 1


async def test_a_failing_mirror_is_counted_and_never_raises() -> None:
    mirror = _mirror([], fail=True, wait_for_response=True)
    await mirror.mirror("GET", b"/p", [], b"", lambda fn: None)
    assert mirror.stats.failed == 1
    assert mirror.in_flight == 0


async def test_a_slow_mirror_is_cut_at_its_timeout() -> None:
    mirror = _mirror([], delay=10.0, wait_for_response=True, timeout=0.05)
    with anyio.fail_after(2):
        await mirror.mirror("GET", b"/p", [], b"", lambda fn: None)
    assert mirror.stats.failed == 1


async def test_mirrors_beyond_max_concurrent_are_dropped() -> None:
    sent: Sent = []
    mirror = _mirror(sent, delay=0.05, max_concurrent=2)
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            await mirror.mirror("GET", b"/p", [], b"", tg.start_soon)
        assert mirror.in_flight == 2
    assert mirror.stats.sent == 2
    assert mirror.stats.dropped_busy == 3


async def test_streamed_or_large_bodies_are_not_mirrored() -> None:
    mirror = _mirror([], max_body_bytes=4, wait_for_response=True)
    await mirror.mirror("POST", b"/p", [], None, lambda fn: None)
    await mirror.mirror("POST", b"/p", [], b"12345", lambda fn: None)
    assert mirror.stats.skipped_body == 2
    assert mirror.stats.sent == 0
