"""`python -m meshgate.demos.resilience`: the seven resilience demos in a row."""

import sys

from meshgate.cli import main

sys.exit(main(["demo", "resilience"]))
