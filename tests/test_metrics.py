"""Frame metrics: the matrix-product SSIM is torchmetrics' SSIM, per frame, also under bf16 autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from physworld.metrics.frames import FrameMetrics, ssim_per_frame


def _pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(40, 3, 64, 64, generator=g)  # more frames than one chunk of ssim_per_frame
    noisy = (noise + 0.2 * torch.randn(40, 3, 64, 64, generator=g)).clamp(0, 1)
    # non-square frames, objects at the borders (where the reflect padding matters)
    blobs = torch.zeros(4, 3, 64, 48)
    blobs[:, 0, :6, :6], blobs[:, 1, 30:40, 40:], blobs[:, 2, 58:, 10:20] = 1.0, 0.7, 0.4
    shifted = torch.roll(blobs, shifts=(2, -3), dims=(2, 3))
    return [(noisy, noise), (shifted, blobs), (blobs, blobs), (blobs * 0.5, blobs)]


@pytest.mark.parametrize("index", range(4))
def test_ssim_per_frame_matches_torchmetrics(index):
    pred, target = _pairs()[index]
    expected = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    got = ssim_per_frame(pred, target)
    assert got.shape == (pred.shape[0],)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_ssim_per_frame_keeps_fp32_under_bf16_autocast():
    pred, target = _pairs()[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ssim_per_frame(pred, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ssim_per_frame(pred, target), atol=1e-6, rtol=0)


def test_frame_metrics_ssim_is_the_mean_over_frames():
    pred, target = _pairs()[1]
    metrics = FrameMetrics()
    metrics.update(pred[:3], target[:3])
    metrics.update(pred[3:], target[3:])
    expected = structural_similarity_index_measure(pred, target, data_range=1.0)
    torch.testing.assert_close(metrics.compute()["ssim"], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "shapes", [((2, 3, 64, 64), (2, 3, 64, 32)), ((3, 64, 64), (3, 64, 64)), ((1, 3, 4, 4),) * 2]
)
def test_ssim_per_frame_rejects_bad_shapes(shapes):
    with pytest.raises(ValueError, match="ssim_per_frame"):
        ssim_per_frame(torch.rand(shapes[0]), torch.rand(shapes[1]))


def test_gradient_energy_halves_when_an_edge_spreads_over_two_pixels():
    from physworld.metrics.rollout import gradient_energy

    sharp = torch.zeros(1, 1, 3, 64, 64)
    sharp[..., 32:] = 1.0  # a vertical step edge: one jump of 1 per row and channel
    soft = sharp.clone()
    soft[..., 32] = 0.5  # the same edge over two pixels: two jumps of 0.5
    assert gradient_energy(sharp).item() == pytest.approx(64 * 3 * 1.0)
    assert gradient_energy(soft).item() == pytest.approx(64 * 3 * 0.5)


def test_constant_velocity_baseline_against_hand_computation():
    from physworld.metrics.rollout import constant_velocity_errors

    # pendulum's state is (theta, omega, x, y, ...): its POSITIONS are columns (2, 3). The bob falls with
    # constant acceleration 1 px/frame^2 from rest at y = 0 (frame 0); context frames 0 and 1, then 3 steps.
    t = np.arange(5, dtype=np.float32)
    states = np.zeros((1, 5, 6), np.float32)
    states[0, :, 2] = 10.0
    states[0, :, 3] = 0.5 * t**2
    errors = constant_velocity_errors("pendulum", states, c=2, k=3, num_objects=1, device="cpu")
    # extrapolated y = 0.5 + k * 0.5 for frames 2, 3, 4 against 2, 4.5, 8
    expected = np.array([2.0 - 1.0, 4.5 - 1.5, 8.0 - 2.0])
    assert torch.allclose(errors[0, :, 0], torch.tensor(expected, dtype=torch.float32), atol=1e-6)


def test_rollout_scorer_gives_the_truth_sharpness_one_and_the_copy_last_its_own_error():
    from omegaconf import OmegaConf

    from physworld.data.scenes import SCENES
    from physworld.metrics.rollout import RolloutScorer, horizon_keys
    from physworld.paths import CONFIG_DIR

    scene = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "dataset" / "bouncing_balls.yaml").scene)
    batch = SCENES["bouncing_balls"].generate(np.random.default_rng(0), 4, 8, scene)
    frames = torch.from_numpy(batch.frames).permute(0, 1, 4, 2, 3).float() / 255  # (4, 8, 3, 64, 64)
    c, k = 2, 6
    latents = torch.randn(4, c + k, 5, 8, 8)
    codes = torch.randint(0, 9, (4, c + k, 2, 8, 8))
    out = {  # a "model" that predicts the truth exactly, and a tokenizer floor that blurs it
        "pred_frames": frames[:, c:],
        "floor_frames": torch.nn.functional.avg_pool2d(frames[:, c:].flatten(0, 1), 3, 1, 1).unflatten(
            0, (4, k)
        ),
        "pred_latents": latents[:, c:],
        "true_latents": latents[:, c:],
        "last_latent": latents[:, c - 1],
        "pred_indices": codes[:, c:],
        "true_indices": codes[:, c:],
        "last_indices": codes[:, c - 1],
    }
    scorer = RolloutScorer("bouncing_balls", batch.params, batch.states, c, k)
    scorer.update(np.arange(4), frames, out)
    results = scorer.compute()
    model, copy_last, floor = results["model"], results["copy_last"], results["tokenizer"]
    assert torch.allclose(model["sharpness"], torch.ones(k)) and torch.allclose(model["mse"], torch.zeros(k))
    assert (floor["sharpness"] < 0.9).all()  # a 3x3 mean blur loses gradient energy
    assert torch.allclose(model["pos_err"], results["truth"]["pos_err"])  # the truth, located as the truth
    assert (copy_last["pos_err"][1:] > model["pos_err"][1:]).all() and torch.equal(
        model["token_acc"], torch.ones(k)
    )
    assert "pos_err" in results["const_vel"] and (results["const_vel"]["pos_err"] >= 0).all()
    keys = horizon_keys("test", results)
    assert keys["test/rollout_mse/t01"] == 0 and "test/tokenizer_floor_sharpness/t06" in keys
    assert "test/baseline_const_vel_pos_err/t03" in keys and "test/truth_pos_err/t01" in keys
