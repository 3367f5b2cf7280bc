"""`python -m uncertaintyseg`: the command line (the Slicer module starts it this way)."""

import sys

from .commands.cli import main

# nnU-Net and torch data loading spawn worker processes that re-import __main__:
# the guard keeps them from starting a second run.
if __name__ == "__main__":
    sys.exit(main())
