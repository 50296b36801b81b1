"""``python -m gateway_node``: a gateway replica without the `meshgate` CLI.

>>> # python -m gateway_node --config gateway.toml --nats nats://127.0.0.1:4222
"""

from __future__ import annotations

import argparse
import sys

from gateway_node.command import configure, run


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the command line) and run a gateway replica."""
    parser = argparse.ArgumentParser(prog="python -m gateway_node")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
