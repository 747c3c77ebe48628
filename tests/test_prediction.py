"""The dynamics and the prediction / comprehensive phases: shapes, gradients, the weighted loss, tiny runs,
checkpoints across phases, rollout evaluation files, the overfit test and the one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary
from PIL import Image

from physworld.checks import check_config
from physworld.errors import CheckpointError, ConfigError
from physworld.models.convgru import ConvGRUCell, LatentDynamics
from physworld.models.spec import ModelSpec
from physworld.phases.checkpoints import check_world_model_checkpoint, read_checkpoint
from physworld.phases.prediction import PredictionPhase, weighted_latent_mse
from physworld.run import build_datamodule, build_phase, plain, train


@pytest.fixture(scope="module")
def recon_ckpt(tmp_path_factory):
    """A tiny reconstruction checkpoint on pendulum, trained once for the module."""
    from tests.conftest import compose_config

    tmp = tmp_path_factory.mktemp("recon")
    cfg = compose_config(
        tmp, ["debug=tiny", "dataset=pendulum", "logger=none", "test=false", "phase.max_epochs=2"]
    )
    train(cfg)
    return tmp / "run" / "checkpoints" / "last.ckpt"


def test_convgru_cell_and_stack_shapes():
    cell = ConvGRUCell(in_channels=5, hidden_channels=7, kernel_size=3)
    assert cell(torch.randn(2, 5, 8, 8), torch.zeros(2, 7, 8, 8)).shape == (2, 7, 8, 8)
    dyn = LatentDynamics(latent_channels=192, hidden_channels=192, num_layers=2, action_dim=2)
    z_next, state = dyn.step(torch.randn(3, 192, 8, 8), torch.randn(3, 2))
    assert z_next.shape == (3, 192, 8, 8) and [h.shape for h in state] == [(3, 192, 8, 8)] * 2
    with pytest.raises(ValueError, match="odd"):
        ConvGRUCell(4, 4, kernel_size=2)


def test_convgru_update_gate_keeps_state_when_closed():
    # With the update gate forced shut (bias -> -inf), h_t = h_{t-1}: the GRU equations, not a plain conv.
    cell = ConvGRUCell(3, 4)
    with torch.no_grad():
        cell.gates.bias[4:] = -1e4  # second half of the gate channels: the update gate
    h = torch.randn(1, 4, 8, 8)
    assert torch.allclose(cell(torch.randn(1, 3, 8, 8), h), h, atol=1e-5)


def test_rollout_feeds_back_predictions_and_gradients_flow():
    torch.manual_seed(0)
    dyn = LatentDynamics(latent_channels=6, hidden_channels=8, num_layers=2, action_dim=2)
    context = torch.randn(2, 3, 6, 8, 8, requires_grad=True)
    actions = torch.randn(2, 3 + 4, 2)
    pred = dyn.rollout(context, actions, horizon=5).latents
    assert pred.shape == (2, 5, 6, 8, 8)
    pred[:, -1].sum().backward()  # the 5th step depends on every weight and on the context
    assert context.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dyn.parameters())
    # Actions matter: another action at the first predicted step changes later predictions.
    other = actions.clone()
    other[:, 3] += 1.0
    assert not torch.allclose(dyn.rollout(context, other, horizon=5).latents[:, 1:], pred[:, 1:])
    with pytest.raises(ValueError, match="actions"):
        dyn.rollout(context, actions[:, :4], horizon=5)


def test_weighted_latent_mse_matches_hand_computation():
    pred = torch.zeros(2, 3, 1, 1, 1)
    target = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1, 1).expand(2, 3, 1, 1, 1)
    weights = torch.tensor([0.5, 0.3, 0.2])
    assert weighted_latent_mse(pred, target, weights).item() == pytest.approx(0.5 * 1 + 0.3 * 4 + 0.2 * 9)


def conv_flops(conv: torch.nn.Conv2d, side: int) -> int:
    """2 * Cin * Cout * k * k multiply-adds per output pixel of a square side x side output."""
    return 2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] * side**2


@pytest.mark.parametrize("output", ["latent", "tokens"])
@pytest.mark.parametrize("phase", ["prediction", "comprehensive"])
def test_model_summary_counts_the_flops_of_a_prediction(make_cfg, phase, output):
    # The summary runs forward on example_input_array; without one it reported 0 FLOPs.
    module = build_phase(make_cfg("debug=tiny", f"phase={phase}", f"model.dynamics.output={output}"))
    summary = ModelSummary(module, max_depth=-1)  # every layer: the cells run inside dynamics.rollout
    # A lower bound from the encoder's convs on the context frames and the ConvGRU cells' convs at every
    # step of the rollout (the warm-up on the context, then the predicted frames).
    c, k = module.context_frames, module.horizon
    side, encoder = 64, 0
    for conv in module.vqvae.encoder.convs:
        side //= conv.stride[0]
        encoder += conv_flops(conv, side)
    cells = sum(
        conv_flops(cell.gates, side) + conv_flops(cell.candidate, side) for cell in module.dynamics.cells
    )
    assert summary.total_flops >= c * encoder + (c + k - 1) * cells > 0
    first = module.dynamics.cells[0]
    per_step = conv_flops(first.gates, side) + conv_flops(first.candidate, side)
    assert sum(summary.flop_counts["dynamics.cells.0"].values()) >= (c + k - 1) * per_step


def test_prediction_fast_dev_run_loads_the_reconstruction_checkpoint(make_cfg, recon_ckpt):
    cfg = make_cfg(
        "debug=tiny",
        "phase=prediction",
        "dataset=pendulum",
        "logger=none",
        "trainer.fast_dev_run=true",
        f"phase.init_from={recon_ckpt}",
    )
    metrics = train(cfg)
    assert "train/pred_latent_mse" in metrics and "test/rollout_mse/t01" in metrics


def test_init_from_copies_the_vqvae_and_freezes_it(make_cfg, recon_ckpt):
    cfg = make_cfg("debug=tiny", "phase=prediction", "dataset=pendulum", f"phase.init_from={recon_ckpt}")
    phase = PredictionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
    phase.setup("fit")
    saved = torch.load(recon_ckpt, weights_only=False)["state_dict"]
    assert torch.equal(phase.vqvae.quantizer.embedding.weight, saved["vqvae.quantizer.embedding.weight"])
    assert not any(p.requires_grad for p in phase.vqvae.parameters())
    assert all(p.requires_grad for p in phase.dynamics.parameters())
    phase.train()
    assert not phase.vqvae.training and phase.dynamics.training


def test_tiny_prediction_run_writes_rollout_metrics_plot_and_gif(make_cfg, recon_ckpt, tmp_path):
    cfg = make_cfg("debug=tiny", "phase=prediction", "dataset=pendulum", f"phase.init_from={recon_ckpt}")
    metrics = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())
    horizon = 8 - 2  # debug=tiny stores 8 frames; 2 are context
    for stage in ("val", "test"):
        for prefix in ("rollout", "baseline_copy_last"):
            for metric in ("mse", "psnr", "ssim", "latent_mse", "rmse", "mse_sum", "mae_sum"):
                assert f"{stage}/{prefix}_{metric}/t{horizon:02d}" in saved, (stage, prefix, metric)
        assert f"{stage}/rollout_mse/t{horizon + 1:02d}" not in saved
    assert saved["test/rollout_rmse/t03"] == pytest.approx(saved["test/rollout_mse/t03"] ** 0.5, rel=1e-4)
    # physics-aware: object positions from frames vs states.npy; on the true frames the estimator is exact
    for t in range(1, horizon + 1):
        assert 0 <= saved[f"test/truth_pos_err/t{t:02d}"] < 0.5
        assert saved[f"test/baseline_copy_last_pos_err/t{t:02d}"] > saved[f"test/truth_pos_err/t{t:02d}"]
        assert saved[f"test/truth_pos_found/t{t:02d}"] == 1.0
    assert 0 <= saved["test/rollout_pos_found/t01"] <= 1  # pos_err itself is absent when no object is found
    assert saved["test/baseline_copy_last_latent_mse/t01"] >= 0 and metrics == saved
    images = run / "images"
    assert Image.open(images / "rollout_test_error_vs_horizon.png").format == "PNG"
    gif = Image.open(images / "rollout_test.gif")
    assert gif.format == "GIF" and gif.n_frames == 8
    # a new best.ckpt of the prediction phase loads back into the prediction phase, dynamics included
    ckpt = read_checkpoint(run / "checkpoints" / "best.ckpt")
    assert any(k.startswith("dynamics.") for k in ckpt["state_dict"])


def test_comprehensive_on_all_reports_every_dataset(make_cfg):
    cfg = make_cfg(
        "debug=tiny",
        "phase=comprehensive",
        "dataset=all",
        "logger=none",
        "trainer.fast_dev_run=true",
        "callbacks.rollout.num_sequences=2",
    )
    metrics = train(cfg)
    names = [d.name for d in cfg.dataset.members.values()]
    for name in names:
        assert f"test/recon_psnr/{name}" in metrics and f"test/pred_frame_mse/{name}" in metrics
        assert f"test/rollout_mse/{name}/t01" in metrics
    assert metrics["test/recon_psnr"] == pytest.approx(
        sum(metrics[f"test/recon_psnr/{n}"] for n in names) / len(names), rel=1e-4
    )


def test_overfit_halves_the_prediction_loss(make_cfg, recon_ckpt):
    torch.manual_seed(0)
    cfg = make_cfg(
        "debug=tiny", "phase=prediction", "dataset=pendulum", f"phase.init_from={recon_ckpt}", "phase.lr=3e-3"
    )
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    phase = PredictionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
    phase.setup("fit")
    phase.train()
    batch = phase.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    optimizer = phase.configure_optimizers()
    losses = []
    for _ in range(100):
        loss = phase.compute_losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_bad_prediction_configs_fail_with_one_line(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"phase.init_from=None .*freeze_vqvae"):
        check_config(make_cfg("phase=prediction"))
    with pytest.raises(ConfigError, match=r"phase.init_from='/nope.ckpt': no such checkpoint"):
        check_config(make_cfg("phase=prediction", "phase.init_from=/nope.ckpt"))
    with pytest.raises(ConfigError, match=r"phase.seq_len=5 .* = 7"):
        check_config(make_cfg("phase=comprehensive", "phase.seq_len=5"))
    with pytest.raises(ConfigError, match="phase.loss_weights"):
        check_config(make_cfg("phase=comprehensive", "phase.loss_weights=[]"))
    with pytest.raises(ConfigError, match="model.dynamics.kernel_size=4"):
        check_config(make_cfg("phase=comprehensive", "model.dynamics.kernel_size=4"))


def test_wrong_checkpoints_fail_with_one_line(tmp_path, recon_ckpt, make_cfg):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(corrupt)
    ckpt = read_checkpoint(recon_ckpt)
    spec = ModelSpec.from_config(plain(make_cfg("debug=tiny").model))
    check_world_model_checkpoint(ckpt, "x.ckpt", spec)  # same sizes: accepted
    wrong_phase = {**ckpt, "hyper_parameters": {**ckpt["hyper_parameters"], "phase": {"name": "rl"}}}
    with pytest.raises(CheckpointError, match="phase 'rl'"):
        check_world_model_checkpoint(wrong_phase, "x.ckpt", spec)
    bigger = ModelSpec.from_config(plain(make_cfg("debug=tiny", "model.vq.num_codes=64").model))
    with pytest.raises(CheckpointError, match=r"model.vq.num_codes=64 conflicts with the checkpoint's 32 \("):
        check_world_model_checkpoint(ckpt, "x.ckpt", bigger)
