"""Train one phase of the world model: `python train.py phase=reconstruction dataset=moving_mnist`.

The only @hydra.main of the project. See configs/train.yaml for the groups and keys.
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from physworld.paths import CONFIG_DIR

os.environ.setdefault("PHYSWORLD_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from physworld.config import check_config
    from physworld.errors import PhysworldError

    try:
        # The checks of the values first, before torch and Lightning are imported (seconds): a bad value is
        # reported at once. train() checks again with the checkpoint files, which need torch to read.
        check_config(cfg, files=False)
        from physworld.run import train

        metrics = train(cfg)
    except PhysworldError as err:
        print(f"physworld: error: {err}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    from physworld.choices import exit_on_bad_choice

    # a misspelt group option (debug=tinny): one line, exit 2
    exit_on_bad_choice(CONFIG_DIR)
    main()
