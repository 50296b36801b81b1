"""`meshgate gateway`: a gateway replica as a process.

>>> parser = argparse.ArgumentParser(prog="meshgate gateway")
>>> configure(parser)
>>> args = parser.parse_args(["--config", "gw.toml", "--listen", "0.0.0.0:8081", "--standalone"])
>>> args.config, args.listen, args.standalone
('gw.toml', '0.0.0.0:8081', True)
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

import msgspec

from gateway_node.process import run_gateway
from meshgate.bus.credentials import add_nats_arguments, credentials_from_args
from meshgate.gateway.config import GatewayConfig
from meshgate.gateway.config_file import (
    ConfigError,
    gateway_config_from_mapping,
    load_gateway_config,
)
from meshgate.gateway.http.loop import fast_loop_available
from meshgate.logs import configure_logging
from meshgate.process_exit import EXIT_USAGE, run_process


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `meshgate gateway` to `parser`."""
    parser.description = (
        "Run a gateway replica: serve the routes of a config file (TOML, YAML or JSON), "
        "with instances from the registry nodes on the bus, or --standalone with fixed "
        "upstreams only."
    )
    parser.add_argument(
        "--config", metavar="FILE", default=None, help="gateway config file (default: no routes)"
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", default=None, help="serve on HOST:PORT (over the file)"
    )
    parser.add_argument(
        "--admin-listen",
        metavar="HOST:PORT",
        default=None,
        help="serve the admin API on HOST:PORT (over the file)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no bus: fixed upstreams only, no presence, metrics or shared circuits",
    )
    parser.add_argument(
        "--replica-id", default=None, help="this replica's name (default: gw-HOSTNAME-PID)"
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for NATS at start before giving up (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default=None, help="debug, info, warning or error (default: info)"
    )
    add_nats_arguments(parser)


def _config(args: argparse.Namespace) -> GatewayConfig:
    config = load_gateway_config(args.config) if args.config else GatewayConfig()
    overrides: dict[str, Any] = {}
    if args.listen is not None:
        overrides["listen"] = args.listen
    if args.admin_listen is not None:
        overrides["admin_listen"] = args.admin_listen
    if args.prefix != "mesh":
        overrides["bus_prefix"] = args.prefix
    if not overrides:
        return config
    # Through msgspec again, so that a bad --listen is refused like a bad key.
    merged = {**msgspec.to_builtins(config), **overrides}
    return gateway_config_from_mapping(merged, source="command line")


def run(args: argparse.Namespace) -> int:
    """Run the replica until SIGINT or SIGTERM (exit 0); exit 2, with one line
    on stderr, for a bad config or when NATS cannot be reached at start."""
    try:
        config = _config(args)
    except (ConfigError, OSError) as exc:
        print(f"meshgate gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log_format = config.middleware.log_format
    configure_logging(args.log_level, json=None if log_format is None else log_format == "json")
    main = functools.partial(
        run_gateway,
        config,
        nats_url=args.nats,
        standalone=args.standalone,
        credentials=credentials_from_args(args),
        replica_id=args.replica_id,
        connect_timeout=args.connect_timeout,
    )
    return run_process("gateway", main, use_uvloop=fast_loop_available())
