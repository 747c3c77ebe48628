"""Frame-quality metrics with the conventions used by published video-prediction tables.

Frames are in [0, 1]. PSNR is computed per frame (data_range = 1) and then averaged over frames, not pooled
over the dataset (torchmetrics' PeakSignalNoiseRatio pools the squared error over everything it saw unless
`dim` is given). SSIM is the Gaussian-window SSIM of Wang et al. (2004) with torchmetrics' defaults (11 taps,
sigma 1.5, K1 0.01, K2 0.03, reflect padding, the map averaged over the whole frame), per frame, averaged over
frames. `ssim_per_frame` blurs with two matrix products, 16 frames at a time, instead of torchmetrics' grouped
11x11 convolution, which on a CPU cost a large share of a demo prediction step's time (this is much
faster); a test checks the two agree to 1e-5.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torchmetrics import MeanMetric

SSIM_TAPS, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
SSIM_CHUNK = 16  # frames per chunk in ssim_per_frame
FOREGROUND_THRESHOLD = 0.1  # colour difference from the median above which a pixel is drawn on


def foreground_mask(frames: torch.Tensor) -> torch.Tensor:
    """frames (N, 3, H, W) in [0, 1] -> (N, 1, H, W) float, 1 where a pixel differs from the frame's median
    colour (per channel, over the frame, i.e. its background) by more than FOREGROUND_THRESHOLD in some
    channel: what is drawn on. Used by the reconstruction loss's foreground weight and the rollouts'
    foreground-area ratio (metrics/rollout.py)."""
    background = frames.flatten(2).median(dim=-1).values[..., None, None]  # (N, 3, 1, 1)
    return ((frames - background).abs().amax(1, keepdim=True) > FOREGROUND_THRESHOLD).to(frames.dtype)


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target (N, C, H, W) in [0, 1] -> PSNR in dB per frame (N,). Identical frames are capped at 100 dB."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0)


@functools.lru_cache(maxsize=16)
def _blur_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) matrix B with (B @ x)[i] = the Gaussian-weighted sum of x around i, reflect-padded at the ends."""
    half = SSIM_TAPS // 2
    taps = torch.arange(-half, half + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (taps / SSIM_SIGMA) ** 2)
    weights /= weights.sum()
    rows = torch.arange(n).unsqueeze(1).expand(n, SSIM_TAPS)
    cols = rows + taps.long()
    cols = torch.where(cols < 0, -cols, cols)  # reflect, edge not repeated (torch's "reflect" padding)
    cols = torch.where(cols > n - 1, 2 * (n - 1) - cols, cols)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.index_put_((rows.flatten(), cols.flatten()), weights.repeat(n), accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def ssim_per_frame(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """pred, target (N, C, H, W) -> SSIM per frame (N,): the per-pixel SSIM map averaged over C x H x W."""
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"ssim_per_frame: expected two (N, C, H, W) tensors, got {tuple(pred.shape)}, "
            f"{tuple(target.shape)}"
        )
    h, w = pred.shape[-2:]
    if min(h, w) <= SSIM_TAPS // 2:
        raise ValueError(
            f"ssim_per_frame: frames of {h}x{w} are too small for {SSIM_TAPS}-tap reflect padding"
        )
    rows, cols = (_blur_matrix(n, pred.dtype, pred.device) for n in (h, w))
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    out = []
    # 16 frames at a time: the five moment maps of a chunk stay in the CPU cache, which is several times
    # faster than one piece
    for p, t in zip(pred.split(SSIM_CHUNK), target.split(SSIM_CHUNK)):
        moments = torch.stack((p, t, p * p, t * t, p * t))
        # autocast off: under bf16-mixed the matrix products would lose digits
        with torch.autocast(pred.device.type, enabled=False):
            mu_p, mu_t, pp, tt, pt = rows @ moments @ cols.T  # local means of x, y, x^2, y^2, xy
        var_p = (pp - mu_p * mu_p).clamp_min(0.0)
        var_t = (tt - mu_t * mu_t).clamp_min(0.0)
        cov = pt - mu_p * mu_t
        ssim = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
            (mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2)
        )
        out.append(ssim.flatten(1).mean(1))
    return torch.cat(out)


class FrameMetrics(nn.Module):
    """Running L1, MSE, PSNR and SSIM over an epoch, of predictions clamped to the frame range [0, 1], and LPIPS
    per frame when given the metric (physworld.metrics.lpips.LPIPS); `compute()` returns a dict of scalars."""

    def __init__(self, lpips: nn.Module | None = None):
        super().__init__()
        self.l1, self.mse, self.psnr, self.ssim = MeanMetric(), MeanMetric(), MeanMetric(), MeanMetric()
        self.lpips = lpips
        self.lpips_mean = MeanMetric() if lpips is not None else None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = pred.detach().float().clamp(0, 1), target.detach().float()  # decoders output is linear
        self.l1.update((pred - target).abs().flatten(1).mean(1))
        self.mse.update((pred - target).pow(2).flatten(1).mean(1))
        self.psnr.update(psnr_per_frame(pred, target))
        self.ssim.update(ssim_per_frame(pred, target))
        if self.lpips is not None:
            self.lpips_mean.update(self.lpips(pred, target))

    def compute(self) -> dict[str, torch.Tensor]:
        out = {
            "l1": self.l1.compute(),
            "mse": self.mse.compute(),
            "psnr": self.psnr.compute(),
            "ssim": self.ssim.compute(),
        }
        if self.lpips is not None:
            out["lpips"] = self.lpips_mean.compute()
        return out

    def reset(self) -> None:
        for metric in (self.l1, self.mse, self.psnr, self.ssim, self.lpips_mean):
            if metric is not None:
                metric.reset()
