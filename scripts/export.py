"""`python scripts/export.py ckpt_path=<run>/checkpoints/best.ckpt out=<folder>`: the repository's wrapper of
`physworld-export` (src/physworld/cli/export.py: its main() and documentation)."""

import os
from pathlib import Path

# data/ and outputs/ beside this repository unless $PHYSWORLD_ROOT says otherwise
os.environ.setdefault("PHYSWORLD_ROOT", str(Path(__file__).resolve().parents[1]))

from physworld.cli.export import main  # noqa: E402

if __name__ == "__main__":
    main()
