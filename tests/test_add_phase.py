"""The README's "Add a phase" recipe, followed with a toy phase: a class, its row in PHASES, its config file; then
it checks, trains, is tested and saves a checkpoint like any phase."""

from __future__ import annotations

import json

import torch

from physworld.checks import check_config
from physworld.phases import PHASES, Phase, declared, phase_class
from physworld.phases.base import WorldModelPhase
from physworld.phases.settings import WorldModelSettings
from physworld.run import train


class ToyPhase(WorldModelPhase):
    """Step 1: a LightningModule on the world-model base, here the VQ-VAE trained on L1 alone."""

    def loss(self, batch: dict) -> torch.Tensor:
        frames = batch["frames"].flatten(0, 1)
        recon, _, vq_loss = self.vqvae(frames)
        return (recon - frames).abs().mean() + vq_loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.log("val/toy_loss", self.loss(batch))

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.log("test/toy_loss", self.loss(batch))


# Step 3: its config file, the reconstruction phase's keys with its own name and monitor.
TOY_YAML = """\
# A toy phase: the VQ-VAE on L1 alone (tests/test_add_phase.py).
defaults:
  - base/world_model@_here_  # the keys of every world-model phase
  - _self_
name: toy
max_epochs: 2           # passes over the training windows
seq_len: 1              # frames per window
lr: 1.0e-3              # AdamW learning rate
weight_decay: 0.0       # AdamW decoupled weight decay
monitor: val/toy_loss   # picks best.ckpt
"""


def test_a_new_phase_takes_a_class_a_row_and_a_config_file(monkeypatch, tmp_path, make_cfg):
    # Step 2: its row in the table.
    monkeypatch.setitem(
        PHASES, "toy", Phase(f"{__name__}:ToyPhase", WorldModelSettings, True, False, False, False)
    )
    (tmp_path / "conf" / "phase").mkdir(parents=True)
    (tmp_path / "conf" / "phase" / "toy.yaml").write_text(TOY_YAML)
    overrides = [
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "phase=toy",
        "debug=tiny",
        "dataset=pendulum",
        "logger=csv",
    ]
    cfg = make_cfg(*overrides)
    assert cfg.phase.name == "toy" and cfg.phase.betas == [
        0.9,
        0.999,
    ]  # the shared keys came with the defaults
    check_config(cfg, files=False)
    assert phase_class("toy") is ToyPhase and declared("toy", "is_world_model")

    metrics = train(cfg)
    assert set(metrics) >= {"val/toy_loss", "test/toy_loss"}
    assert (
        json.loads((tmp_path / "run" / "metrics.json").read_text())["test/toy_loss"]
        == metrics["test/toy_loss"]
    )
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["phase"]["name"] == "toy"
    phase = ToyPhase(**{k: ckpt["hyper_parameters"][k] for k in ("model", "phase")})
    phase.load_state_dict(ckpt["state_dict"])
    assert phase.entry.is_world_model and not phase.entry.trains_dynamics  # its row
