"""`physworld.datasets.load(name, split)`: a dataset's arrays without Hydra, generated first if needed.

The dataset is the one `dataset=<name>` trains on (its spec is read from configs/dataset/<name>.yaml, the data
seed is configs/data/default.yaml's `data.seed`), stored by the same cache (data/cache.py) in the same folder, so a
split made by training is reused here and the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import OmegaConf

from physworld.data.cache import EVAL_SPLITS, SPLITS, ensure_split, load_split
from physworld.data.scenes import SCENES
from physworld.errors import ConfigError
from physworld.paths import CONFIG_DIR, project_root


class Dataset(NamedTuple):
    frames: np.ndarray  # uint8 (N, T, 64, 64, 3)
    states: np.ndarray  # float32 (N, T, S): the physical state per frame (the scene's STATE_NAMES)
    actions: np.ndarray  # float32 (N, T, A): actions[t] acts after frame t; zeros for passive scenes
    rewards: np.ndarray | None  # float32 (N, T): rewards[t] scores frame t; None for passive scenes


def default_data_dir() -> Path:
    """Where training keeps its data: $PHYSWORLD_DATA_DIR, else <paths.project_root()>/data: $PHYSWORLD_ROOT,
    the repository or the current directory, as train.py's `paths.data_dir`."""
    if os.environ.get("PHYSWORLD_DATA_DIR"):
        return Path(os.environ["PHYSWORLD_DATA_DIR"])
    return project_root() / "data"


def data_seed() -> int:
    """configs/data/default.yaml's `seed`: the seed training generates its data with, so the cache is shared."""
    return int(OmegaConf.load(CONFIG_DIR / "data" / "default.yaml").seed)


def spec(name: str, num_sequences: int | None = None, num_frames: int | None = None) -> dict:
    """The plain dict of configs/dataset/<name>.yaml, with every split capped at `num_sequences` and the
    sequences at `num_frames` (as debug=tiny's data.max_sequences / data.max_frames do)."""
    if name not in SCENES:
        raise ConfigError(f"dataset name {name!r} is not accepted: one of {sorted(SCENES)}")
    dataset = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "dataset" / f"{name}.yaml"), resolve=True)
    if num_sequences is not None:
        dataset["sizes"] = {split: min(n, int(num_sequences)) for split, n in dataset["sizes"].items()}
    if num_frames is not None:
        dataset["num_frames"] = min(dataset["num_frames"], int(num_frames))
    return dataset


def load(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    num_sequences: int | None = None,
    num_frames: int | None = None,
) -> Dataset:
    """Frames, states, actions and rewards of a split (memory-mapped), generating it first if it is missing
    or was made from another spec. The cache keeps one spec per folder: load a capped version
    (`num_sequences`, `num_frames`) into its own `data_dir`, or it replaces the full-size split."""
    if split not in SPLITS + EVAL_SPLITS:
        raise ConfigError(f"split={split!r} is not accepted: one of {list(SPLITS + EVAL_SPLITS)}")
    for key, value in (("num_sequences", num_sequences), ("num_frames", num_frames)):
        if value is not None and not (isinstance(value, int) and value > 0):
            raise ConfigError(f"{key}={value!r} is not accepted: a positive integer or None")
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    path = ensure_split(folder, spec(name, num_sequences, num_frames), split, data_seed(), progress=False)
    arrays = load_split(path)
    return Dataset(arrays["frames"], arrays["states"], arrays["actions"], arrays.get("rewards"))
