"""The reconstruction loss every world-model phase uses (phase 1, and L_recon inside phases 2-3), and the
losses on predicted frames (the multi-scale photometric loss, the frame head's flow smoothness).

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
import torch.nn.functional as F

from physworld.metrics.frames import foreground_mask
from physworld.phases.settings import WorldModelSettings


def reconstruction_loss(
    recon: torch.Tensor, target: torch.Tensor, vq_loss: torch.Tensor, settings: WorldModelSettings
) -> dict[str, torch.Tensor]:
    """L_recon + vq_weight * L_vq of a world-model phase's settings: {"recon_loss": the weighted sum, and its
    terms unweighted: "recon_l1", "recon_mse", "recon_gdl", "vq_loss"}."""
    terms = reconstruction_losses(recon, target, settings.foreground_weight)
    loss = (
        terms["l1"]
        + settings.mse_weight * terms["mse"]
        + settings.gradient_weight * terms["gdl"]
        + settings.vq_weight * vq_loss
    )
    return {
        "recon_loss": loss,
        "recon_l1": terms["l1"],
        "recon_mse": terms["mse"],
        "recon_gdl": terms["gdl"],
        "vq_loss": vq_loss,
    }


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


def photometric_loss(
    pred: torch.Tensor, target: torch.Tensor, scales, worst: float
) -> dict[str, torch.Tensor]:
    """The multi-scale photometric loss of predicted frames pred, target (N, 3, H, W):

        L_photo = sum_s L1(pool_s(x_hat), pool_s(x)) + MSE(x_hat, x) + worst-pixels term

    pool_s: average pooling by s (1: the full resolution). Why the pooled copies: a bilinear warp (the frame
    head) gives its flow a gradient only within a pixel of an edge, so an object that moved further than its
    own size gets none from a full-resolution loss; pooled, the prediction and the truth overlap again and the
    loss pulls the flow toward the object. The worst-pixels term is the mean absolute error of the `worst`
    fraction of each frame's pixels (0: off): the few pixels of a small object that is missing or misplaced,
    which a mean over the whole frame drowns in background. Returns {"photo": the sum, "photo_l1_s<s>",
    "photo_mse", "photo_worst": its terms}."""
    out = {}
    for s in scales:
        s = int(s)
        p, t = (pred, target) if s == 1 else (F.avg_pool2d(pred, s), F.avg_pool2d(target, s))
        out[f"photo_l1_s{s}"] = (p - t).abs().mean()
    out["photo_mse"] = (pred - target).pow(2).mean()
    if worst > 0:
        per_pixel = (pred - target).abs().mean(1).flatten(1)  # (N, H*W)
        k = max(1, round(worst * per_pixel.shape[1]))
        out["photo_worst"] = per_pixel.topk(k, dim=1).values.mean()
    out["photo"] = sum(out.values())
    return out


def flow_smoothness(flow: torch.Tensor, image: torch.Tensor, edge_scale: float = 10.0) -> torch.Tensor:
    """Edge-aware smoothness of a backward flow (N, 2, H, W) on the grid of the image it should produce
    (N, 3, H, W), the true frame in training: the mean absolute difference of neighbouring flow vectors, each
    weighted by exp(-edge_scale * |image difference|) there, so the flow may change where that image has an edge
    (a moved object's border) and is held smooth inside an object and on the background, which keeps a warp
    from folding or tearing what it moves. (The edges of the frame being warped would sit at the object's old
    place, where the flow must not jump.)"""
    grad_x = (flow[..., :, 1:] - flow[..., :, :-1]).abs().mean(1)  # (N, H, W - 1)
    grad_y = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean(1)
    edge_x = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1)
    edge_y = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1)
    return 0.5 * (
        (grad_x * torch.exp(-edge_scale * edge_x)).mean() + (grad_y * torch.exp(-edge_scale * edge_y)).mean()
    )
