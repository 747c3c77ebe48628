"""The reconstruction phase: a fast_dev_run through train(cfg), a full tiny run, and an overfit test."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary

from physworld.phases.reconstruction import ReconstructionPhase
from physworld.run import build_datamodule, build_phase, train


def test_fast_dev_run(make_cfg):
    cfg = make_cfg("debug=tiny", "trainer.fast_dev_run=true", "logger=none")
    metrics = train(cfg)
    assert "train/loss" in metrics and "test/recon_psnr" in metrics
    assert 0 < metrics["test/recon_psnr"] < 100


def test_tiny_run_writes_checkpoints_metrics_and_images(make_cfg, tmp_path):
    cfg = make_cfg("debug=tiny")
    metrics = train(cfg)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == metrics
    for key in ("val/loss", "val/recon_psnr", "val/recon_ssim", "val/codebook_perplexity", "test/recon_l1"):
        assert key in saved, key
    assert (run / "images" / "recon_latest.png").is_file()
    assert (run / "csv" / "metrics.csv").is_file()
    # best.ckpt is chosen by the phase's monitor, not by val/loss (whose VQ term drifts upwards)
    state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint_state = next(v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert checkpoint_state["monitor"] == "val/recon_l1"


def test_resume_from_checkpoint(make_cfg, tmp_path):
    first = make_cfg("debug=tiny", "test=false", "callbacks.image_grid=null")
    train(first)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=False)
    assert state["epoch"] == 0
    resumed = make_cfg("debug=tiny", "test=false", "phase.max_epochs=2", f"ckpt_path={ckpt}")
    train(resumed)
    assert torch.load(ckpt, weights_only=False)["global_step"] == 2 * state["global_step"]


def test_overfit_halves_the_loss(make_cfg):
    torch.manual_seed(0)
    cfg = make_cfg("debug=tiny", "phase.lr=3e-3")
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    phase = ReconstructionPhase(model=dict(cfg.model), phase=dict(cfg.phase))
    batch = phase.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    optimizer = phase.configure_optimizers()
    losses = []
    for _ in range(150):
        loss = phase.compute_losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_model_summary_counts_the_flops_of_a_frame(make_cfg):
    # The summary runs forward on example_input_array; without one it reported 0 FLOPs.
    phase = build_phase(make_cfg("debug=tiny"))
    flops = ModelSummary(phase).total_flops
    # A lower bound from the encoder's convs alone: 2 * Cin * Cout * k * k multiply-adds per output pixel.
    side, bound = 64, 0
    for conv in phase.vqvae.encoder.convs:
        side //= conv.stride[0]
        bound += (
            2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] * side**2
        )
    assert flops >= bound > 0


def test_reconstruction_averages_every_metric_per_dataset_as_the_other_phases_do(make_cfg):
    # dataset=balls_pendulum: two loaders; each metric per dataset, and its mean over datasets (the prediction
    # phase's rule: every dataset counts the same), not one pool of every frame
    cfg = make_cfg("debug=tiny", "dataset=balls_pendulum", "logger=none", "trainer.fast_dev_run=true")
    metrics = train(cfg)
    names = ["bouncing_balls", "pendulum"]
    for key in ("recon_psnr", "recon_l1", "loss", "vq_loss"):
        per_dataset = [metrics[f"test/{key}/{n}"] for n in names]
        assert per_dataset[0] != per_dataset[1], key
        assert metrics[f"test/{key}"] == pytest.approx(sum(per_dataset) / 2, rel=1e-6), key
    assert "test/codebook_perplexity" in metrics and "test/codebook_perplexity/pendulum" not in metrics
