"""Per-horizon metrics of a multi-step rollout, for the model and for the copy-last-frame baseline.

Conventions (so figures compare with published video-prediction tables, e.g. OpenSTL's):
- frames are in [0, 1]; predictions are clamped to that range before scoring;
- `mse`, `mae`: per-pixel means of one frame, averaged over frames; `mse_sum`, `mae_sum`: the same errors
  summed over C x H x W per frame (the OpenSTL "MSE"/"MAE"), averaged over frames;
- `rmse`: sqrt of the mean per-pixel MSE at that horizon (the seed's "3-step RMSE" is `rmse` at t03);
- `psnr`: per frame with data_range 1, then averaged (not pooled over the dataset);
- `ssim`: Gaussian-window SSIM per frame (torchmetrics' definition, physworld.metrics.frames), averaged;
- `latent_mse`: mean squared error between the predicted latent and the encoded true frame.

`HorizonMetrics` accumulates sums over batches so an epoch's value is the mean over every evaluated
sequence, and its states are summed across DDP ranks.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from physworld.metrics.frames import psnr_per_frame, ssim_per_frame

FRAME_METRICS = ("mse", "mae", "mse_sum", "mae_sum", "psnr", "ssim")


def frame_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """pred, target (N, K, 3, H, W) -> dict of per-sequence, per-horizon values (N, K)."""
    n, k = pred.shape[:2]
    pred = pred.detach().float().clamp(0, 1).flatten(0, 1)  # (N*K, 3, H, W)
    target = target.detach().float().flatten(0, 1)
    diff = pred - target
    sq, ab = diff.pow(2).flatten(1), diff.abs().flatten(1)
    out = {
        "mse": sq.mean(1),
        "mae": ab.mean(1),
        "mse_sum": sq.sum(1),
        "mae_sum": ab.sum(1),
        "psnr": psnr_per_frame(pred, target),
        "ssim": ssim_per_frame(pred, target),
    }
    return {key: value.reshape(n, k) for key, value in out.items()}


def latent_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target (N, K, C, h, w) -> per-sequence, per-horizon latent MSE (N, K)."""
    return (pred.detach().float() - target.detach().float()).pow(2).flatten(2).mean(2)


class HorizonMetrics(Metric):
    """Sums of per-horizon values over sequences; `compute()` -> {name: (K,) means}, with `rmse` added.

    NaN values (e.g. a position error where no object was found) are left out of their mean, not propagated.
    """

    full_state_update = False

    def __init__(self, horizon: int, names=(*FRAME_METRICS, "latent_mse"), **kwargs):
        super().__init__(**kwargs)
        self.names = tuple(names)
        shape = (len(self.names), horizon)
        self.add_state("sums", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: dict[str, torch.Tensor]) -> None:
        """values: name -> (N, K) for every name of this metric."""
        stacked = torch.stack([values[name].double() for name in self.names])  # (names, N, K)
        finite = torch.isfinite(stacked)
        self.sums += torch.where(finite, stacked, 0.0).sum(1)
        self.counts += finite.sum(1)

    def compute(self) -> dict[str, torch.Tensor]:
        means = self.sums / self.counts  # NaN where nothing finite was seen
        out = {name: means[i].float() for i, name in enumerate(self.names)}
        if "mse" in out:
            out["rmse"] = out["mse"].sqrt()
        return out
