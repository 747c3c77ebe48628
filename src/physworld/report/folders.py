"""Where a report finds what it shows: the training runs and evaluations under a folder, each found by what it
holds, and reading their configs and JSON files as data (nothing in them runs)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from physworld.evaluation.runs import load_run_config, run_config_file

SKIP = {"wandb", "checkpoints", "csv", "images", ".hydra", "report_files", "__pycache__"}


def discover(root: Path) -> tuple[list[Path], list[Path]]:
    """Training runs and evaluation folders under `root` (itself included), sorted by path."""
    runs, evaluations = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        if "evaluation.json" in filenames:
            evaluations.append(folder)
        elif is_training_run(folder):
            runs.append(folder)
    return runs, evaluations


def is_training_run(folder: Path) -> bool:
    """A run with something to report: a CSV log, checkpoints or metrics. A folder with only its config is a
    run that stopped at start-up (a bad value, a crash before the first checkpoint): nothing to show."""
    results = ("csv/metrics.csv", "checkpoints", "metrics.json")
    # A pipeline folder is not a run: its metrics.json holds its online rounds (online_section).
    if (folder / "pipeline.json").is_file():
        return False
    return any((folder / name).exists() for name in results)


def read_config(run: Path) -> DictConfig | None:
    file = run_config_file(run)
    return load_run_config(file) if file else None


def select(cfg: DictConfig, key: str):
    """A config value, resolved where it can be (`${hydra:...}` cannot outside Hydra), else as written."""
    try:
        return OmegaConf.select(cfg, key)
    except OmegaConfBaseException:  # an interpolation that only resolves in the original run: as written
        node = OmegaConf.to_container(cfg, resolve=False)
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def name_of(folder: Path, root: Path) -> str:
    rel = os.path.relpath(folder, root)
    return folder.name if rel == "." else rel


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"
