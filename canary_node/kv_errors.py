"""One error class for what can go wrong talking to a KV bucket, so the
controller's loops catch `BusError` and retry, whatever nats-py raised."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import nats.errors

from meshgate.bus.errors import BusUnavailableError


@contextlib.contextmanager
def kv_failures_as_bus_errors(what: str) -> Iterator[None]:
    """Turn nats-py's errors (timeouts, JetStream API errors, a connection
    gone) inside the block into `BusUnavailableError` naming `what`.

    >>> with kv_failures_as_bus_errors("lease MESH_CANARY.leader"):
    ...     raise nats.errors.TimeoutError
    Traceback (most recent call last):
    ...
    meshgate.bus.errors.BusUnavailableError: lease MESH_CANARY.leader: nats: timeout
    """
    try:
        yield
    except nats.errors.Error as exc:
        raise BusUnavailableError(f"{what}: {exc}") from exc


__all__ = ["kv_failures_as_bus_errors"]
