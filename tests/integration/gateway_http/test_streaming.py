"""Bodies stream through the proxy without being held whole: memory stays
flat for transfers far larger than any buffer, and a slow client stalls
the upstream instead of filling the gateway's memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from meshgate.gateway.http import ServerLimits

from .conftest import Backend, RawClient, proxy_to

pytestmark = pytest.mark.anyio

Clients = Callable[[int], Awaitable[RawClient]]

MB = 1024 * 1024
UNLIMITED = ServerLimits(max_body_bytes=None)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def test_200_mb_echoed_through_the_proxy_keeps_memory_flat(
    backend: Backend, clients: Clients
) -> None:
    size = 200 * MB
    async with proxy_to(backend, UNLIMITED) as (gateway, _):
        client = await clients(gateway.port)
        baseline = rss_bytes()
        peak = baseline
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_bytes())
                await asyncio.sleep(0.02)

        async def upload() -> None:
            await client.send(
                b"POST /echo HTTP/1.1\r\nHost: g\r\nContent-Length: %d\r\n\r\n" % size
            )
            piece = b"x" * (256 * 1024)
            for _ in range(size // len(piece)):
                client.writer.write(piece)
                await client.writer.drain()

        async def download() -> int:
            head = await client.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert b"Transfer-Encoding: chunked" in head
            received = 0
            tail = b""
            while not tail.endswith(b"\r\n0\r\n\r\n"):
                chunk = await client.reader.read(256 * 1024)
                assert chunk, "connection closed mid-body"
                received += chunk.count(b"x")
                tail = (tail + chunk)[-16:]
            return received

        sampler = asyncio.ensure_future(sample())
        _, received = await asyncio.wait_for(asyncio.gather(upload(), download()), 60)
        done.set()
        await sampler
    assert received == size
    assert backend.requests[0].body_size == size
    assert peak - baseline < 50 * MB, f"RSS grew by {(peak - baseline) / MB:.1f} MB"


async def test_slow_client_stalls_the_upstream_instead_of_buffering(
    backend: Backend, clients: Clients
) -> None:
    size = 100 * MB
    async with proxy_to(backend, UNLIMITED) as (gateway, _):
        client = await clients(gateway.port)
        await client.send(b"GET /big?size=%d HTTP/1.1\r\nHost: g\r\n\r\n" % size)
        # the client reads nothing: only socket buffers and the proxy's
        # high-water marks may fill before the upstream is stopped
        await asyncio.sleep(0.3)
        stalled_at = backend.big_bytes_sent
        await asyncio.sleep(0.2)
        assert backend.big_bytes_sent == stalled_at
        assert stalled_at < 40 * MB
        # and it all flows once the client reads again
        received = 0
        head = await client.reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: %d" % size in head
        while received < size:
            chunk = await client.reader.read(1024 * 1024)
            assert chunk
            received += len(chunk)
    assert received == size


async def test_large_upload_is_streamed_to_the_upstream(backend: Backend, clients: Clients) -> None:
    size = 20 * MB
    async with proxy_to(backend, UNLIMITED) as (gateway, _):
        client = await clients(gateway.port)
        await client.send(b"POST /sink HTTP/1.1\r\nHost: g\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"u" * (1024 * 1024)
        for _ in range(size // len(piece)):
            await client.send(piece)
        reply = await client.response()
    assert reply.body == str(size).encode()
