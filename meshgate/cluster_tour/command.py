"""`meshgate tour [SCENARIO]`: play the reference's scenarios against a
running `meshgate up` cluster, each with a readable account.

>>> parser = argparse.ArgumentParser(prog="meshgate tour")
>>> configure(parser)
>>> parser.parse_args(["version-routing"]).scenario
'version-routing'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

import anyio
import httpx

from meshgate.bus.connection import Bus
from meshgate.bus.credentials import add_nats_arguments, credentials_from_args
from meshgate.bus.errors import BusError
from meshgate.cluster_tour import canary_deployment, full_stack, traffic_management, version_routing
from meshgate.cluster_tour.context import Tour, TourError
from meshgate.logs import configure_logging

SCENARIOS: dict[str, tuple[Callable[[Tour], Awaitable[None]], str]] = {
    "version-routing": (version_routing.play, "user-service v1/v2 by header and by weight"),
    "traffic-management": (traffic_management.play, "mirroring, rate limit, shared circuits"),
    "canary-deployment": (canary_deployment.play, "orders 1.0.0 → 2.0.0, paused, rolled back"),
    "full-stack": (full_stack.play, "the cluster's status, metrics and Prometheus lines"),
}
DEFAULT_GATEWAYS = ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Play the scenarios against a running `meshgate up` cluster."
    parser.add_argument(
        "scenario", nargs="?", choices=list(SCENARIOS), help="one scenario; omit for all four"
    )
    parser.add_argument(
        "--gateway",
        action="append",
        metavar="URL",
        help="a gateway replica; repeat for each (default: 127.0.0.1:8080 and :8081)",
    )
    parser.add_argument(
        "--admin", default="http://127.0.0.1:9090", metavar="URL", help="a replica's admin API"
    )
    add_nats_arguments(parser)
    # `append` would add to a list default; the defaults are filled in here instead.
    parser.set_defaults(gateway=None)


async def _play(args: argparse.Namespace, names: list[str]) -> None:
    bus = await Bus.connect(
        args.nats, prefix=args.prefix, name="meshgate-tour", credentials=credentials_from_args(args)
    )
    async with bus, httpx.AsyncClient(timeout=10.0) as http:
        gateways = [url.rstrip("/") for url in args.gateway or DEFAULT_GATEWAYS]
        tour = Tour(gateways=gateways, admin=args.admin.rstrip("/"), bus=bus, http=http)
        for name in names:
            play, summary = SCENARIOS[name]
            tour.say(f"\n=== {name}: {summary} ===")
            await play(tour)
            tour.say(f"=== {name}: done ===")


def run(args: argparse.Namespace) -> int:
    """Play the chosen scenario (or all); exit 1 when the cluster misbehaves."""
    configure_logging("warning")  # stdout is for the account
    names = [args.scenario] if args.scenario else list(SCENARIOS)
    try:
        anyio.run(_play, args, names, backend="asyncio")
    except (TourError, BusError, httpx.HTTPError) as error:
        print(f"meshgate tour: {error} (is `meshgate up` running?)", file=sys.stderr)
        return 1
    return 0
