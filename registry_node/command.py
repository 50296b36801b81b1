"""`meshgate registry`: a registry node as a process.

The CLI builds its sub-parser with `configure` and calls `run`:

>>> parser = argparse.ArgumentParser(prog="meshgate registry")
>>> configure(parser)
>>> args = parser.parse_args(["--backend", "memory", "--default-ttl", "15"])
>>> args.backend, args.default_ttl, args.prefix
('memory', 15.0, 'mesh')
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import anyio

from meshgate.bus.connection import DEFAULT_URL
from meshgate.bus.errors import BusUnavailableError
from registry_node.process import run_registry

EXIT_OK = 0
EXIT_USAGE = 2
"""Bad backend spec, or NATS unreachable at start: nothing was served."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number greater than 0")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `meshgate registry` to `parser`.

    >>> parser = argparse.ArgumentParser()
    >>> configure(parser)
    >>> parser.parse_args([]).backend, parser.parse_args([]).sweep_interval
    ('nats-kv', 1.0)
    """
    parser.description = (
        "Serve service registrations over NATS: validate, keep leases, answer "
        "queries and broadcast every change."
    )
    parser.add_argument(
        "--nats",
        metavar="URL",
        default=os.environ.get("MESHGATE_NATS", DEFAULT_URL),
        help="NATS server (default: $MESHGATE_NATS or %(default)s)",
    )
    parser.add_argument(
        "--backend",
        metavar="SPEC",
        default="nats-kv",
        help="where registrations live: memory, nats-kv, redis://HOST:PORT/DB, "
        "consul://HOST:PORT or kubernetes (default: %(default)s)",
    )
    parser.add_argument(
        "--prefix", default="mesh", help="subject prefix of the cluster (default: %(default)s)"
    )
    parser.add_argument(
        "--default-ttl",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="lease given to a registration that asks for none (default: %(default)s)",
    )
    parser.add_argument(
        "--max-ttl",
        type=_positive_float,
        default=3600.0,
        metavar="SECONDS",
        help="longest lease granted; longer requests are refused (default: %(default)s)",
    )
    parser.add_argument(
        "--sweep-interval",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="how often leases are checked for expiry (default: %(default)s)",
    )
    parser.add_argument(
        "--node-id",
        default=None,
        help="this node's name in logs and expiry claims (default: HOSTNAME-PID)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for NATS at start before giving up (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the node until SIGINT or SIGTERM (exit 0); exit 2, with one line
    on stderr, for a bad backend spec or when NATS cannot be reached at start."""
    if args.default_ttl > args.max_ttl:
        print(
            f"meshgate registry: --default-ttl {args.default_ttl:g} exceeds "
            f"--max-ttl {args.max_ttl:g}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    main = functools.partial(
        run_registry,
        args.nats,
        args.backend,
        prefix=args.prefix,
        default_ttl=args.default_ttl,
        max_ttl=args.max_ttl,
        sweep_interval=args.sweep_interval,
        node_id=args.node_id,
        connect_timeout=args.connect_timeout,
    )
    try:
        anyio.run(main, backend="asyncio")
    except ValueError as exc:
        print(f"meshgate registry: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BusUnavailableError as exc:
        print(f"meshgate registry: {exc} (is nats-server running there?)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C before the signal handler is installed (while connecting).
        return EXIT_OK
    return EXIT_OK
