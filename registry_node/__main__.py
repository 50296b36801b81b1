"""``python -m registry_node``: a registry node without the `meshgate` CLI.

>>> # python -m registry_node --nats nats://127.0.0.1:4222 --backend nats-kv
"""

from __future__ import annotations

import argparse
import sys

from registry_node.command import configure, run


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the command line) and run a registry node."""
    parser = argparse.ArgumentParser(prog="python -m registry_node")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
