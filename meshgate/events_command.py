"""`meshgate events`: print the cluster's events (registry, circuit, canary,
config) from the event stream, one line each, and optionally follow it.

>>> parser = argparse.ArgumentParser(prog="meshgate events")
>>> configure(parser)
>>> args = parser.parse_args(["--follow", "--since", "10m", "--kind", "circuit,config"])
>>> args.follow, args.since, args.kind
(True, 600.0, ['circuit', 'config'])
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

import anyio

from meshgate.bus.connection import Bus
from meshgate.bus.credentials import add_nats_arguments, credentials_from_args
from meshgate.bus.errors import BusError
from meshgate.bus.event_lines import event_line
from meshgate.bus.event_stream import EVENT_KINDS, Since, follow_events
from meshgate.bus.messages import CanaryEvent
from meshgate.durations import parse_duration
from meshgate.logs import configure_logging

EXIT_OK = 0
EXIT_USAGE = 2
"""A bad flag, or NATS unreachable (or without JetStream)."""


def _duration(text: str) -> float:
    try:
        return parse_duration(text, option="--since")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _kinds(text: str) -> list[str]:
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in EVENT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected some of {', '.join(EVENT_KINDS)}, comma-separated"
        )
    return kinds


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `meshgate events` to `parser`."""
    parser.description = (
        "Print the cluster's events from the event stream, one line each: time (UTC), "
        "kind, route or service, what changed."
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new events until Ctrl-C (alone: only new ones; "
        "with --since: the kept ones first)",
    )
    parser.add_argument(
        "--since",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="start that long ago, e.g. 30s, 10m, 2h (default: every event kept, "
        "or only new ones with --follow)",
    )
    parser.add_argument(
        "--kind",
        type=_kinds,
        default=[],
        metavar="KINDS",
        help=f"only these kinds, comma-separated: {', '.join(EVENT_KINDS)}",
    )
    parser.add_argument(
        "--weights",
        action="store_true",
        help="also print the canary controller's periodic weight broadcasts (every 2 s)",
    )
    add_nats_arguments(parser)


def _start(args: argparse.Namespace) -> Since:
    if args.since is not None:
        return timedelta(seconds=args.since)
    return "new" if args.follow else "all"


async def print_events(args: argparse.Namespace) -> None:
    """Connect, then print each event as `event_line` does until the stream
    is read (or, following, until cancelled)."""
    async with await Bus.connect(
        args.nats,
        prefix=args.prefix,
        name="meshgate-events",
        credentials=credentials_from_args(args),
    ) as bus:
        async for event in follow_events(
            bus, since=_start(args), kinds=args.kind, follow=args.follow
        ):
            if isinstance(event, CanaryEvent) and event.kind == "weights" and not args.weights:
                continue  # a heartbeat of the weights, not a change
            print(event_line(event), flush=True)


def run(args: argparse.Namespace) -> int:
    """Print the events; exit 0, or 2 with one line on stderr when NATS (or
    its JetStream) cannot be used."""
    # stdout is for the events; the connection's own news, warnings and up, go to stderr
    configure_logging("warning")
    try:
        anyio.run(print_events, args, backend="asyncio")
    except KeyboardInterrupt:
        return EXIT_OK
    except BusError as error:
        print(f"meshgate events: {error} (is nats-server running there?)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # JetStream refused: no JetStream, no permission
        print(f"meshgate events: {error!r}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
