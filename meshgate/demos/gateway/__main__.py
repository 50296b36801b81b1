"""`python -m meshgate.demos.gateway`: the three gateway demos in a row."""

import sys

from meshgate.cli import main

sys.exit(main(["demo", "gateway"]))
