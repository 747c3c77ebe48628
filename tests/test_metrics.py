"""Frame metrics: the matrix-product SSIM is torchmetrics' SSIM, per frame, also under bf16 autocast."""

from __future__ import annotations

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
