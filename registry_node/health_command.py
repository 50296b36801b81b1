"""`meshgate health`: the health checker as a process.

The CLI builds its sub-parser with `configure` and calls `run`:

>>> parser = argparse.ArgumentParser(prog="meshgate health")
>>> configure(parser)
>>> args = parser.parse_args(["--services", "user-service, order-service", "--timeout", "1.5"])
>>> args.services, args.timeout, args.prefix
(('user-service', 'order-service'), 1.5, 'mesh')

The NATS options are the shared ones (`meshgate.bus.credentials`): ``--nats``,
the credential flags and their ``MESHGATE_NATS_*`` variables, ``--prefix``
and ``--registration-key-file``, whose key signs every status report (a
registry that holds a key refuses unsigned ones).
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys

import anyio
import anyio.abc
import structlog

from meshgate.bus.connection import Bus
from meshgate.bus.credentials import (
    NatsCredentials,
    add_nats_arguments,
    credentials_from_args,
    registration_signer_from_args,
)
from meshgate.bus.signing import RegistrationSigner
from meshgate.process_exit import run_process
from registry_node.health_checker import HealthChecker

EXIT_OK = 0
EXIT_UNAVAILABLE = 2

_log = structlog.get_logger("meshgate.health")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _service_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `meshgate health` to `parser`.

    >>> parser = argparse.ArgumentParser()
    >>> configure(parser)
    >>> parser.parse_args([]).unhealthy_threshold, parser.parse_args([]).healthy_threshold
    (3, 2)
    """
    parser.description = (
        "Probe each registered instance's health path and report status changes to the registry."
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=2.0,
        metavar="SECONDS",
        help="how long one probe may take before it counts as failed (default: %(default)s)",
    )
    parser.add_argument(
        "--unhealthy-threshold",
        type=_positive_int,
        default=3,
        metavar="N",
        help="consecutive failures that make an instance DOWN (default: %(default)s)",
    )
    parser.add_argument(
        "--healthy-threshold",
        type=_positive_int,
        default=2,
        metavar="N",
        help="consecutive successes that make an instance UP (default: %(default)s)",
    )
    parser.add_argument(
        "--services",
        type=_service_list,
        default=(),
        metavar="A,B,…",
        help="services to ask the registry about at start; others are found "
        "when their instances next register, expire or change status",
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="probe every instance this often instead of its own health_check_interval",
    )
    parser.add_argument(
        "--rescan-interval",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="how often to ask the registry for the instances of known services "
        "(default: %(default)s)",
    )
    add_nats_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the checker until SIGINT or SIGTERM (exit 0); exit 2, with one line
    on stderr, for bad credentials or registration key file, or when NATS
    cannot be reached or refuses the credentials at start."""
    try:
        # Read before connecting, so a bad file is reported as itself.
        credentials = credentials_from_args(args)
        signer = registration_signer_from_args(args)
    except ValueError as exc:  # CredentialsError included: it names the option
        print(f"meshgate health: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return run_process(
        "health", functools.partial(_serve, args, credentials, signer), usage_errors=()
    )


async def _serve(
    args: argparse.Namespace,
    credentials: NatsCredentials,
    signer: RegistrationSigner | None,
) -> None:
    async with await Bus.connect(
        args.nats, prefix=args.prefix, name="health-checker", credentials=credentials
    ) as bus:
        checker = HealthChecker(
            bus,
            timeout=args.timeout,
            unhealthy_threshold=args.unhealthy_threshold,
            healthy_threshold=args.healthy_threshold,
            rescan_interval=args.rescan_interval,
            default_interval=args.interval,
            services=args.services,
            signer=signer,
        )
        async with anyio.create_task_group() as tg:
            # Handlers first: a signal that comes while the checker starts
            # must stop it cleanly too.
            await tg.start(_stop_on_signal, tg.cancel_scope)
            await checker.run()


async def _stop_on_signal(
    scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            _log.info("health.stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return
