"""`run_registry`: one registry node as a process — connect to NATS, open
the backend, serve until SIGTERM or SIGINT, then shut down cleanly.

Registrations are left where they are on shutdown: with a shared backend
(NATS KV, Redis, Consul) the other nodes, or this one restarted, carry on
with them.
"""

from __future__ import annotations

import signal

import anyio
import anyio.abc
import structlog

from meshgate.bus.connection import Bus, redact_servers
from meshgate.bus.credentials import NatsCredentials
from meshgate.bus.errors import BusUnavailableError
from meshgate.bus.event_stream import ensure_event_stream
from meshgate.bus.signing import RegistrationSigner
from registry_node.backend_spec import build_backend, parse_backend_spec
from registry_node.service import RegistryService, default_node_id

log = structlog.get_logger("meshgate.registry")


async def run_registry(
    nats_url: str,
    backend_spec: str,
    *,
    prefix: str = "mesh",
    default_ttl: float = 30.0,
    max_ttl: float = 3600.0,
    sweep_interval: float = 0.5,
    node_id: str | None = None,
    connect_timeout: float = 10.0,
    credentials: NatsCredentials | None = None,
    signer: RegistrationSigner | None = None,
) -> None:
    """Run a registry node until SIGTERM/SIGINT (or until cancelled).

    Raises ValueError for a bad `backend_spec` (before connecting),
    `BusUnavailableError` when NATS does not answer within `connect_timeout`
    seconds (it is waited for meanwhile, so a node may start before NATS),
    and `BusAuthError` at once when NATS refuses `credentials`. With a
    `signer`, requests that change the registry must be signed with its key.

    >>> async def main() -> None:
    ...     await run_registry("nats://127.0.0.1:4222", "nats-kv", sweep_interval=2.0)
    """
    spec = parse_backend_spec(backend_spec)
    node_id = node_id or default_node_id()
    with anyio.move_on_after(connect_timeout) as connecting:
        bus = await Bus.connect(
            nats_url,
            prefix=prefix,
            name=f"registry-{node_id}",
            wait_for_server=True,
            credentials=credentials,
        )
    if connecting.cancelled_caught:
        raise BusUnavailableError(
            f"cannot connect to {redact_servers([nats_url])} within {connect_timeout:g}s"
        )
    async with bus:
        # Registry events are kept for `meshgate events`, whether or not a
        # gateway has created the stream yet.
        await ensure_event_stream(bus)
        backend = build_backend(spec, bus, prefix=prefix, node_id=node_id)
        service = RegistryService(
            bus,
            backend,
            default_ttl=default_ttl,
            max_ttl=max_ttl,
            sweep_interval=sweep_interval,
            node_id=node_id,
            signer=signer,
        )
        try:
            async with anyio.create_task_group() as tg:
                # Handlers first: a signal during start-up stops cleanly too.
                await tg.start(_stop_on_signal, tg.cancel_scope)
                await tg.start(service.run)
                log.info(
                    "registry.started",
                    node=node_id,
                    backend=spec.describe(),
                    prefix=prefix,
                    nats=redact_servers([nats_url]),
                    signed_requests_only=signer is not None,
                )
        finally:
            with anyio.CancelScope(shield=True):
                await backend.aclose()
    log.info("registry.stopped", node=node_id)


async def _stop_on_signal(
    scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("registry.stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return
