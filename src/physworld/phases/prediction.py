"""Phase 2 of the seed: learn the latent dynamics (ConvGRU) on top of a trained VQ-VAE.

Each window of `seq_len` frames is encoded to latents z_0 .. z_{T-1}. The dynamics warms up on the first
`context_frames` latents, then rolls forward on its own predictions for the remaining K = len(loss_weights)
frames, and is trained with the seed's multi-step weighted latent MSE (its Failure 3 fix) plus an L2 penalty
on the ConvGRU weights:

    L_pred = sum_k w_k * ||sg[z_{c+k}] - z_hat_{c+k}||^2 + l2 * sum ||W_dyn||^2,   w = 0.5, 0.3, 0.1, 0.05, 0.05

Training on its own rollouts (not teacher-forced one-step targets) is what makes the loss see the compounding
error the seed describes. The VQ-VAE comes from `phase.init_from` (a reconstruction checkpoint) and is frozen
by default; `recon_weight > 0` adds the reconstruction loss of every frame of the window, which is the
seed's phase 3 objective L_recon + lambda * L_pred (see comprehensive.py).
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from physworld.metrics.frames import FrameMetrics
from physworld.models.convgru import LatentDynamics
from physworld.phases.base import WorldModelPhase

STAGES = ("val", "test")
EVAL_TERMS = ("loss", "pred_latent_mse", "pred_frame_mse", "recon_l1")


def build_dynamics(model: dict) -> LatentDynamics:
    dyn = model["dynamics"]
    return LatentDynamics(
        latent_channels=model["vq"]["code_dim"],
        hidden_channels=dyn["hidden_channels"],
        num_layers=dyn["num_layers"],
        kernel_size=dyn["kernel_size"],
        action_dim=dyn["action_dim"],
        residual=dyn["residual"],
    )


def weighted_latent_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pred, target (B, K, C, H, W), weights (K,) -> sum_k w_k * mean over (B, C, H, W) of the squared error."""
    per_step = (pred - target).pow(2).mean(dim=(0, 2, 3, 4))  # (K,)
    return (weights.to(per_step) * per_step).sum()


class PredictionPhase(WorldModelPhase):
    def __init__(self, model: dict, phase: dict, dataset_names: list[str] | None = None):
        super().__init__(model, phase, dataset_names)
        self.dynamics = build_dynamics(model)
        self.register_buffer("loss_weights", torch.tensor(phase["loss_weights"], dtype=torch.float32))
        # Running means per evaluation stage and dataset (dataset=all: one val/test loader per member).
        self.eval_terms = nn.ModuleDict(
            {
                s: nn.ModuleDict(
                    {n: nn.ModuleDict({t: MeanMetric() for t in EVAL_TERMS}) for n in self.dataset_names}
                )
                for s in STAGES
            }
        )
        self.frame_metrics = nn.ModuleDict(
            {s: nn.ModuleDict({n: FrameMetrics() for n in self.dataset_names}) for s in STAGES}
        )
        if self.frozen:
            self.vqvae.requires_grad_(False)

    @property
    def frozen(self) -> bool:
        return bool(self.hparams.phase["freeze_vqvae"])

    @property
    def context_frames(self) -> int:
        return int(self.hparams.phase["context_frames"])

    @property
    def horizon(self) -> int:
        return len(self.hparams.phase["loss_weights"])

    def forward(self, frames: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """frames (B, T, 3, H, W) in [0, 1], actions (B, T, A) -> the loss terms and the tensors behind them."""
        b, t = frames.shape[:2]
        phase, c, k = self.hparams.phase, self.context_frames, self.horizon
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            latents, indices, vq_loss = self.vqvae.encode(frames.flatten(0, 1))  # (B*T, C, h, w)
        latents = latents.unflatten(0, (b, t))  # (B, T, C, h, w)
        pred = self.dynamics.rollout(latents[:, :c], actions, horizon=k)  # (B, K, C, h, w)
        target = latents[:, c : c + k].detach()
        latent_mse = weighted_latent_mse(pred, target, self.loss_weights)
        l2 = sum(p.pow(2).sum() for name, p in self.dynamics.named_parameters() if name.endswith("weight"))
        loss = phase["pred_weight"] * latent_mse + phase["dynamics_l2"] * l2
        out = {"pred_latent_mse": latent_mse, "dynamics_l2": l2, "indices": indices}
        # Frame-space error of the decoded predictions (a training signal only through recon, never here).
        with torch.no_grad():
            pred_frames = self.vqvae.decode(pred.flatten(0, 1)).unflatten(0, (b, k))
            out["pred_frame_mse"] = (pred_frames.clamp(0, 1) - frames[:, c : c + k]).pow(2).mean()
            out["pred_frames"] = pred_frames
        if phase["recon_weight"] > 0:
            recon = self.vqvae.decode(latents.flatten(0, 1))
            target_frames = frames.flatten(0, 1)
            out["recon_l1"] = (recon - target_frames).abs().mean()
            out["recon_mse"] = (recon - target_frames).pow(2).mean()
            out["vq_loss"] = vq_loss
            recon_loss = (
                out["recon_l1"] + phase["mse_weight"] * out["recon_mse"] + phase["vq_weight"] * vq_loss
            )
            loss = loss + phase["recon_weight"] * recon_loss
            out["recon"], out["target"] = recon, target_frames
        out["loss"] = loss
        return out

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch["frames"], batch["actions"])
        self.log("train/loss", out["loss"], prog_bar=True)
        self.log_dict(
            {
                f"train/{k}": out[k]
                for k in ("pred_latent_mse", "pred_frame_mse", "recon_l1", "vq_loss")
                if k in out
            }
        )
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step("val", batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        return self._eval_step("test", batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.vqvae.eval()  # a frozen VQ-VAE must not re-initialise or restart codes
        return self

    # ------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(self, frames: torch.Tensor, actions: torch.Tensor, context_frames: int, horizon: int) -> dict:
        """Open-loop rollout for evaluation: frames (B, >= c + K, 3, H, W), actions (B, >= c + K, A) ->
        pred_frames (B, K, 3, H, W) (decoded, not clamped), pred_latents and true_latents (B, K, C, h, w),
        last_latent (B, C, h, w): the latent of the last context frame (the copy-last baseline)."""
        b, c, k = frames.shape[0], context_frames, horizon
        latents = self.vqvae.encode(frames[:, : c + k].flatten(0, 1))[0].unflatten(0, (b, c + k))
        pred = self.dynamics.rollout(latents[:, :c], actions, horizon=k)
        pred_frames = self.vqvae.decode(pred.flatten(0, 1)).unflatten(0, (b, k))
        return {
            "pred_frames": pred_frames,
            "pred_latents": pred,
            "true_latents": latents[:, c:],
            "last_latent": latents[:, c - 1],
        }

    def _eval_step(self, stage: str, batch: dict, dataloader_idx: int) -> dict:
        frames = batch["frames"]
        out = self(frames, batch["actions"])
        terms = self.eval_terms[stage][self.dataset_names[dataloader_idx]]
        n = frames.shape[0]
        for key, metric in terms.items():
            if key in out:
                metric.update(out[key].detach(), weight=n)
        if "recon" in out:
            self.frame_metrics[stage][self.dataset_names[dataloader_idx]].update(out["recon"], out["target"])
        # The image-grid callback shows the last predicted frame of the window against the truth.
        last = self.context_frames + self.horizon - 1
        return {"inputs": frames[:16, last].detach(), "outputs": out["pred_frames"][:16, -1].detach()}

    def _log_epoch_metrics(self, stage: str) -> None:
        totals: dict[str, list[torch.Tensor]] = {}
        for name, terms in self.eval_terms[stage].items():
            for key, metric in terms.items():
                if not metric.update_called:
                    continue
                value = metric.compute()
                totals.setdefault(key, []).append(value)
                if len(self.dataset_names) > 1:
                    self.log(f"{stage}/{key}/{name}", value)
                metric.reset()
        for key, values in totals.items():
            # Mean over datasets: every dataset counts the same, whatever its size.
            self.log(f"{stage}/{key}", torch.stack(values).mean(), prog_bar=key == "loss")
        recon: dict[str, list[torch.Tensor]] = {}
        for name, metrics in self.frame_metrics[stage].items():
            if not metrics.psnr.update_called:
                continue
            for key, value in metrics.compute().items():
                recon.setdefault(key, []).append(value)
                if len(self.dataset_names) > 1:
                    self.log(f"{stage}/recon_{key}/{name}", value)
            metrics.reset()
        for key, values in recon.items():
            self.log(f"{stage}/recon_{key}", torch.stack(values).mean())
