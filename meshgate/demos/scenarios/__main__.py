"""`python -m meshgate.demos.scenarios`: the four scenario demos in a row."""

import sys

from meshgate.cli import main

sys.exit(main(["demo", "scenarios"]))
