"""`meshgate rollout ROUTE promote|rollback|pause|resume`: drive a canary
through the leading canary controller (``mesh.control.canary.<route>``) and
print where the rollout stands, in one line.

Exit status: 0 when the controller answered yes (also when the rollout was
already there); 1 when nothing changed because of the cluster — no
controller leads, NATS is out of reach, or the rollout is finished and
cannot take the action; 2 when the command was wrong — the route has no
canary, or bad options.

>>> parser = argparse.ArgumentParser(prog="meshgate rollout")
>>> configure(parser)
>>> args = parser.parse_args(["orders", "pause", "--prefix", "prod"])
>>> args.route, args.action, args.prefix
('orders', 'pause', 'prod')
>>> reply = ControlReply(ok=True, changed=True, state="paused", stable_weight=75.0,
...                      canary_weight=25.0, step=1)
>>> describe("orders", "pause", reply)
'orders: paused (state paused, canary 25%, stable 75%, current_step 1)'
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import get_args

import anyio

from meshgate.bus.connection import Bus, redact_servers
from meshgate.bus.credentials import NatsCredentials, add_nats_arguments, credentials_from_args
from meshgate.bus.errors import (
    BusAuthError,
    BusError,
    BusUnavailableError,
    NoRespondersError,
    RequestTimeoutError,
)
from meshgate.bus.messages import ControlAction, ControlReply, ControlRequest
from meshgate.logs import configure_logging

EXIT_OK = 0
EXIT_NOT_DONE = 1
"""The cluster could not or would not do it: no leader, NATS down, rollout finished."""
EXIT_USAGE = 2
"""The command was wrong: a route without a canary, bad options."""

_DONE = {"promote": "promoted", "rollback": "rolled back", "pause": "paused", "resume": "resumed"}
_ALREADY = {"promote": "promoted", "rollback": "rolled back", "pause": "paused", "resume": "active"}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `meshgate rollout` to `parser`."""
    parser.description = (
        "Promote, roll back, pause or resume the canary of a route, through the leading "
        "canary controller (`meshgate canary`)."
    )
    parser.add_argument("route", metavar="ROUTE", help="the route's name, as in the gateway config")
    parser.add_argument("action", choices=get_args(ControlAction), help="what to do")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the controller's answer (default: %(default)s)",
    )
    add_nats_arguments(parser)


def describe(route: str, action: str, reply: ControlReply) -> str:
    """The one line that tells where `route`'s rollout stands after `reply`."""
    if reply.changed is False:
        what = f"already {_ALREADY[action]}"
    elif reply.ok:
        what = _DONE[action]
    else:
        what = f"not {_DONE[action]}"
    if reply.state is None:
        return f"{route}: {what}"
    return (
        f"{route}: {what} (state {reply.state}, canary {reply.canary_weight:g}%, "
        f"stable {reply.stable_weight:g}%, current_step {reply.step})"
    )


async def send_control(
    url: str,
    request: ControlRequest,
    *,
    prefix: str = "mesh",
    credentials: NatsCredentials | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - bounds the reply wait of the bus request
) -> ControlReply:
    """Ask the leading controller to act; raises `BusError` subclasses when
    NATS or the controller cannot be reached.

    >>> async def pause_orders() -> ControlReply:
    ...     return await send_control("nats://127.0.0.1:4222",
    ...                               ControlRequest(route="orders", action="pause"))
    """
    async with await Bus.connect(
        url, prefix=prefix, name="meshgate-rollout", credentials=credentials
    ) as bus:
        return await bus.request(
            bus.subjects.canary_control(request.route), request, ControlReply, timeout=timeout
        )


def run(args: argparse.Namespace) -> int:
    """Send the request and print the outcome (stdout on success, stderr on
    failure); see the module docstring for the exit status."""
    configure_logging("error")  # the bus logs its retries; the answer is the one line
    try:
        credentials = credentials_from_args(args)
    except ValueError as exc:
        print(f"meshgate rollout: {exc}", file=sys.stderr)
        return EXIT_USAGE
    request = ControlRequest(route=args.route, action=args.action)
    ask = functools.partial(
        send_control,
        args.nats,
        request,
        prefix=args.prefix,
        credentials=credentials,
        timeout=args.timeout,
    )
    where = f"{redact_servers([args.nats])} (prefix {args.prefix})"
    try:
        reply = anyio.run(ask, backend="asyncio")
    except NoRespondersError:
        print(
            f"meshgate rollout: no canary controller leads on {where}; "
            "start one with `meshgate canary --config FILE`",
            file=sys.stderr,
        )
        return EXIT_NOT_DONE
    except RequestTimeoutError:
        print(
            f"meshgate rollout: the canary controller on {where} did not answer "
            f"within {args.timeout:g}s",
            file=sys.stderr,
        )
        return EXIT_NOT_DONE
    except BusAuthError as exc:
        print(f"meshgate rollout: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BusUnavailableError as exc:
        print(f"meshgate rollout: {exc} (is nats-server running there?)", file=sys.stderr)
        return EXIT_NOT_DONE
    except BusError as exc:
        print(f"meshgate rollout: {exc}", file=sys.stderr)
        return EXIT_NOT_DONE
    if reply.ok:
        print(describe(args.route, args.action, reply))
        return EXIT_OK
    print(f"meshgate rollout: {reply.error}", file=sys.stderr)
    if reply.state is not None:
        print(describe(args.route, args.action, reply), file=sys.stderr)
    return EXIT_USAGE if reply.code == "not_found" else EXIT_NOT_DONE


__all__ = ["configure", "describe", "run", "send_control"]
