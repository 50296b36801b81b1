"""`meshgate status`: replicas, services and instances, circuits that are
not closed, and canaries, from any machine on the bus.

>>> parser = argparse.ArgumentParser(prog="meshgate status")
>>> configure(parser)
>>> parser.parse_args(["--listen", "3"]).listen
3.0
"""

from __future__ import annotations

import argparse
import sys

import anyio
import msgspec

from meshgate.bus.connection import Bus
from meshgate.bus.credentials import add_nats_arguments, credentials_from_args
from meshgate.bus.errors import BusError
from meshgate.cluster_status.gather import LISTEN_SECONDS, gather
from meshgate.cluster_status.snapshot import ClusterSnapshot, render
from meshgate.logs import configure_logging


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the cluster: gateway replicas, services and instances, open circuits, canaries."
    )
    parser.add_argument(
        "--listen",
        type=float,
        default=LISTEN_SECONDS,
        metavar="SECONDS",
        help="how long to listen for replicas and canaries (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    add_nats_arguments(parser)


async def _look(args: argparse.Namespace) -> ClusterSnapshot:
    bus = await Bus.connect(
        args.nats,
        prefix=args.prefix,
        name="meshgate-status",
        credentials=credentials_from_args(args),
    )
    async with bus:
        return await gather(bus, listen=args.listen)


def run(args: argparse.Namespace) -> int:
    """Print the cluster (exit 0), or why it cannot be seen (exit 1)."""
    configure_logging("warning")  # stdout is for the tables
    try:
        snapshot = anyio.run(_look, args, backend="asyncio")
    except BusError as error:
        print(f"meshgate status: {error} (is NATS running at {args.nats}?)", file=sys.stderr)
        return 1
    if args.json:
        print(msgspec.json.encode(snapshot).decode())
    else:
        print(render(snapshot))
    return 0
