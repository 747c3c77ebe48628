"""Train one phase of the world model: `physworld-train phase=reconstruction dataset=moving_mnist` (from the
repository: `python train.py ...`, the same main()).

The only @hydra.main for training. See configs/train.yaml (in this package) for the groups and keys.
"""

import sys

import hydra
from omegaconf import DictConfig

from physworld.cli import set_project_root
from physworld.paths import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def train_app(cfg: DictConfig) -> float | None:
    from physworld.checks import check_config
    from physworld.errors import PhysworldError, print_error

    try:
        # The checks of the values first, before torch and Lightning are imported (seconds): a bad value is
        # reported at once. train() checks again with the checkpoint files, which need torch to read.
        check_config(cfg, files=False)
        from physworld.run import train

        metrics = train(cfg)
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        sys.exit(print_error(err))
    return metrics.get(cfg.optimized_metric)


def main() -> None:
    from physworld.choices import exit_on_bad_choice

    exit_on_bad_choice(CONFIG_DIR)  # a misspelt group option (debug=tinny): one line, exit 2
    set_project_root()
    train_app()


if __name__ == "__main__":
    main()
