"""``python -m services NAME``: a demo service without the `meshgate` CLI.

>>> # python -m services user-service-v1 --nats nats://127.0.0.1:4222 --error-rate 0.2
"""

from __future__ import annotations

import argparse
import sys

from services.command import configure, run


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the command line) and run a demo service."""
    parser = argparse.ArgumentParser(prog="python -m services")
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
