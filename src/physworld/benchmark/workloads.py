"""What the benchmark trains: each world-model phase built from the composed config (as train.py builds it)
and the small Moving MNIST set it trains on. A plain PyTorch loop minimises the phase's own
`compute_losses(batch)["loss"]`, as its training_step does."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from physworld.paths import compose, project_root
from physworld.phases.base import WorldModelPhase
from physworld.run import build_datamodule, build_phase

ROOT = project_root()  # outputs/benchmarks and data/bench go under it
# A small Moving MNIST set: enough windows for every measurement, generated in seconds.
DATA = ["dataset=moving_mnist", "dataset.sizes.train=64", "dataset.sizes.val=8", "dataset.sizes.test=8"]


def compose_config(overrides: list[str], output_dir: str | Path, data_dir: str | Path) -> DictConfig:
    """The config `python train.py <overrides>` would see, with its outputs and data where we say."""
    os.environ.setdefault("PHYSWORLD_ROOT", str(ROOT))
    cfg = compose("train", [*DATA, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
    return cfg


def phase_config(name: str, output_dir, data_dir, extra: list[str] = ()) -> DictConfig:
    """The default model and batch size of phase `name`. The prediction phase's frozen VQ-VAE stays
    randomly initialised (no phase.init_from): throughput does not depend on the weights."""
    return compose_config([f"phase={name}", "logger=csv", "callbacks=none", *extra], output_dir, data_dir)


def build(cfg: DictConfig) -> WorldModelPhase:
    torch.manual_seed(cfg.seed)
    return build_phase(cfg)


def datamodule(cfg: DictConfig):
    dm = build_datamodule(cfg)
    dm.progress = False
    dm.prepare_data()
    dm.setup("fit")
    return dm


def frames_per_step(cfg: DictConfig) -> int:
    return int(cfg.phase.batch_size) * int(cfg.phase.seq_len)


def synthetic_batch(batch_size: int, seq_len: int, device: torch.device, action_dim: int = 2) -> dict:
    """A batch shaped like the loader's: frames uint8 (B, T, 64, 64, 3), actions (B, T, A), on `device`."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch_size, seq_len, 64, 64, 3), dtype=torch.uint8, generator=g)
    actions = torch.rand(batch_size, seq_len, action_dim, generator=g) * 2 - 1
    dataset = torch.zeros(batch_size, dtype=torch.long)
    return {"frames": frames.to(device), "actions": actions.to(device), "dataset": dataset.to(device)}
