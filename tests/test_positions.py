"""Position estimates from frames: the floor on ground-truth frames, the coordinate convention, and that the
estimate follows the objects (shifts, blur) and not something else (blank and wrong frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from physworld.data.render import blank, draw_discs, to_uint8
from physworld.data.scenes import SCENES
from physworld.metrics.positions import (
    PositionError,
    estimate_positions,
    position_error,
    position_error_vs_reference,
    true_positions,
)
from physworld.paths import CONFIG_DIR

CONFIGS = CONFIG_DIR / "dataset"
N, T = 16, 6
# Measured floors (median px on these 96 frames) are 0.02-0.04; the bounds leave a wide margin.
FLOOR_MEDIAN, FLOOR_P90 = 0.25, 0.6


def load(name: str, n: int = N, num_frames: int = T):
    """Frames (n*T, 3, H, W) float, true positions (n*T, K, 2), colours (n*T, K, 3) of a scene at seed 0."""
    params = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["scene"]
    scene = SCENES[name].generate(np.random.default_rng(0), n, num_frames, params)
    colors = torch.as_tensor(scene.params["object_colors"])  # (n, K, 3)
    k = colors.shape[1]
    frames = torch.as_tensor(scene.frames).permute(0, 1, 4, 2, 3).flatten(0, 1).float() / 255
    true = torch.as_tensor(true_positions(scene.states, SCENES[name].POSITIONS, k)).flatten(0, 1)
    return frames, true, colors.repeat_interleave(num_frames, 0)


@pytest.fixture(scope="module")
def data():
    return {name: load(name) for name in ("bouncing_balls", "pendulum", "orbital", "multi_ball")}


@pytest.mark.parametrize("name", ["bouncing_balls", "pendulum", "orbital", "multi_ball"])
def test_floor_on_ground_truth(data, name):
    frames, true, colors = data[name]
    error = position_error(frames, true, colors)
    valid = torch.isfinite(true).all(-1)
    assert torch.isfinite(error[valid]).all(), "every object is found in its true frame"
    assert torch.isnan(error[~valid]).all(), "absent objects (multi_ball's padding) stay NaN"
    e = error[valid]
    assert e.median() < FLOOR_MEDIAN and e.quantile(0.9) < FLOOR_P90, (e.median(), e.quantile(0.9))


def test_pixel_centre_convention():
    """A disc drawn at (x, y) is found at (x, y): pixel centres are at i + 0.5, as in render.py."""
    centres = np.array([[[20.3, 40.7]], [[5.5, 6.0]], [[50.0, 12.25]]], np.float32)  # (3, 1, 2)
    colors = np.array([[[1.0, 0.4, 0.5]], [[0.4, 1.0, 0.9]], [[0.5, 0.5, 1.0]]], np.float32)
    canvas = blank(3, (0.03, 0.05, 0.02))
    draw_discs(canvas, centres, np.full((3, 1), 3.5, np.float32), colors)
    frames = torch.as_tensor(to_uint8(canvas)).permute(0, 3, 1, 2).float() / 255
    for refine in (True, False):
        est = estimate_positions(frames, torch.as_tensor(colors), refine=refine)
        torch.testing.assert_close(est, torch.as_tensor(centres), atol=0.08, rtol=0)  # 0.5 if off


def test_shift_moves_the_estimate(data):
    frames, true, colors = data["orbital"]
    dx, dy = 3, -2
    shifted = torch.roll(frames, shifts=(dy, dx), dims=(-2, -1))  # rows are y, columns x
    before, after = estimate_positions(frames, colors), estimate_positions(shifted, colors)
    inside = ((true > 8) & (true < 56)).all(-1)  # away from the edges, where roll wraps around
    assert inside.sum() > 20
    moved = (after - before)[inside]  # (M, 2)
    torch.testing.assert_close(moved, torch.tensor([dx, dy]).float().expand_as(moved), atol=0.1, rtol=0)


def test_blank_frame_gives_nan(data):
    frames, _, colors = data["bouncing_balls"]
    background = frames[:, :, :1, :1].expand_as(frames)  # the corner pixel everywhere: no object
    assert torch.isnan(estimate_positions(background, colors)).all()
    assert torch.isnan(estimate_positions(background, colors, refine=False)).all()
    valid = torch.zeros(colors.shape[:2], dtype=torch.bool)
    assert torch.isnan(estimate_positions(frames, colors, valid=valid)).all(), "not valid: NaN"


def test_blur_keeps_the_estimate(data):
    frames, true, colors = data["bouncing_balls"]
    blurred = F.avg_pool2d(frames, 3, stride=1, padding=1, count_include_pad=False)
    error = position_error(blurred, true, colors)
    assert error.median() < 0.3 and error.max() < 1.5, (error.median(), error.max())


def test_wrong_frame_is_far(data):
    """Another sequence's frame (same colours, other positions) is many floors away: the metric can fail."""
    frames, true, colors = data["multi_ball"]
    floor = position_error(frames, true, colors).nanmedian()
    wrong = torch.roll(frames, shifts=T, dims=0)  # frame t of the next sequence
    error = position_error(wrong, true, colors)
    assert error.nanmedian() > 5.0 and error.nanmedian() > 50 * floor, (error.nanmedian(), floor)


def test_vs_reference_and_accumulator(data):
    frames, true, colors = data["pendulum"]
    assert position_error_vs_reference(frames, frames, colors).max() == 0
    shifted = torch.roll(frames, shifts=2, dims=-1)
    torch.testing.assert_close(
        position_error_vs_reference(shifted, frames, colors), torch.full((N * T, 1), 2.0), atol=0.1, rtol=0
    )
    metric = PositionError()
    metric.update(frames, true, colors)
    metric.update(frames[:, :, :1, :1].expand_as(frames), true, colors)  # a blank prediction: nothing found
    out = metric.compute()
    assert out["pos_err"] < FLOOR_MEDIAN and out["pos_found"] == 0.5


def test_true_positions_numpy_and_torch():
    states = np.arange(2 * 3 * 16, dtype=np.float32).reshape(2, 3, 16)
    idx = SCENES["moving_mnist"].POSITIONS  # 4 slots
    got = true_positions(states, idx, num_objects=2)
    assert got.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(got[..., 1, :], states[..., 4:6])
    np.testing.assert_array_equal(
        true_positions(torch.as_tensor(states), idx).numpy(), true_positions(states, idx)
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_on_gpu(data):
    frames, true, colors = data["multi_ball"]
    cpu = estimate_positions(frames, colors)
    gpu = estimate_positions(frames.cuda(), colors.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=0, equal_nan=True)
