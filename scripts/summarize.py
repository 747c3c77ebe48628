"""`python scripts/summarize.py outputs/train/multirun/<time> [--metric KEY] [--max]`: a repository tool, the
wrapper of physworld.evaluation.sweeps (src/physworld/evaluation/sweeps.py: its main() and documentation)."""

import sys

from physworld.evaluation.sweeps import main

if __name__ == "__main__":
    sys.exit(main())
