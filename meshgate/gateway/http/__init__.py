"""The gateway's HTTP hot path: an HTTP/1.1 server and a keep-alive upstream
client on asyncio protocols with httptools parsing, and `forward` between
them. uvloop is used where installed (`install_fast_loop`), never required.

    install_fast_loop()

    async def main() -> None:
        pools = UpstreamPools()

        async def handler(request: Request, responder: Responder) -> None:
            await forward(request, responder, pools.get("127.0.0.1", 9000),
                          target=request.raw_target, response_timeout=10.0)

        server = HttpServer(handler)
        await server.start("127.0.0.1", 8080)
        ...
"""

from meshgate.gateway.http.access import AccessRecord
from meshgate.gateway.http.headers import Headers
from meshgate.gateway.http.limits import ServerLimits
from meshgate.gateway.http.loop import install_fast_loop, new_event_loop
from meshgate.gateway.http.proxy import ForwardResult, forward
from meshgate.gateway.http.request import Handler, Request, RequestBody, Responder
from meshgate.gateway.http.request_errors import (
    BodyTimeoutError,
    BodyTooLargeError,
    ClientDisconnectedError,
    MalformedBodyError,
    RequestBodyError,
)
from meshgate.gateway.http.server import HttpServer
from meshgate.gateway.http.target import BadPathError, normalize_path
from meshgate.gateway.http.upstream import PoolStats, UpstreamPool, UpstreamPools
from meshgate.gateway.http.upstream_errors import (
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamConnectTimeoutError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponseTooLargeError,
    UpstreamTimeoutError,
)
from meshgate.gateway.http.upstream_response import UpstreamResponse

__all__ = [
    "AccessRecord",
    "BadPathError",
    "BodyTimeoutError",
    "BodyTooLargeError",
    "ClientDisconnectedError",
    "ForwardResult",
    "Handler",
    "Headers",
    "HttpServer",
    "MalformedBodyError",
    "PoolStats",
    "Request",
    "RequestBody",
    "RequestBodyError",
    "Responder",
    "ServerLimits",
    "UpstreamClosedError",
    "UpstreamConnectError",
    "UpstreamConnectTimeoutError",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamPools",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamResponseTooLargeError",
    "UpstreamTimeoutError",
    "forward",
    "install_fast_loop",
    "new_event_loop",
    "normalize_path",
]
