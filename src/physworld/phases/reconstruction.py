"""Phase 1 of the seed: train the VQ-VAE to reconstruct single frames.

    L_recon = |x - x_hat|_1 + alpha * L_vq          (seed, "Phase 1: Reconstruction")
            (+ mse_weight * |x - x_hat|_2^2 + gradient_weight * GDL, both off by default, and pixel weights
            `foreground_weight`: see losses.py)

Each window of `seq_len` frames is flattened into independent images. The optional MSE term is ours: with
L1 alone, on sparse scenes, some initialisations sit on the all-black solution for hundreds of steps
because the L1 gradient of a rarely-lit pixel points to black; MSE's gradient grows with the error and pulls
the model off it (measured: docs/results.md).
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from physworld.metrics.codebook import CodebookUsage
from physworld.metrics.frames import FrameMetrics
from physworld.phases.base import WorldModelPhase
from physworld.phases.losses import reconstruction_loss

STAGES = ("val", "test")


class ReconstructionPhase(WorldModelPhase):
    def __init__(self, model: dict, phase: dict, dataset_names: list[str] | None = None):
        super().__init__(model, phase, dataset_names)
        # One set of metric objects per evaluation stage (never shared between val and test) and dataset
        # (dataset=all has one loader per member): every metric is averaged per dataset, then over datasets
        # (log_dataset_means). The codebook's usage is the whole evaluation's: how many codes the model uses.
        names = self.dataset_names
        self.frame_metrics = nn.ModuleDict(
            {s: nn.ModuleDict({n: FrameMetrics() for n in names}) for s in STAGES}
        )
        codes = self.vqvae.quantizer.total_codes  # K codes in each of G groups
        self.codebook_usage = nn.ModuleDict({s: CodebookUsage(codes) for s in STAGES})
        self.eval_losses = nn.ModuleDict(
            {
                s: nn.ModuleDict(
                    {n: nn.ModuleDict({"loss": MeanMetric(), "vq_loss": MeanMetric()}) for n in names}
                )
                for s in STAGES
            }
        )
        # One 64x64 frame, (B, T, 3, H, W): the model summary runs forward on it to count the FLOPs per frame.
        # A dict, so that on_after_batch_transfer (which reads batch dicts) leaves it as it is.
        self.example_input_array = {"frames": torch.zeros(1, 1, 3, 64, 64)}

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """frames (B, T, 3, H, W) -> reconstructions (B*T, 3, H, W), indices (B*T, G, h, w), vq loss."""
        return self.vqvae(frames.flatten(0, 1))

    def compute_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss of a batch, as the training and evaluation steps compute it. `batch`: "frames" (B, T, 3, H, W)
        float in [0, 1] (on_after_batch_transfer's output). Returns "loss" (what training minimises), its terms
        "recon_l1", "recon_mse", "recon_gdl" (unweighted) and "vq_loss" (the ones logged as train/<key>), and
        the tensors the metrics need: "target" and "recon" (B*T, 3, H, W), "indices" (B*T, G, h, w)."""
        target = batch["frames"].flatten(0, 1)  # (B*T, 3, H, W)
        recon, indices, vq_loss = self(batch["frames"])
        out = reconstruction_loss(recon, target, vq_loss, self.settings)
        return {"loss": out.pop("recon_loss"), **out, "target": target, "recon": recon, "indices": indices}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.compute_losses(batch)
        self.log("train/loss", out["loss"], prog_bar=True)
        self.log_dict({f"train/{k}": out[k] for k in ("recon_l1", "recon_mse", "recon_gdl", "vq_loss")})
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step("val", batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step("test", batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # ------------------------------------------------------------------------------------------------------

    def _eval_step(self, stage: str, batch: dict, dataloader_idx: int) -> dict:
        out = self.compute_losses(batch)
        n, name = out["target"].shape[0], self.dataset_names[dataloader_idx]
        for key, metric in self.eval_losses[stage][name].items():
            metric.update(out[key].detach(), weight=n)
        self.frame_metrics[stage][name].update(out["recon"], out["target"])
        self.codebook_usage[stage].update(out["indices"])
        # The image-grid callback picks these up from the first batch.
        return {"inputs": out["target"][:16].detach(), "outputs": out["recon"][:16].detach()}

    def _log_epoch_metrics(self, stage: str) -> None:
        # torchmetrics syncs ranks in compute()
        frames = {n: m.compute() for n, m in self.frame_metrics[stage].items() if m.psnr.update_called}
        self.log_dataset_means(stage, frames, prefix="recon_")
        usage = self.codebook_usage[stage].compute()
        self.log_dict({f"{stage}/codebook_{k}": v for k, v in usage.items()})
        losses = {
            n: {k: m.compute() for k, m in metrics.items()}
            for n, metrics in self.eval_losses[stage].items()
            if metrics["loss"].update_called
        }
        self.log_dataset_means(stage, losses, prog_bar="loss")
        for name in self.dataset_names:
            self.frame_metrics[stage][name].reset()
            for metric in self.eval_losses[stage][name].values():
                metric.reset()
        self.codebook_usage[stage].reset()
