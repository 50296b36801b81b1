"""How HTTP/1.1 message heads and chunks are laid out on the wire. Pure.

Heads are joined once into one bytes object so that a whole small response
leaves in a single `transport.write`. A header value holding CR or LF would
split the head (response splitting); counting the line feeds of the joined
head catches it at the cost of one C-level scan.
"""

from __future__ import annotations

from http import HTTPStatus

_STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("ascii") for s in HTTPStatus
}

CHUNKED_END = b"0\r\n\r\n"
CONTINUE_LINE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HeaderInjectionError(ValueError):
    """A header name or value contains CR or LF."""


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <reason>\\r\\n` (empty reason for unknown codes).

    >>> status_line(404)
    b'HTTP/1.1 404 Not Found\\r\\n'
    >>> status_line(599)
    b'HTTP/1.1 599 \\r\\n'
    """
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"status {status} is not a three-digit HTTP status")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def encode_head(first_line: bytes, headers: list[tuple[bytes, bytes]], extra: bytes) -> bytes:
    """Join a start line (with its CRLF), header pairs, pre-encoded `extra`
    header lines and the blank line into one head.

    >>> encode_head(b"HTTP/1.1 200 OK\\r\\n", [(b"a", b"1")], b"content-length: 0\\r\\n")
    b'HTTP/1.1 200 OK\\r\\na: 1\\r\\ncontent-length: 0\\r\\n\\r\\n'
    """
    parts = [first_line]
    append = parts.append
    for name, value in headers:
        append(name)
        append(b": ")
        append(value)
        append(b"\r\n")
    append(extra)
    append(b"\r\n")
    head = b"".join(parts)
    if head.count(b"\n") != len(headers) + extra.count(b"\n") + 2:
        raise HeaderInjectionError("a header name or value contains CR or LF")
    return head


def chunk_header(size: int) -> bytes:
    """The size line that opens a chunk of `size` bytes.

    >>> chunk_header(255)
    b'ff\\r\\n'
    """
    return b"%x\r\n" % size
