"""Bytes on the wire: JSON by default, msgpack when asked.

Decoding needs no setting: every payload is a Struct, so JSON starts with
``{`` and msgpack with a map marker, and a receiver reads either. A cluster
can therefore switch codec one process at a time.

>>> from meshgate.bus.messages import ControlRequest
>>> data = encode(ControlRequest(route="/api/orders/**", action="pause"))
>>> data
b'{"v":1,"route":"/api/orders/**","action":"pause"}'
>>> decode(encode(ControlRequest(route="r", action="resume"), "msgpack"), ControlRequest)
ControlRequest(v=1, route='r', action='resume')
"""

from __future__ import annotations

import functools
from types import UnionType
from typing import Any, Literal, TypeVar

import msgspec
from structlog.typing import FilteringBoundLogger

T = TypeVar("T")

Codec = Literal["json", "msgpack"]

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
# JSON may arrive hand-written (e.g. from the `nats pub` CLI) with leading
# whitespace; none of these bytes can start a msgpack map.
_JSON_FIRST_BYTES = frozenset(b"{ \t\r\n")


def encode(message: msgspec.Struct, codec: Codec = "json") -> bytes:
    """`message` as bytes in `codec`."""
    if codec == "json":
        return _json_encoder.encode(message)
    if codec == "msgpack":
        return _msgpack_encoder.encode(message)
    raise ValueError(f"codec={codec!r}: expected 'json' or 'msgpack'")


@functools.lru_cache(maxsize=256)
def _decoders(
    type_: Any,
) -> tuple[msgspec.json.Decoder[Any], msgspec.msgpack.Decoder[Any]]:
    return msgspec.json.Decoder(type_), msgspec.msgpack.Decoder(type_)


def decode(data: bytes, type_: type[T] | UnionType) -> T:
    """`data` (JSON or msgpack) as `type_`; raises `msgspec.DecodeError` (whose
    `ValidationError` subclass names the offending path) when it is not."""
    decoder = _pick_decoder(data, type_)
    result: T = decoder.decode(data)
    return result


def decode_or_drop(
    data: bytes, type_: type[T] | UnionType, subject: str, log: FilteringBoundLogger
) -> T | None:
    """`data` as `type_`, or None after logging ``bus.message_dropped``.

    Never raises for bad input, so one malformed message cannot stop the
    node that receives it. (A `type_` that msgspec cannot decode into is a
    programming error and does raise.)

    >>> import structlog
    >>> from structlog.testing import capture_logs
    >>> from meshgate.bus.messages import Presence
    >>> with capture_logs() as logs:
    ...     decode_or_drop(b"not json", Presence, "mesh.gateway.presence", structlog.get_logger())
    >>> logs[0]["event"], logs[0]["subject"]
    ('bus.message_dropped', 'mesh.gateway.presence')
    """
    decoder = _pick_decoder(data, type_)
    try:
        result: T = decoder.decode(data)
    except Exception as exc:  # whatever the bytes were, the node must keep running
        log.warning(
            "bus.message_dropped",
            subject=subject,
            reason=str(exc),
            expected=getattr(type_, "__name__", str(type_)),
            size=len(data),
        )
        return None
    return result


def _pick_decoder(
    data: bytes, type_: Any
) -> msgspec.json.Decoder[Any] | msgspec.msgpack.Decoder[Any]:
    json_decoder, msgpack_decoder = _decoders(type_)
    return json_decoder if data[:1] and data[0] in _JSON_FIRST_BYTES else msgpack_decoder
