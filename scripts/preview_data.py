"""`python scripts/preview_data.py dataset=pendulum`: the repository's wrapper of `physworld-preview`
(src/physworld/cli/preview_data.py: its main() and documentation)."""

import os
from pathlib import Path

# data/ and outputs/ beside this repository unless $PHYSWORLD_ROOT says otherwise
os.environ.setdefault("PHYSWORLD_ROOT", str(Path(__file__).resolve().parents[1]))

from physworld.cli.preview_data import main  # noqa: E402

if __name__ == "__main__":
    main()
