"""Train one phase of the world model: `python train.py phase=reconstruction dataset=moving_mnist`.

The repository's wrapper of `physworld-train` (src/physworld/cli/train.py holds the @hydra.main); data/ and
outputs/ go beside this file unless $PHYSWORLD_ROOT says otherwise.
"""

import os
from pathlib import Path

os.environ.setdefault("PHYSWORLD_ROOT", str(Path(__file__).resolve().parent))

from physworld.cli.train import main  # noqa: E402

if __name__ == "__main__":
    main()
