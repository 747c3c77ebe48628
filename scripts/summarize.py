"""`python scripts/summarize.py outputs/train/multirun/<time> [--metric KEY] [--max]`: a repository tool, the
wrapper of physworld.report.sweeps (src/physworld/report/sweeps.py: its main() and documentation)."""

import sys

from physworld.report.sweeps import main

if __name__ == "__main__":
    sys.exit(main())
