"""`meshgate` on the command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

import anyio

from meshgate.demos.catalog import DEMOS, demos_in, find_demo


def _list_demos() -> None:
    width = max(len(d.name) for d in DEMOS)
    category = ""
    for demo in DEMOS:
        if demo.category != category:
            category = demo.category
            print(f"\n{category}")
        print(f"  {demo.name.ljust(width)}  {demo.summary}")
    print("\nrun one with: meshgate demo NAME   (or a whole category: meshgate demo resilience)")


def _run_demos(name: str) -> int:
    chosen = demos_in(name)
    if not chosen:
        try:
            chosen = [find_demo(name)]
        except KeyError as error:
            print(error.args[0], file=sys.stderr)
            return 2
    for demo in chosen:
        print(f"\n=== {demo.category} / {demo.name}: {demo.summary} ===")
        anyio.run(demo.load())
    return 0


# Process commands live in the node packages; the library never imports them,
# so the entry point looks them up by name only when one is chosen.
_PROCESS_COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("meshgate.local_cluster.command", "start the whole local cluster; Ctrl-C stops it"),
    "registry": ("registry_node.command", "run the registry node: leases, queries, events"),
    "health": ("registry_node.health_command", "run the health checker: probe instances"),
    "gateway": ("gateway_node.command", "run a gateway replica: route, guard and proxy requests"),
    "canary": ("canary_node.command", "run a canary controller: step, promote, roll back"),
    "rollout": ("canary_node.rollout_command", "promote, roll back, pause or resume a canary"),
    "service": ("services.command", "run a demo service: register, serve, misbehave on demand"),
    "events": ("meshgate.events_command", "print the cluster's events; --follow tails them"),
    "status": ("meshgate.cluster_status.command", "show replicas, instances, circuits, canaries"),
    "tour": ("meshgate.cluster_tour.command", "play the scenarios against the running cluster"),
}


def _process_command(module_name: str, attribute: str) -> Callable[..., object]:
    module = importlib.import_module(module_name)
    return cast(Callable[..., object], getattr(module, attribute))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshgate",
        description="API gateway, resilience toolkit and service discovery over NATS",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="list the demos, or run one (or a category) by name")
    demo.add_argument("name", nargs="?", help="a demo or a category; omit to list them")
    for name, (module_name, summary) in _PROCESS_COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        _process_command(module_name, "configure")(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        if args.name is None:
            _list_demos()
            return 0
        return _run_demos(args.name)
    module_name, _ = _PROCESS_COMMANDS[args.command]
    return cast(int, _process_command(module_name, "run")(args))


if __name__ == "__main__":
    sys.exit(main())
