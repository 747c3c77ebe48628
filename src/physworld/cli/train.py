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
        # reported at once. train() then checks the files (checkpoints need torch to read).
        check_config(cfg, files=False)
        from physworld.run import train

        metrics = train(cfg, values_checked=True)
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        sys.exit(print_error(err))
    return metrics.get(cfg.optimized_metric)


def check_run_dir_argument(argv: list[str]) -> None:
    """`hydra.run.dir=<folder of an earlier run>` without `ckpt_path`: refused (checks.check_new_run_dir) before
    Hydra starts the job, which would write its .hydra/config.yaml over the earlier run's."""
    from physworld.checks import check_new_run_dir

    if any(a.startswith("-") for a in argv):  # --help, --cfg, -m: no single job in that folder
        return
    given = dict(a.lstrip("+").split("=", 1) for a in argv if "=" in a)
    if "hydra.run.dir" in given and given.get("ckpt_path", "null") in ("null", ""):
        check_new_run_dir(given["hydra.run.dir"], "hydra.run.dir")


def main() -> None:
    from physworld.choices import exit_on_bad_choice
    from physworld.errors import PhysworldError, print_error

    exit_on_bad_choice(CONFIG_DIR)  # a misspelt group option (debug=tinny): one line, exit 2
    try:
        check_run_dir_argument(sys.argv[1:])
    except PhysworldError as err:
        sys.exit(print_error(err))
    set_project_root()
    train_app()


if __name__ == "__main__":
    main()
