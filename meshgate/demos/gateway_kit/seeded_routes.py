"""Seeded randomness for a demo's routes, so that it tells the same story on
every run.

Each route draws from its own random generator: which version serves a
request that names none, which side of a canary, whether a request is
mirrored. The gateway seeds them from the OS; a demo seeds them by route
name instead.
"""

from __future__ import annotations

from meshgate.gateway import GatewayServer


def seed_routes(gateway: GatewayServer, seed: int) -> None:
    """Seed every route of `gateway` with `seed` and its name (a route added
    later needs this again: it gets a fresh generator)."""
    for runtime in gateway.runtimes():
        runtime.random.seed(f"{seed}:{runtime.name}")
