"""`meshgate canary`: a canary controller as a process.

The canary routes are those with a `canary` in the gateway config file, the
same file the gateway replicas serve. Start two or more for a standby:
one leads, the others take over within ``--lease-ttl`` seconds.

>>> parser = argparse.ArgumentParser(prog="meshgate canary")
>>> configure(parser)
>>> args = parser.parse_args(["--config", "gateway.toml", "--node-id", "canary-a"])
>>> args.config, args.node_id, args.lease_ttl, args.interval, args.prefix
('gateway.toml', 'canary-a', 3.0, 1.0, 'mesh')
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from canary_node.process import run_canary_controller
from meshgate.bus.credentials import add_nats_arguments, credentials_from_args
from meshgate.gateway.config import GatewayConfig
from meshgate.gateway.config_file import ConfigError, load_gateway_config
from meshgate.logs import configure_logging
from meshgate.process_exit import EXIT_USAGE, run_process


def _at_least(minimum: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds no smaller than `minimum`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not minimum <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r}: must be a number >= {minimum:g}")
        return value

    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `meshgate canary` to `parser`."""
    parser.description = (
        "Run a canary controller: one of them leads (a lease in JetStream KV), sums every "
        "gateway replica's metrics, steps, promotes and rolls back each canary route of the "
        "gateway config, persists each rollout and broadcasts its weights."
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        required=True,
        help="the gateway config file (TOML, YAML or JSON): its routes with `canary`",
    )
    parser.add_argument(
        "--node-id",
        default=None,
        help="this controller's name in the lease and logs (default: canary-HOSTNAME-PID)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=_at_least(1.0),
        default=3.0,
        metavar="SECONDS",
        help="leader lease length: a standby takes over within about this long after "
        "the leader dies (default: %(default)s; NATS counts whole seconds)",
    )
    parser.add_argument(
        "--interval",
        type=_at_least(0.05),
        default=1.0,
        metavar="SECONDS",
        help="how often the leader judges each canary (default: %(default)s)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_at_least(0.1),
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for NATS at start before giving up (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default=None, help="debug, info, warning or error (default: info)"
    )
    add_nats_arguments(parser)


def _prefix(args: argparse.Namespace, config: GatewayConfig) -> str:
    # --prefix beats the file's bus_prefix, as for `meshgate gateway`.
    return str(args.prefix) if args.prefix != "mesh" else config.bus_prefix


def run(args: argparse.Namespace) -> int:
    """Run the controller until SIGINT or SIGTERM (exit 0); exit 2, with one
    line on stderr, for a bad config file or credentials, or when NATS cannot
    be reached or refuses us at start."""
    try:
        config = load_gateway_config(args.config)
        credentials = credentials_from_args(args)
        configure_logging(args.log_level)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"meshgate canary: {exc}", file=sys.stderr)
        return EXIT_USAGE
    main = functools.partial(
        run_canary_controller,
        config,
        nats_url=args.nats,
        prefix=_prefix(args, config),
        node_id=args.node_id,
        lease_ttl=args.lease_ttl,
        interval=args.interval,
        credentials=credentials,
        connect_timeout=args.connect_timeout,
    )
    return run_process("canary", main)


__all__ = ["configure", "run"]
