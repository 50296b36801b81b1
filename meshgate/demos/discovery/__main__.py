"""`python -m meshgate.demos.discovery`: the four discovery demos in a row."""

import sys

from meshgate.cli import main

sys.exit(main(["demo", "discovery"]))
