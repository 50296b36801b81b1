"""What a subscription does with one message, shared by `Bus` and
`InProcessBus` so that both drop, log and answer in exactly the same way."""

from __future__ import annotations

from types import UnionType
from typing import NamedTuple, TypeVar

from structlog.typing import FilteringBoundLogger

from meshgate.bus.codec import Codec, decode_or_drop, encode
from meshgate.bus.protocol import Handler, Responder

M = TypeVar("M")
Q = TypeVar("Q")

BAD_REQUEST = "400"
HANDLER_FAILED = "500"


class Answer(NamedTuple):
    """The reply to send: `data`, or an error (`code`, `description`)."""

    data: bytes
    error: tuple[str, str] | None = None


async def deliver(
    data: bytes,
    subject: str,
    message_type: type[M] | UnionType,
    handler: Handler[M],
    log: FilteringBoundLogger,
) -> None:
    """Decode `data` and run `handler` on it; never raises but cancellation."""
    message = decode_or_drop(data, message_type, subject, log)
    if message is None:
        return
    try:
        await handler(message)
    except Exception:  # one bad message or handler bug must not end the subscription
        log.exception("bus.handler_failed", subject=subject)


async def answer(
    data: bytes,
    subject: str,
    request_type: type[Q],
    handler: Responder[Q],
    codec: Codec,
    log: FilteringBoundLogger,
) -> Answer:
    """The reply to one request; errors become an error answer, never an exception."""
    request = decode_or_drop(data, request_type, subject, log)
    if request is None:
        return Answer(b"", (BAD_REQUEST, f"request does not decode as {request_type.__name__}"))
    try:
        return Answer(encode(await handler(request), codec))
    except Exception as exc:  # the requester learns at once instead of timing out
        log.exception("bus.handler_failed", subject=subject)
        return Answer(b"", (HANDLER_FAILED, f"{type(exc).__name__}: {exc}"))
