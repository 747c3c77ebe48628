"""Phase 2 of the seed: learn the latent dynamics (ConvGRU) on top of a trained VQ-VAE.

Each window of `seq_len` frames is encoded to latents z_0 .. z_{T-1}. The dynamics warms up on the first
`context_frames` latents, then rolls forward on its own predictions for the remaining K = len(loss_weights)
frames, and is trained with the seed's multi-step weighted latent MSE (its Failure 3 fix) plus an L2 penalty
on the ConvGRU weights:

    L_pred = sum_k w_k * ||sg[z_{c+k}] - z_hat_{c+k}||^2 + l2 * sum ||W_dyn||^2,   w = 0.5, 0.3, 0.1, 0.05, 0.05

With `model.dynamics.output=tokens` the dynamics predicts the code of every cell of the next latent instead,
and the latent term is the same weighted sum of cross-entropies against the codes of the true future frames:

    L_pred = sum_k w_k * CE(logits_{c+k}, k*_{c+k}) + l2 * sum ||W_dyn||^2

Training on its own rollouts (not teacher-forced one-step targets) is what makes the loss see the compounding
error the seed describes. The VQ-VAE comes from `phase.init_from` (a reconstruction checkpoint) and is frozen
by default; `recon_weight > 0` adds the reconstruction loss of every frame of the window, which is the
seed's phase 3 objective L_recon + lambda * L_pred: `phase=comprehensive` is this class with those settings
(configs/phase/comprehensive.yaml), run on `dataset=all`. With the VQ-VAE frozen, the
training windows may come as codes from the token cache (data/tokens.py) instead of frames: the encoder
then does not run at all in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from physworld.metrics.frames import FrameMetrics
from physworld.models.build import build_dynamics, build_frame_head
from physworld.phases.base import WorldModelPhase
from physworld.phases.losses import (
    flow_smoothness,
    photometric_loss,
    reconstruction_loss,
    reconstruction_losses,
)

STAGES = ("val", "test")
EVAL_TERMS = ("loss", "pred_latent_mse", "pred_token_ce", "pred_token_acc", "pred_frame_mse", "recon_l1")
TRAIN_TERMS = (
    "pred_latent_mse",
    "pred_token_ce",
    "pred_token_acc",
    "pred_zhat_mse",
    "pred_frame_loss",
    "pred_frame_mse",
    "pred_photo",
    "pred_photo_worst",
    "pred_photo_dynamics",
    "flow_smoothness",
    "recon_l1",
    "vq_loss",
)


def weighted_latent_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pred, target (B, K, C, H, W), weights (K,) -> sum_k w_k * mean over (B, C, H, W) of the squared error."""
    per_step = (pred - target).pow(2).mean(dim=(0, 2, 3, 4))  # (K,)
    return (weights.to(per_step) * per_step).sum()


def weighted_frame_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pred, target frames (B, K, 3, H, W), weights (K,) -> sum_k w_k * (L1 + GDL) of step k (phases/losses.py)."""
    per_step = torch.stack(
        [
            sum(reconstruction_losses(pred[:, i], target[:, i])[key] for key in ("l1", "gdl"))
            for i in range(pred.shape[1])
        ]
    )
    return (weights.to(per_step) * per_step).sum()


def weighted_token_ce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """logits (B, K, G * codes, H, W), target codes (B, K, G, H, W) as the quantiser's global row numbers
    (group g's codes are g * codes .. g * codes + codes - 1), weights (K,) -> sum_k w_k * the cross-entropy of
    step k, averaged over (B, G, H, W)."""
    b, k, gk, h, w = logits.shape
    g = target.shape[2]
    logits = logits.float().view(b, k, g, gk // g, h, w).movedim(3, 1)  # (B, codes, K, G, H, W)
    local = target - (torch.arange(g, device=target.device) * (gk // g)).view(1, 1, g, 1, 1)
    ce = F.cross_entropy(logits, local, reduction="none")  # (B, K, G, H, W)
    return (weights.to(ce) * ce.mean(dim=(0, 2, 3, 4))).sum()


class PredictionPhase(WorldModelPhase):
    def __init__(self, model: dict, phase: dict, dataset_names: list[str] | None = None):
        super().__init__(model, phase, dataset_names)
        self.dynamics = build_dynamics(self.spec)
        # model.decoder.output=warp|composite: the frame head, trained here whether the VQ-VAE is frozen or not
        frame_head = build_frame_head(self.spec)
        if frame_head is not None:
            self.frame_head = frame_head
        self.register_buffer("loss_weights", torch.tensor(self.settings.loss_weights, dtype=torch.float32))
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
        if self.vqvae_frozen:
            self.vqvae.requires_grad_(False)
        # One window for the model summary, which runs forward on it to count the FLOPs of a prediction: the
        # context frames (B, c, 3, H, W) at 64x64 and the actions (B, c + K - 1, A) the rollout reads. A dict,
        # so that on_after_batch_transfer (which reads batch dicts) leaves it as it is.
        c, k = self.context_frames, self.horizon
        self.example_input_array = {
            "frames": torch.zeros(1, c, 3, 64, 64),
            "actions": torch.zeros(1, c + k - 1, self.spec.dynamics.action_dim),
        }

    @classmethod
    def freezes_vqvae(cls, phase: dict) -> bool:
        return bool(phase["freeze_vqvae"])

    @property
    def trains_on_frames(self) -> bool:
        """Whether the training loss needs the frames (a loss on the predicted frames), token cache or not."""
        return any(self.settings.frame_losses.values())

    @property
    def context_frames(self) -> int:
        return self.settings.context_frames

    @property
    def horizon(self) -> int:
        return len(self.settings.loss_weights)

    def forward(self, frames: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The world model's prediction: context frames (B, c, 3, H, W) in [0, 1] and actions (B, c + K - 1, A)
        -> the decoded predictions (B, K, 3, H, W) of the K = horizon frames after the context (encoder,
        dynamics rolled out on its own predictions, decoder). Token predictions are fed back by argmax, as in
        evaluation: deterministic, and it draws no random numbers (the model summary runs it before fitting)."""
        b, c, k = frames.shape[0], frames.shape[1], self.horizon
        latents = self.vqvae.encode(frames.flatten(0, 1))[0].unflatten(0, (b, c))  # (B, c, C, h, w)
        roll = self.dynamics.rollout(latents, actions, horizon=k, codebook=self.codebook, feedback="argmax")
        return self.predicted_frames(roll.latents, latents[:, -1], frames[:, -1])[0]

    def compute_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss of a batch, as the training and evaluation steps compute it. `batch`: "frames" (B, T, 3, H, W)
        float in [0, 1] (on_after_batch_transfer's output) or, from the token cache, "tokens" (B, T, G, h, w)
        codes; "actions" (B, T, A). Returns "loss" (what training minimises) and its terms, those present logged
        as train/<key> (TRAIN_TERMS) and averaged by the evaluation steps (EVAL_TERMS): "pred_latent_mse",
        "dynamics_l2"; with a token dynamics "pred_token_ce", "pred_token_acc" (and "pred_zhat_mse" with
        phase.latent_weight); with frames "pred_frame_mse" (and "pred_frame_loss" with phase.frame_weight); with
        phase.recon_weight "recon_l1", "recon_mse", "recon_gdl", "vq_loss". And the tensors behind them:
        "indices" (B, T, G, h, w); with frames "pred_frames" (B, K, 3, H, W); with recon_weight "recon" and
        "target" (B*T, 3, H, W)."""
        settings, c, k = self.settings, self.context_frames, self.horizon
        latents, indices, vq_loss = self.latents_of(batch)  # (B, T, C, h, w), (B, T, G, h, w)
        roll = self.dynamics.rollout(latents[:, :c], batch["actions"], horizon=k, codebook=self.codebook)
        pred = roll.latents  # (B, K, C, h, w)
        out = {"indices": indices}
        out["pred_latent_mse"] = weighted_latent_mse(pred, latents[:, c : c + k].detach(), self.loss_weights)
        if self.dynamics.predicts_tokens:
            target = indices[:, c : c + k]  # (B, K, G, h, w)
            out["pred_token_ce"] = weighted_token_ce(roll.logits, target, self.loss_weights)
            out["pred_token_acc"] = (roll.indices == target).float().mean()
            pred_loss = out["pred_token_ce"]
            if roll.continuous is not None and settings.latent_weight:
                # the distance head's z_hat regressed onto the true code too: a smooth signal beside the CE
                out["pred_zhat_mse"] = weighted_latent_mse(
                    roll.continuous, latents[:, c : c + k].detach(), self.loss_weights
                )
                pred_loss = pred_loss + settings.latent_weight * out["pred_zhat_mse"]
        else:
            pred_loss = out["pred_latent_mse"]
        l2 = sum(p.pow(2).sum() for name, p in self.dynamics.named_parameters() if name.endswith("weight"))
        loss = settings.pred_weight * pred_loss + settings.dynamics_l2 * l2
        out["dynamics_l2"] = l2
        frames = batch.get("frames")
        if frames is not None:
            # The predicted frames against the true ones: a loss with frame_weight (L1 + GDL, the multi-step
            # weights) or photo_weight (multi-scale photometric, every step alike) and flow_smoothness (the frame
            # head's flow), else only a metric.
            weights = settings.frame_losses
            target = frames[:, c : c + k]  # (B, K, 3, H, W)
            train_frames = torch.is_grad_enabled() and any(weights.values())
            # head_latents=encoded: in training, the losses train the frame head on the encoded future frames (no
            # gradient to the dynamics or the encoder through them), and the predictions are not drawn; in
            # evaluation every loss and metric is on the predictions
            if train_frames and settings.head_latents == "encoded":
                pred_frames = None
                drawn, flow = self.predicted_frames(
                    latents[:, c : c + k].detach(), latents[:, c - 1].detach(), frames[:, c - 1]
                )
            else:
                with torch.set_grad_enabled(train_frames):
                    pred_frames, flow = self.predicted_frames(pred, latents[:, c - 1], frames[:, c - 1])
                drawn = pred_frames  # what the losses compare with the truth
            with torch.set_grad_enabled(train_frames):
                if weights["frame_weight"]:
                    out["pred_frame_loss"] = weighted_frame_loss(drawn, target, self.loss_weights)
                    loss = loss + weights["frame_weight"] * out["pred_frame_loss"]
                if weights["photo_weight"]:
                    terms = photometric_loss(
                        drawn.flatten(0, 1),
                        target.flatten(0, 1),
                        settings.photo_scales,
                        settings.photo_worst,
                    )
                    out["pred_photo"] = terms["photo"]
                    if "photo_worst" in terms:
                        out["pred_photo_worst"] = terms["photo_worst"]
                    loss = loss + weights["photo_weight"] * out["pred_photo"]
                if weights["flow_smoothness"] and flow is not None:
                    # edges where the true frame has them: the flow lives on the predicted frame's grid
                    out["flow_smoothness"] = flow_smoothness(flow.flatten(0, 1), target.flatten(0, 1))
                    loss = loss + weights["flow_smoothness"] * out["flow_smoothness"]
                if pred_frames is None and settings.dynamics_photo:
                    # the predictions drawn by the head as it is (its weights held), so this loss trains the
                    # dynamics toward latents the head draws right, and teaches the head nothing
                    held = {name: p.detach() for name, p in self.frame_head.named_parameters()}
                    drawn_pred = torch.func.functional_call(
                        self.frame_head, held, (pred, latents[:, c - 1], frames[:, c - 1])
                    ).frames
                    out["pred_photo_dynamics"] = photometric_loss(
                        drawn_pred.flatten(0, 1),
                        target.flatten(0, 1),
                        settings.photo_scales,
                        settings.photo_worst,
                    )["photo"]
                    loss = loss + settings.dynamics_photo * out["pred_photo_dynamics"]
            if pred_frames is not None:
                out["pred_frame_mse"] = (pred_frames.detach().clamp(0, 1) - target).pow(2).mean()
                out["pred_frames"] = pred_frames.detach()
        if settings.recon_weight > 0:
            recon = self.vqvae.decode(latents.flatten(0, 1))
            target_frames = frames.flatten(0, 1)
            out.update(reconstruction_loss(recon, target_frames, vq_loss, settings))
            loss = loss + settings.recon_weight * out.pop("recon_loss")
            out["recon"], out["target"] = recon, target_frames
        out["loss"] = loss
        return out

    def latents_of(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The quantized latents (B, T, C, h, w), codes (B, T, G, h, w) and VQ loss of a batch's windows: looked
        up from the token cache's codes when the batch has them (the VQ-VAE is frozen), else encoded."""
        tokens = batch.get("tokens")
        if tokens is not None:
            indices = tokens.long()
            latents = self.vqvae.quantizer.lookup(indices.flatten(0, 1)).unflatten(0, indices.shape[:2])
            return latents, indices, latents.new_zeros(())
        frames = batch["frames"]
        b, t = frames.shape[:2]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.vqvae_frozen):
            latents, indices, vq_loss = self.vqvae.encode(frames.flatten(0, 1))  # (B*T, C, h, w)
        return latents.unflatten(0, (b, t)), indices.unflatten(0, (b, t)), vq_loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.compute_losses(batch)
        self.log("train/loss", out["loss"], prog_bar=True)
        self.log_dict({f"train/{k}": out[k] for k in TRAIN_TERMS if k in out})
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
        if self.vqvae_frozen:
            self.vqvae.eval()  # a frozen VQ-VAE must not re-initialise or restart codes
        return self

    # ------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        context_frames: int,
        horizon: int,
        encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> dict:
        """Open-loop rollout for evaluation: frames (B, >= c + K, 3, H, W), actions (B, >= c + K, A) ->
        pred_frames (B, K, 3, H, W) (decoded or warped, not clamped), pred_latents and true_latents (B, K, C, h, w),
        last_latent (B, C, h, w): the latent of the last context frame (the copy-last baseline),
        floor_frames (B, K, 3, H, W): the true future codes decoded, through the frame head where there is one
        (the tokenizer floor: what a perfect dynamics would show through this VQ-VAE and head), and the codes
        pred_indices, true_indices, last_indices.
        Token predictions are fed back by argmax: the rollout is deterministic. `encoded`: these frames' quantized
        latents (B, >= c + K, C, h, w) and codes (B, >= c + K, G, h, w) where the caller has them already (the
        evaluation encodes each split once), else they are encoded here."""
        b, c, k = frames.shape[0], context_frames, horizon
        if encoded is not None:
            latents, indices = encoded[0][:, : c + k], encoded[1][:, : c + k]
        else:
            latents, indices, _ = self.vqvae.encode(frames[:, : c + k].flatten(0, 1))
            latents, indices = latents.unflatten(0, (b, c + k)), indices.unflatten(0, (b, c + k))
        roll = self.dynamics.rollout(
            latents[:, :c], actions, horizon=k, codebook=self.codebook, feedback="argmax"
        )
        pred = roll.latents
        if roll.indices is not None:
            pred_indices = roll.indices
        else:  # the code nearest to each predicted latent, for the token accuracy
            flat = pred.permute(0, 1, 3, 4, 2).reshape(-1, pred.shape[2])
            h, w = pred.shape[-2:]
            pred_indices = self.vqvae.quantizer.nearest(flat).view(b, k, h, w, -1).permute(0, 1, 4, 2, 3)
        # through the same frame head as the predictions: the tokenizer floor moves the last real frame too
        decode = lambda z: self.predicted_frames(z, latents[:, c - 1], frames[:, c - 1])[0]  # noqa: E731
        return {
            "pred_frames": decode(pred),
            "floor_frames": decode(latents[:, c : c + k]),
            "pred_latents": pred,
            "true_latents": latents[:, c:],
            "last_latent": latents[:, c - 1],
            "pred_indices": pred_indices,
            "true_indices": indices[:, c:],
            "last_indices": indices[:, c - 1],
        }

    def _eval_step(self, stage: str, batch: dict, dataloader_idx: int) -> dict:
        frames = batch["frames"]
        out = self.compute_losses(batch)
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
        terms: dict[str, dict[str, torch.Tensor]] = {}
        for name, metrics in self.eval_terms[stage].items():
            for key, metric in metrics.items():
                if metric.update_called:
                    terms.setdefault(name, {})[key] = metric.compute()
                    metric.reset()
        self.log_dataset_means(stage, terms, prog_bar="loss")
        recon = {}
        for name, metrics in self.frame_metrics[stage].items():
            if metrics.psnr.update_called:
                recon[name] = metrics.compute()
                metrics.reset()
        self.log_dataset_means(stage, recon, prefix="recon_")
