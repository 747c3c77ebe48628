"""The reconstruction loss every world-model phase uses (phase 1, and L_recon inside phases 2-3).

    L_recon = L1(x, x_hat) + mse_weight * MSE(x, x_hat) + gradient_weight * GDL(x, x_hat)

the seed's L1 plus our optional terms, as weighted means over pixels. GDL is the gradient difference loss of
Mathieu et al. (2016, "Deep multi-scale video prediction beyond mean square error"): the L1 distance between
the horizontal and vertical finite differences of x_hat and of x. A pixel loss is content with an edge spread
over a few pixels (the error of a slightly blurred edge is small); GDL asks for the edge's full step between
two neighbouring pixels, which is what keeps decoded objects crisp.

With `foreground_weight` = 0 every pixel weighs the same (the seed's loss). With foreground_weight = f > 0, the
pixels where something is drawn weigh 1 + f: those farther than
FOREGROUND_THRESHOLD (largest channel difference) from the frame's median colour, i.e. from its background.
Why: the scenes' objects cover a few percent of the frame, so a plain pixel mean spends nearly all of its
weight on the uniform background, and a small VQ-VAE learns to draw objects as grey blobs in the average
object colour; the colour, edges and position of the objects are what the world model must keep.
"""

from __future__ import annotations

import torch

FOREGROUND_THRESHOLD = 0.1  # colour difference from the median above which a pixel is drawn on


def foreground_mask(frames: torch.Tensor) -> torch.Tensor:
    """frames (N, 3, H, W) in [0, 1] -> (N, 1, H, W) float, 1 where a pixel differs from the frame's median
    colour (per channel, over the frame) by more than FOREGROUND_THRESHOLD in some channel."""
    background = frames.flatten(2).median(dim=-1).values[..., None, None]  # (N, 3, 1, 1)
    return ((frames - background).abs().amax(1, keepdim=True) > FOREGROUND_THRESHOLD).to(frames.dtype)


def reconstruction_losses(
    recon: torch.Tensor, target: torch.Tensor, foreground_weight: float = 0.0
) -> dict[str, torch.Tensor]:
    """recon, target (N, 3, H, W) -> {"l1", "mse", "gdl"}, pixel means weighted by 1 + foreground_weight *
    foreground (GDL unweighted: away from the objects both images are flat, so it is ~0 there anyway)."""
    diff = recon - target
    gdl = gradient_difference(recon, target)
    if not foreground_weight:
        return {"l1": diff.abs().mean(), "mse": diff.pow(2).mean(), "gdl": gdl}
    with torch.no_grad():
        weight = 1.0 + foreground_weight * foreground_mask(target.float())  # (N, 1, H, W)
        weight = weight / weight.mean()  # a weighted mean: the loss keeps the scale of the plain one
    return {"l1": (weight * diff.abs()).mean(), "mse": (weight * diff.pow(2)).mean(), "gdl": gdl}


def gradient_difference(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean |d(x_hat) - d(x)| over the horizontal and vertical neighbour differences d of (N, 3, H, W) images."""
    dx = (recon[..., :, 1:] - recon[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])
    dy = (recon[..., 1:, :] - recon[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])
    return 0.5 * (dx.abs().mean() + dy.abs().mean())
