"""The HTTP call of a mirrored request: the same upstream client as the
proxy, its response read and thrown away (the mirror's answer never reaches
anyone)."""

from __future__ import annotations

from meshgate.bus.instance import ServiceInstance
from meshgate.gateway.http.upstream import UpstreamPools

_DISCARD_LIMIT = 1024 * 1024


async def send_mirror_request(
    pools: UpstreamPools,
    instance: ServiceInstance,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    timeout: float,  # noqa: ASYNC109 - the upstream client's own per-wait timeout
) -> int:
    """Send one mirrored request to `instance`; returns its status."""
    pool = pools.get(instance.host, instance.port)
    response = await pool.request(
        method,
        target,
        headers,
        body or None,
        content_length=len(body) if body else None,
        response_timeout=timeout,
    )
    await response.discard()
    return response.status
