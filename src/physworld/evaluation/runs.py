"""Where a training run keeps what evaluation and reports read (no torch here: the report imports it)."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from physworld.errors import ConfigError


def training_run_dir(path: str | Path) -> Path | None:
    """`<run>` for a checkpoint at `<run>/checkpoints/<file>`, else None."""
    path = Path(path).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def run_config_file(run: Path) -> Path | None:
    """A training run's config: `.hydra/config.yaml` (train.py, as Hydra saved it, unresolved) or
    `config.yaml` (a pipeline step, resolved); None when the folder has neither with a phase in it."""
    for file in (run / ".hydra" / "config.yaml", run / "config.yaml"):
        if file.is_file():
            cfg = load_run_config(file)
            if isinstance(cfg, DictConfig) and "phase" in cfg and "dataset" in cfg:
                return file
    return None


def load_run_config(file: Path):
    """A run's saved config, read as data (OmegaConf's YAML loader builds no Python objects: a `!!python/` tag is
    refused); ConfigError, one line naming the file, for one that is not readable YAML."""
    try:
        return OmegaConf.load(file)
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split())[:200]
        raise ConfigError(
            f"{file}: not a readable run config ({detail}); restore it from the run's config, or remove the run "
            "folder from the report or evaluation"
        ) from None


def training_config(path: str | Path) -> tuple[DictConfig, Path] | None:
    """The config of the run that wrote the checkpoint, and its file, if the checkpoint is in a run folder."""
    run = training_run_dir(path)
    file = run_config_file(run) if run else None
    return (load_run_config(file), file) if file else None
