"""Shared fixtures: compose the real configs with Hydra's compose API, writing only under tmp_path."""

from __future__ import annotations

import os

# The tests run tiny models: one intra-op thread is fastest for them, and it stays fast when other work shares
# the CPU (two spinning OpenMP threads per process slowed the tiny RL run 3x on a loaded 2-core machine).
# Set before torch is imported, so subprocesses (train.py in test_cli) inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest
from omegaconf import open_dict

from physworld.paths import compose

ROOT = Path(__file__).resolve().parents[1]


def compose_raw(overrides=(), config_name: str = "train"):
    """The config `python train.py <overrides>` would see, paths as they are."""
    return compose(config_name, [f"paths.root_dir={ROOT}", *overrides], keep_hydra=True)


def compose_config(tmp_path: Path, overrides=(), config_name: str = "train"):
    """The config `python train.py <overrides>` would see, with data and outputs under tmp_path."""
    cfg = compose_raw(overrides, config_name)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: @hydra.main hands the task config without the hydra node
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides, config_name="train"):
        return compose_config(tmp_path, overrides, config_name)

    return make
