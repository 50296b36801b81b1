"""Access logs: one JSON line per answered request, to a file of their own
(`middleware.access_log`) or, without one, as `request.completed` events of
the process's structlog logger.

The file path is the hot path's: entries are msgspec Structs encoded by one
reused encoder into a buffered file, flushed when the buffer fills and on
close; no structlog processors run per request.
"""

from __future__ import annotations

from typing import IO

import msgspec
import structlog

_BUFFER_BYTES = 64 * 1024


class AccessEntry(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One answered request. `time` is wall-clock epoch seconds; durations are ms."""

    time: float
    method: str
    path: str
    route: str
    version: str
    status: int
    duration_ms: float
    client: str
    request_id: str


class AccessLog:
    """Where access entries go.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "access.log"
    >>> log = AccessLog(str(path))
    >>> log.write(AccessEntry(time=0.0, method="GET", path="/a", route="a", version="default",
    ...                       status=200, duration_ms=1.5, client="127.0.0.1", request_id="r1"))
    >>> log.close()
    >>> path.read_text().count("\\n"), '"status":200' in path.read_text()
    (1, True)
    """

    __slots__ = ("_buffer", "_encoder", "_file", "_logger", "path")

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        """Reused for every line: encoded into, then copied by the file's buffer."""
        self._file: IO[bytes] | None = (
            None if path is None else open(path, "ab", buffering=_BUFFER_BYTES)  # noqa: SIM115
        )
        self._logger = structlog.get_logger("meshgate.access")

    def write(self, entry: AccessEntry) -> None:
        file = self._file
        if file is not None:
            line = self._buffer
            self._encoder.encode_into(entry, line)
            line.extend(b"\n")
            file.write(line)
        else:
            self._logger.info("request.completed", **msgspec.structs.asdict(entry))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
