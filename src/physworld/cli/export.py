"""Export a trained world model: `physworld-export ckpt_path=<run>/checkpoints/best.ckpt out=<folder>` (from the
repository: `python scripts/export.py ...`, the same main()).

Writes model.safetensors, config.json and MODEL_CARD.md into <folder>, a new or empty one unless overwrite=true
(see configs/export.yaml and physworld/export.py); `physworld.load_world_model(<folder>)` loads it. With
`logger=wandb` the folder is also logged as a W&B artifact.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from physworld.cli import set_project_root
from physworld.paths import CONFIG_DIR


def check_export(cfg: DictConfig) -> None:
    """Raise ConfigError (CheckpointError for a missing checkpoint) for the first bad key of configs/export.yaml.
    Nothing here needs torch: the command runs it before importing physworld.export (which does)."""
    from physworld.atomic import check_new_folder
    from physworld.checks import check_loggers
    from physworld.errors import CheckpointError, ConfigError
    from physworld.require import require

    for key, example in (("ckpt_path", "<run>/checkpoints/best.ckpt"), ("out", "exports/<name>")):
        if cfg.get(key) is None:
            raise ConfigError(f"{key}=None is not accepted: pass {key}={example}")
    if not Path(str(cfg.ckpt_path)).is_file():
        raise CheckpointError(f"ckpt_path={str(cfg.ckpt_path)!r}: no such checkpoint file")
    require(cfg, "overwrite", lambda v: isinstance(v, bool), "true or false")
    check_new_folder(
        str(cfg.out), "out", cfg.overwrite
    )  # a folder with files in it: only with overwrite=true
    check_loggers(cfg)  # logger=wandb without the wandb package


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
def export_app(cfg: DictConfig) -> None:
    from physworld.errors import PhysworldError, print_error

    try:
        check_export(cfg)  # before torch is imported (seconds): a bad value is reported at once
        from physworld.export import export_world_model, log_artifact

        out = export_world_model(cfg.ckpt_path, cfg.out, overwrite=cfg.overwrite)
        wandb = (cfg.get("logger") or {}).get("wandb")
        if wandb is not None:
            print(f"W&B artifact: {log_artifact(out, wandb.project, Path(cfg.paths.log_dir) / 'export')}")
    except (PhysworldError, OSError) as err:  # OSError: a full disk, a read-only folder (errors.os_error)
        sys.exit(print_error(err))
    print(f"exported: {out}\nload it: physworld.load_world_model({str(out)!r})")


def main() -> None:
    from physworld.choices import exit_on_bad_choice

    exit_on_bad_choice(CONFIG_DIR)  # a misspelt group option (logger=wandbb): one line, exit 2
    set_project_root()
    export_app()


if __name__ == "__main__":
    main()
