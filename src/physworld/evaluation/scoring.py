"""Scores of one dataset's held-out split: reconstruction, codebook usage, rollouts and position errors.

The metrics are the project's own (metrics/frames.py, metrics/codebook.py, metrics/rollout.py), with the
same conventions as the training-time callbacks, so `test/rollout_mse/t03` here and in a training run's
metrics.json mean the same thing. Sequences are read whole from the stored split (not training windows):
every frame is reconstructed; each rollout encodes the first `c` frames and predicts the next `k`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from physworld.evaluation.physics import has_positions, position_errors
from physworld.metrics.codebook import CodebookUsage
from physworld.metrics.frames import FrameMetrics
from physworld.metrics.rollout import HorizonMetrics, frame_errors, latent_errors

POSITION_KEYS = ("model", "copy_last", "floor")


@dataclass
class DatasetScores:
    """Everything the metrics file, the figures and the report need about one dataset."""

    name: str
    num_sequences: int
    num_frames: int
    recon: dict[str, float]  # l1, mse, psnr, ssim (per frame, averaged)
    codebook: dict[str, float]  # perplexity, dead_codes, used_fraction
    recon_examples: tuple[torch.Tensor, torch.Tensor]  # inputs, reconstructions (n, 3, H, W)
    preview: torch.Tensor  # (n, T', 3, H, W): the first sequences, every other frame
    context_frames: int = 0
    rollout: tuple[dict, dict] | None = None  # model, copy-last baseline: metric -> (K,) tensor
    positions: dict[str, torch.Tensor] | None = None  # model, copy_last, floor, found: (K,) tensors
    examples: tuple[torch.Tensor, torch.Tensor] | None = None  # truth (n, c+K, ...), prediction (n, K, ...)
    notes: list[str] = field(default_factory=list)  # why a part was skipped


def to_frames(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [0, 1] on `device`."""
    x = torch.from_numpy(np.array(array)).to(device)  # a copy: memmaps are read-only
    return x.permute(0, 1, 4, 2, 3).float().div_(255.0)


@torch.no_grad()
def score_reconstruction(phase, frames: np.ndarray, n: int, batch_size: int, device, num_images: int):
    """Reconstruct every frame of the first n sequences -> (frame metrics, codebook usage, examples)."""
    metrics = FrameMetrics().to(device)
    usage = CodebookUsage(phase.vqvae.quantizer.num_codes).to(device)
    examples = None
    for start in range(0, n, batch_size):
        x = to_frames(frames[start : min(start + batch_size, n)], device)  # (B, T, 3, H, W)
        flat = x.flatten(0, 1)  # (B*T, 3, H, W)
        recon, indices, _ = phase.vqvae(flat)
        metrics.update(recon, flat)
        usage.update(indices)
        if examples is None:  # the first frame of each of the first sequences
            shown = recon.unflatten(0, x.shape[:2])[:num_images, 0]
            examples = (x[:num_images, 0].cpu(), shown.clamp(0, 1).cpu())
    recon_scores = {k: float(v) for k, v in metrics.compute().items()}
    codebook = {k: float(v) for k, v in usage.compute().items()}
    codebook["used_fraction"] = 1.0 - codebook["dead_codes"] / usage.num_codes
    return recon_scores, codebook, examples


@torch.no_grad()
def score_rollouts(phase, arrays: dict, params: dict, scene: str, n: int, c: int, k: int, batch_size, device):
    """Roll the dynamics k steps from c context frames of the first n sequences; score every horizon
    against the truth, beside the copy-last-frame baseline -> ((model, baseline), positions, examples)."""
    frames, actions, states = arrays["frames"], arrays["actions"], arrays["states"]
    model, baseline = HorizonMetrics(k).to(device), HorizonMetrics(k).to(device)
    with_positions = has_positions(scene, params)
    sums = {key: torch.zeros(k, dtype=torch.float64) for key in (*POSITION_KEYS, "found", "present")}
    counts = {key: torch.zeros(k, dtype=torch.float64) for key in POSITION_KEYS}
    examples = None
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        x = to_frames(frames[rows, : c + k], device)  # (B, c+K, 3, H, W)
        a = torch.from_numpy(np.array(actions[rows, : c + k])).to(device)
        out = phase.rollout(x, a, context_frames=c, horizon=k)
        truth = x[:, c:]  # (B, K, 3, H, W)
        copy_last = x[:, c - 1 : c].expand_as(truth)
        last = out["last_latent"].unsqueeze(1).expand_as(out["true_latents"])
        model.update(
            {
                **frame_errors(out["pred_frames"], truth),
                "latent_mse": latent_errors(out["pred_latents"], out["true_latents"]),
            }
        )
        baseline.update(
            {**frame_errors(copy_last, truth), "latent_mse": latent_errors(last, out["true_latents"])}
        )
        if with_positions:
            errors = position_errors(
                scene,
                {"model": out["pred_frames"].clamp(0, 1), "copy_last": copy_last},
                truth,
                states[rows, c : c + k],
                params["object_colors"][rows],
            )
            for key in POSITION_KEYS:
                if key in errors:
                    finite = torch.isfinite(errors[key])  # (B, K, O)
                    sums[key] += errors[key].nan_to_num(0.0).sum((0, 2)).double().cpu()
                    counts[key] += finite.sum((0, 2)).double().cpu()
            present = errors["present"]
            sums["found"] += (present & torch.isfinite(errors["model"])).sum((0, 2)).double().cpu()
            sums["present"] += present.sum((0, 2)).double().cpu()
        if examples is None:
            examples = (x.cpu(), out["pred_frames"].clamp(0, 1).cpu())
    positions = None
    if with_positions and sums["present"].sum() > 0:
        # Mean over the objects found; `found` says how many of those present that is.
        positions = {key: (sums[key] / counts[key]).float() for key in POSITION_KEYS if counts[key].sum() > 0}
        positions["found"] = (sums["found"] / sums["present"].clamp_min(1)).float()
    return (model.compute(), baseline.compute()), positions, examples
