"""`meshgate registry`: a registry node as a process.

The CLI builds its sub-parser with `configure` and calls `run`:

>>> parser = argparse.ArgumentParser(prog="meshgate registry")
>>> configure(parser)
>>> args = parser.parse_args(["--backend", "memory", "--default-ttl", "15"])
>>> args.backend, args.default_ttl, args.prefix
('memory', 15.0, 'mesh')

The NATS options are the shared ones (`meshgate.bus.credentials`): ``--nats``,
the credential flags and their ``MESHGATE_NATS_*`` variables, ``--prefix``
and ``--registration-key-file``; with a key, the node refuses requests that
are not signed with it.
"""

from __future__ import annotations

import argparse
import functools
import sys

from meshgate.bus.credentials import (
    add_nats_arguments,
    credentials_from_args,
    registration_signer_from_args,
)
from meshgate.process_exit import EXIT_USAGE, run_process
from registry_node.process import run_registry


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
    ('nats-kv', 0.5)
    """
    parser.description = (
        "Serve service registrations over NATS: validate, keep leases, answer "
        "queries and broadcast every change."
    )
    parser.add_argument(
        "--backend",
        metavar="SPEC",
        default="nats-kv",
        help="where registrations live: memory, nats-kv, redis://HOST:PORT/DB, "
        "consul://HOST:PORT or kubernetes (default: %(default)s)",
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
        default=0.5,
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
    add_nats_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the node until SIGINT or SIGTERM (exit 0); exit 2, with one line
    on stderr, for a bad backend spec, credentials or registration key file,
    or when NATS cannot be reached or refuses the credentials at start."""
    if args.default_ttl > args.max_ttl:
        print(
            f"meshgate registry: --default-ttl {args.default_ttl:g} exceeds "
            f"--max-ttl {args.max_ttl:g}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        # Read before connecting: a missing file fails in a second, not after
        # the connect timeout.
        credentials = credentials_from_args(args)
        signer = registration_signer_from_args(args)
    except ValueError as exc:  # CredentialsError included: it names the option
        print(f"meshgate registry: {exc}", file=sys.stderr)
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
        credentials=credentials,
        signer=signer,
    )
    return run_process("registry", main)
