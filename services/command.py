"""`meshgate service NAME` (and ``python -m services NAME``): one demo
service as a process.

>>> parser = argparse.ArgumentParser(prog="meshgate service")
>>> configure(parser)
>>> args = parser.parse_args(["order-service-canary", "--error-rate", "0.3", "--latency", "80ms"])
>>> settings = settings_from_args(args, environ={})
>>> settings.service, settings.version, settings.error_rate, settings.latency
('order-service', '2.0.0', 0.3, 0.08)

The NATS options are the shared ones (`meshgate.bus.credentials`): ``--nats``,
the credential flags and their ``MESHGATE_NATS_*`` variables, ``--prefix``
and ``--registration-key-file``, whose key signs the registration and every
heartbeat. On SIGTERM or SIGINT the service deregisters, lets the requests
in flight finish, and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Mapping

import anyio
import anyio.abc
import structlog

from meshgate.bus.connection import Bus, redact_servers
from meshgate.bus.credentials import (
    NatsCredentials,
    add_nats_arguments,
    credentials_from_args,
    registration_signer_from_args,
)
from meshgate.bus.errors import BusAuthError, BusUnavailableError
from meshgate.bus.signing import RegistrationSigner
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.logs import configure_logging
from services.catalog import CATALOG
from services.demo_service import DemoService
from services.settings import OPTIONS, ServiceSettings, resolve_settings

EXIT_OK = 0
EXIT_USAGE = 2
"""A bad setting, credentials or registration key, or NATS unreachable or
refusing us at start: nothing was served."""

_log = structlog.get_logger("meshgate.services")

_EPILOG = """\
demo services:
{services}

While it runs, its knobs change over HTTP (from loopback unless --remote-knobs):
  curl -X POST localhost:PORT/_knobs -d '{{"error_rate": 0.5, "latency_ms": 20, \
"fail_health": true}}'
GET /_knobs shows them, GET /_stats counts requests and injected failures.
Every option also reads its MESHGATE_SERVICE_* variable (a flag wins)."""


def _flag_type(option_name: str) -> Callable[[str], object]:
    parse = OPTIONS[option_name].parse

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = option_name
    return convert


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `meshgate service` to `parser`.

    >>> parser = argparse.ArgumentParser()
    >>> configure(parser)
    >>> args = parser.parse_args(["user-service-v1", "--tags", "a,b", "--fail-health"])
    >>> args.name, args.tags, args.fail_health, args.port
    ('user-service-v1', ('a', 'b'), True, None)
    """
    parser.description = (
        "Run a demo service: serve HTTP, register with the registry nodes on the bus, "
        "heartbeat, and misbehave on purpose when told to."
    )
    width = max(len(entry.key) for entry in CATALOG)
    parser.epilog = _EPILOG.format(
        services="\n".join(
            f"  {entry.key.ljust(width)}  port {entry.port}, {entry.service} "
            f"{entry.version} {list(entry.tags)}: {entry.summary}"
            for entry in CATALOG
        )
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "name",
        choices=[entry.key for entry in CATALOG],
        metavar="NAME",
        help="which demo service (see below)",
    )
    group = parser.add_argument_group("service", "Each flag beats its MESHGATE_SERVICE_* variable.")
    for name, option in OPTIONS.items():
        text = f"{option.help} (env {option.env})"
        if option.is_switch:
            group.add_argument(
                option.flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        else:
            group.add_argument(
                option.flag,
                dest=name,
                type=_flag_type(name),
                default=None,
                metavar=option.metavar,
                help=text,
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


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServiceSettings:
    """The settings that `args` (parsed with `configure`), the environment
    and the catalog give, in that order."""
    flags = {name: getattr(args, name, None) for name in OPTIONS}
    return resolve_settings(
        args.name, flags=flags, environ=os.environ if environ is None else environ
    )


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM (exit 0); exit 2, with one line
    on stderr, for a bad setting, credentials or registration key file, or
    when NATS cannot be reached or refuses the credentials at start."""
    try:
        settings = settings_from_args(args)
        credentials = credentials_from_args(args)
        signer = registration_signer_from_args(args)
        configure_logging(args.log_level)
    except ValueError as exc:  # CredentialsError included: it names the option
        print(f"meshgate service: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        try:
            anyio.run(
                _serve,
                settings,
                args.nats,
                args.prefix,
                args.connect_timeout,
                credentials,
                signer,
                backend="asyncio",
            )
        except BaseExceptionGroup as group:
            # Task groups wrap what failed in them; one failure is reported as itself.
            raise _sole_error(group) from None
    except OSError as exc:  # the port is taken, or the address is not ours
        print(f"meshgate service: cannot listen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BusAuthError as exc:
        print(f"meshgate service: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BusUnavailableError as exc:
        print(f"meshgate service: {exc} (is nats-server running there?)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C before the signal handler is installed (while connecting).
        return EXIT_OK
    return EXIT_OK


def _sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups, or `group` itself.

    >>> _sole_error(ExceptionGroup("outer", [ExceptionGroup("inner", [OSError("taken")])]))
    OSError('taken')
    """
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def _serve(
    settings: ServiceSettings,
    nats_url: str,
    prefix: str,
    connect_timeout: float,
    credentials: NatsCredentials,
    signer: RegistrationSigner | None,
) -> None:
    with anyio.move_on_after(connect_timeout) as connecting:
        bus = await Bus.connect(
            nats_url,
            prefix=prefix,
            name=f"service-{settings.key}",
            wait_for_server=True,
            credentials=credentials,
        )
    if connecting.cancelled_caught:
        raise BusUnavailableError(
            f"cannot connect to {redact_servers([nats_url])} within {connect_timeout:g}s"
        )
    async with bus, anyio.create_task_group() as task_group:
        service = DemoService(settings, RegistryClient(bus, signer=signer))
        # Handlers first: a signal while the service starts (or waits for a
        # registry node) stops it cleanly too.
        await task_group.start(_stop_on_signal, service)
        await service.run()
        task_group.cancel_scope.cancel()


async def _stop_on_signal(
    service: DemoService,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            _log.info("service.stopping", signal=signal.Signals(signum).name)
            await service.stop()
            return
