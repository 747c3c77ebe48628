"""Where a training run keeps what evaluation and reports read (no torch here: the report imports it)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def training_run_dir(path: str | Path) -> Path | None:
    """`<run>` for a checkpoint at `<run>/checkpoints/<file>`, else None."""
    path = Path(path).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def run_config_file(run: Path) -> Path | None:
    """A training run's config: `.hydra/config.yaml` (train.py, as Hydra saved it, unresolved) or
    `config.yaml` (a pipeline step, resolved); None when the folder has neither with a phase in it."""
    for file in (run / ".hydra" / "config.yaml", run / "config.yaml"):
        if file.is_file():
            cfg = OmegaConf.load(file)
            if isinstance(cfg, DictConfig) and "phase" in cfg and "dataset" in cfg:
                return file
    return None
