"""``python -m canary_node``: a canary controller without the `meshgate` CLI.

>>> # python -m canary_node --config gateway.toml --nats nats://127.0.0.1:4222
"""

from __future__ import annotations

import argparse
import sys

from canary_node.command import configure, run


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the command line) and run a canary controller."""
    parser = argparse.ArgumentParser(prog="python -m canary_node")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
