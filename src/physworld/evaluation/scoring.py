"""Scores of one dataset's held-out split: reconstruction, codebook usage, rollouts and position errors.

The metrics are the project's own (metrics/frames.py, metrics/codebook.py), and the rollouts are scored by the
same RolloutScorer (metrics/rollout.py) as in the training-time callback, so `test/rollout_mse/t03` here and in a
training run's metrics.json mean the same thing. Sequences are read whole from the stored split (not training windows):
every frame is reconstructed; each rollout encodes the first `c` frames and predicts the next `k`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from physworld.metrics.codebook import CodebookUsage
from physworld.metrics.frames import FrameMetrics
from physworld.metrics.rollout import (
    POSITION_METRICS,
    HorizonMetrics,
    RolloutScorer,
    gradient_energy,
    has_positions,
    position_errors,
)


@dataclass
class DatasetScores:
    """Everything the metrics file, the figures and the report need about one dataset."""

    name: str
    num_sequences: int
    num_frames: int
    # l1, mse, psnr, ssim (per frame, averaged), lpips (when on), sharpness, pos_err and pos_found
    recon: dict[str, float]
    codebook: dict[str, float]  # perplexity, dead_codes, used_fraction
    recon_examples: tuple[torch.Tensor, torch.Tensor]  # inputs, reconstructions (n, 3, H, W)
    preview: torch.Tensor  # (n, T', 3, H, W): the first sequences, every other frame
    context_frames: int = 0
    rollout: dict[str, dict[str, torch.Tensor]] | None = None  # predictor -> metric -> (K,) (RolloutScorer)
    examples: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # truth (n, c+K, ...), prediction
    # (n, K, ...), tokenizer floor (n, K, ...)
    notes: list[str] = field(default_factory=list)  # why a part was skipped
    extra: dict[str, float] = field(
        default_factory=dict
    )  # `metric/<dataset>/<sub>` scores beside the rollouts:
    # state probes (evaluation/probes.py) and counterfactual actions (evaluation/counterfactual.py)


def to_frames(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [0, 1] on `device`."""
    x = torch.from_numpy(np.array(array)).to(device)  # a copy: memmaps are read-only
    return x.permute(0, 1, 4, 2, 3).float().div_(255.0)


@torch.no_grad()
def score_reconstruction(
    phase, arrays: dict, params: dict, scene: str, n: int, batch_size: int, device, num_images, lpips=None
):
    """Reconstruct every frame of the first n sequences -> (frame metrics, codebook usage, examples, encoded):
    encoded holds every frame's quantized latent (n, T, C, h, w) and codes (n, T, G, h, w), on `device`, for
    the rollouts and probes of the same sequences (the split is encoded once).

    Beside L1, MSE, PSNR and SSIM (and LPIPS when `lpips`, the metric, is given), the object-level scores of
    metrics/rollout.py on the reconstructions (what the tokenizer floor of a rollout is made of): `sharpness`
    (gradient energy of the reconstructions over the frames'), and for scenes with point-like objects `pos_err`
    (pixels) and `pos_found`."""
    frames, states = arrays["frames"], arrays.get("states")
    metrics = FrameMetrics(lpips).to(device)
    usage = CodebookUsage(phase.vqvae.quantizer.total_codes).to(device)
    objects = HorizonMetrics(1, POSITION_METRICS).to(device)
    with_positions = states is not None and has_positions(scene, params)
    energy = torch.zeros(2, dtype=torch.float64)  # reconstructions, frames
    examples = None
    latents, codes = [], []
    batches = range(0, n, batch_size)
    for start in tqdm(batches, desc=f"evaluate {scene}: reconstruction", unit="batch", leave=False):
        rows = np.arange(start, min(start + batch_size, n))
        x = to_frames(frames[rows], device)  # (B, T, 3, H, W)
        flat = x.flatten(0, 1)  # (B*T, 3, H, W)
        recon, quantized, indices, _ = phase.vqvae.reconstruct(flat)
        latents.append(quantized.unflatten(0, x.shape[:2]))
        codes.append(indices.unflatten(0, x.shape[:2]))
        metrics.update(recon, flat)
        usage.update(indices)
        energy += torch.stack(
            [gradient_energy(recon[:, None]).sum(), gradient_energy(flat[:, None]).sum()]
        ).cpu()
        if with_positions:  # every frame as a one-step "rollout" of its own
            t = x.shape[1]
            colors = np.repeat(np.asarray(params["object_colors"][rows]), t, axis=0)  # (B*T, O, 3)
            errors = position_errors(
                scene,
                {"model": recon[:, None]},
                flat[:, None],
                np.asarray(states[rows]).reshape(len(rows) * t, 1, -1),
                colors,
            )
            found = torch.isfinite(errors["model"]).float().masked_fill(~errors["present"], float("nan"))
            objects.update({"pos_err": errors["model"], "pos_found": found})
        if examples is None:  # the first frame of each of the first sequences
            shown = recon.unflatten(0, x.shape[:2])[:num_images, 0]
            examples = (x[:num_images, 0].cpu(), shown.clamp(0, 1).cpu())
    recon_scores = {k: float(v) for k, v in metrics.compute().items()}
    recon_scores["sharpness"] = float(energy[0] / energy[1])
    if with_positions:
        recon_scores.update({k: float(v.reshape(-1)[0]) for k, v in objects.compute().items()})
    codebook = {k: float(v) for k, v in usage.compute().items()}
    codebook["used_fraction"] = 1.0 - codebook["dead_codes"] / usage.num_codes
    return recon_scores, codebook, examples, (torch.cat(latents), torch.cat(codes))


@torch.no_grad()
def score_rollouts(
    phase,
    arrays: dict,
    params: dict,
    scene: str,
    n: int,
    c: int,
    k: int,
    batch_size,
    device,
    lpips=None,
    encoded=None,
):
    """Roll the dynamics k steps from c context frames of the first n sequences and score every horizon
    (metrics/rollout.py; `lpips` too when the metric is given) -> ({predictor: {metric: (K,)}}, examples).
    `encoded`: score_reconstruction's latents and codes of these sequences (else each batch is encoded)."""
    frames, actions = arrays["frames"], arrays["actions"]
    scorer = RolloutScorer(scene, params, arrays.get("states"), c, k, lpips).to(device)
    examples = None
    batches = range(0, n, batch_size)
    for start in tqdm(batches, desc=f"evaluate {scene}: rollouts", unit="batch", leave=False):
        rows = np.arange(start, min(start + batch_size, n))
        x = to_frames(frames[rows, : c + k], device)  # (B, c+K, 3, H, W)
        a = torch.from_numpy(np.array(actions[rows, : c + k])).to(device)
        known = None if encoded is None else (encoded[0][rows], encoded[1][rows])
        out = phase.rollout(x, a, context_frames=c, horizon=k, encoded=known)
        scorer.update(rows, x, out)
        if examples is None:
            examples = (x.cpu(), out["pred_frames"].clamp(0, 1).cpu(), out["floor_frames"].clamp(0, 1).cpu())
    return scorer.compute(), examples
