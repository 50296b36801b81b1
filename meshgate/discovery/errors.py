"""Errors raised by service discovery; all derive from `DiscoveryError`, so a
caller that wants "anything discovery could not do" catches one class.

>>> try:
...     raise NoInstanceAvailableError("user-service")
... except DiscoveryError as error:
...     print(error)
no instance of 'user-service' is available
"""

from __future__ import annotations


class DiscoveryError(Exception):
    """Base class of every error that `meshgate.discovery` raises itself."""


class InvalidRegistrationError(DiscoveryError, ValueError):
    """A `ServiceRegistry` config has an unknown key or a value of the wrong
    type; the message names the key (and msgspec's path for nested values).

    A `ValueError` too, like every other bad option in meshgate.
    """


class RegistryUnavailableError(DiscoveryError):
    """The registry cannot be reached (no registry node answers, the backend's
    server is down), and there is no last-known answer to fall back on.

    `service` is the service that was asked about, when there was one.
    """

    def __init__(self, message: str, *, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


class NoInstanceAvailableError(DiscoveryError):
    """No instance of `service` can take a request: none is registered, none is
    UP, or every UP one has an open circuit. `reason` says which, when known.

    >>> str(NoInstanceAvailableError("payment", "every instance's circuit is open"))
    "no instance of 'payment' is available: every instance's circuit is open"
    """

    def __init__(self, service: str, reason: str | None = None) -> None:
        message = f"no instance of {service!r} is available"
        super().__init__(message if reason is None else f"{message}: {reason}")
        self.service = service
        self.reason = reason
