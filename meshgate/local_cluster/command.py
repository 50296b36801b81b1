"""`meshgate up`: start the local cluster and keep it running until Ctrl-C.

>>> parser = argparse.ArgumentParser(prog="meshgate up")
>>> configure(parser)
>>> args = parser.parse_args(["--replicas", "3", "--dry-run"])
>>> args.replicas, args.gateway_port, args.dry_run
(3, 8080, True)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import AsyncExitStack
from importlib import resources
from pathlib import Path

import anyio
import anyio.abc

from meshgate.bus.connection import Bus
from meshgate.bus.errors import BusError
from meshgate.bus.local_cluster_file import remove_local_cluster, write_local_cluster
from meshgate.bus.nats_server import local_nats_server
from meshgate.local_cluster.plan import ClusterOptions, ProcessSpec, cluster_plan
from meshgate.local_cluster.supervisor import StartFailedError, Supervisor
from meshgate.process_signals import stop_on_signal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def default_config_file() -> str:
    """The gateway config of the local cluster, shipped with the package."""
    return str(resources.files("meshgate.local_cluster").joinpath("cluster.toml"))


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of `meshgate up` to `parser`."""
    parser.description = (
        "Start the whole local cluster: embedded NATS, registry, health checker, canary "
        "controller, demo services and gateway replicas. Ctrl-C stops all of it."
    )
    parser.add_argument("--replicas", type=int, default=2, help="gateway replicas (default 2)")
    parser.add_argument(
        "--gateway-port", type=int, default=8080, help="first replica's port (default 8080)"
    )
    parser.add_argument(
        "--admin-port", type=int, default=9090, help="first replica's admin port (default 9090)"
    )
    parser.add_argument(
        "--nats",
        metavar="URL",
        default=None,
        help="use this NATS server (>= 2.11, JetStream on) instead of starting one",
    )
    parser.add_argument("--prefix", default="mesh", help="bus subject prefix (default mesh)")
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="gateway config of the replicas (default: the demo cluster's routes)",
    )
    parser.add_argument("--no-services", action="store_true", help="start no demo services")
    parser.add_argument(
        "--log-dir",
        metavar="DIR",
        default=None,
        help="where each process logs (default: a temp dir)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the processes it would start, and exit"
    )


def _options(args: argparse.Namespace, nats_url: str) -> ClusterOptions:
    return ClusterOptions(
        nats_url=nats_url,
        prefix=args.prefix,
        config_file=args.config or default_config_file(),
        replicas=args.replicas,
        gateway_port=args.gateway_port,
        admin_port=args.admin_port,
        services=not args.no_services,
    )


def stages(plan: list[ProcessSpec]) -> list[list[ProcessSpec]]:
    """The registry first (everything registers with it), then the rest of
    the back end together, then the gateways (their first requests find the
    services registered)."""
    registry = [p for p in plan if p.name == "registry"]
    gateways = [p for p in plan if p.name.startswith("gateway-")]
    middle = [p for p in plan if p not in registry and p not in gateways]
    return [stage for stage in (registry, middle, gateways) if stage]


def _banner(options: ClusterOptions, log_dir: Path) -> str:
    first = options.gateway_address(0)
    lines = ["", "meshgate is up.", ""]
    for index in range(options.replicas):
        lines.append(
            f"  gateway-{index + 1}: http://{options.gateway_address(index)}"
            f"   admin: http://{options.admin_address(index)}"
        )
    lines += [
        f"  NATS: {options.nats_url}   logs: {log_dir}",
        "",
        "Try:",
        f"  curl http://{first}/api/users/1",
        f"  curl -H 'X-API-Version: v2' http://{first}/api/users/1",
        f"  curl http://{first}/api/orders/42",
        "",
        "  meshgate status    meshgate events --follow    Ctrl-C stops everything",
        "",
    ]
    return "\n".join(lines)


async def run_up(args: argparse.Namespace, log_dir: Path) -> None:
    async with AsyncExitStack() as stack:
        if args.nats is None:
            print("starting NATS (JetStream) ...")
            server = await stack.enter_async_context(local_nats_server())
            nats_url = server.url
        else:
            nats_url = args.nats
        options = _options(args, nats_url)
        bus = await stack.enter_async_context(
            await Bus.connect(nats_url, prefix=options.prefix, name="meshgate-up")
        )
        supervisor = Supervisor(log_dir)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(stop_on_signal, tg.cancel_scope)
                for stage in stages(cluster_plan(options)):
                    print("starting " + ", ".join(p.name for p in stage) + " ...")
                    await supervisor.start_stage(stage, bus)
                if args.nats is None:
                    write_local_cluster(nats_url, options.prefix)
                    stack.callback(remove_local_cluster)
                print(_banner(options, log_dir))
                tg.start_soon(supervisor.watch)
        finally:
            with anyio.CancelScope(shield=True), supervisor.hurried_by_signals():
                print("stopping ...")
                await supervisor.stop_all()
    print("stopped.")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The errors in `group`, however deep the task groups nested them."""
    leaves: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            leaves.extend(_leaves(error))
        else:
            leaves.append(error)
    return leaves


def run(args: argparse.Namespace) -> int:
    """Start the cluster and wait for Ctrl-C (exit 0); exit 1 when a process
    fails to start (after stopping the others), 2 for bad options."""
    try:
        preview = _options(args, args.nats or "nats://(embedded)")
    except ValueError as exc:
        print(f"meshgate up: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not os.path.exists(preview.config_file):
        print(f"meshgate up: no config file at {preview.config_file}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        for stage in stages(cluster_plan(preview)):
            for spec in stage:
                print(f"{spec.name:<22} {' '.join(spec.argv[1:])}")
        return EXIT_OK
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="meshgate-up-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    failures: list[BaseException] = []
    try:
        anyio.run(run_up, args, log_dir, backend="asyncio")
    except* (StartFailedError, BusError) as group:
        failures.extend(_leaves(group))
    except* KeyboardInterrupt:
        pass
    for error in failures:
        print(f"meshgate up: {error}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK
