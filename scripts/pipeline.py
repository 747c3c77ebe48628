"""`python scripts/pipeline.py experiment=demo`: the repository's wrapper of `physworld-pipeline`
(src/physworld/cli/pipeline.py: its main() and documentation)."""

import os
import sys
from pathlib import Path

# data/ and outputs/ beside this repository unless $PHYSWORLD_ROOT says otherwise
os.environ.setdefault("PHYSWORLD_ROOT", str(Path(__file__).resolve().parents[1]))

from physworld.cli.pipeline import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
