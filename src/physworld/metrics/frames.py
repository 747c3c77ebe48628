"""Frame-quality metrics with the conventions used by published video-prediction tables.

Frames are in [0, 1]. PSNR is computed per frame (data_range = 1) and then averaged over frames, not pooled
over the dataset (torchmetrics' PeakSignalNoiseRatio pools the squared error over everything it saw unless
`dim` is given). SSIM is torchmetrics' Gaussian-window SSIM, averaged over frames.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.image import StructuralSimilarityIndexMeasure


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target (N, C, H, W) in [0, 1] -> PSNR in dB per frame (N,). Identical frames are capped at 100 dB."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0)


class FrameMetrics(nn.Module):
    """Running L1, MSE, PSNR and SSIM over an epoch, of predictions clamped to the frame range [0, 1];
    `compute()` returns a dict of scalars."""

    def __init__(self):
        super().__init__()
        self.l1, self.mse, self.psnr = MeanMetric(), MeanMetric(), MeanMetric()
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = pred.detach().float().clamp(0, 1), target.detach().float()  # decoders output is linear
        self.l1.update((pred - target).abs().flatten(1).mean(1))
        self.mse.update((pred - target).pow(2).flatten(1).mean(1))
        self.psnr.update(psnr_per_frame(pred, target))
        self.ssim.update(pred, target)

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "l1": self.l1.compute(),
            "mse": self.mse.compute(),
            "psnr": self.psnr.compute(),
            "ssim": self.ssim.compute(),
        }

    def reset(self) -> None:
        for metric in (self.l1, self.mse, self.psnr, self.ssim):
            metric.reset()
