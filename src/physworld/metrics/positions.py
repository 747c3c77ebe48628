"""Object positions read off frames by colour, and the position error of predicted frames.

Frame metrics (PSNR, SSIM) reward a blurry average of where a ball might be; the position error asks where
the ball *is* in a predicted frame and how far that is from the simulator's state, in pixels.

Method (no learning; the true positions are never used to look). Every scene draws its objects in known
colours `params["object_colors"]` (N, K, 3) over a nearly uniform dark background, and anti-aliasing and
blur mix an object's colour c_k linearly with the background b. Per frame:

1. b is the per-channel median of the frame (objects cover a small part of it), or given; r = x - b;
2. the coverage of object k at a pixel is the least-squares alpha_k = <r, c_k - b> / |c_k - b|^2 clamped
   to [0, 1], and the squared residual e_k = |r - alpha_k (c_k - b)|^2 says how well colour k explains it;
3. a soft assignment p_k = softmax of -e / (2 sigma^2) over the K objects, the background (residual
   |r|^2) and grey (residual: the pixel's distance from the grey axis) shares pixels between objects by
   nearest colour and gives the grey rods, springs, ceilings and floors of the scenes to nobody. The grey
   class is off in a frame where an object colour is itself nearly grey;
4. the weight w_k = p_k relu(alpha_k - threshold)^2: the threshold drops faint noise spread over the canvas,
   the square favours confidently covered pixels over grey structures that half match a pale colour. Being
   a function of alpha, it keeps the centroid of a symmetric blob (disc, square, blurred disc) at its centre;
5. the position is the w_k-weighted centroid of the pixel centres, refined by mean shift (default): start
   at the densest 5x5 spot of w_k, take the object's size r from its area near there (pi r^2), and iterate
   the centroid under a Gaussian window of std 1.5 r about the current estimate. The window keeps out what
   the colours leave of distractors (the floor strip beside a pale resting object, a rod, a neighbour of
   nearly the same colour, noise far away); for a symmetric blob its fixed point is still the centre.
   NaN where w_k is zero everywhere.

Coordinates are those of the scenes' states (`physworld.data.render`): (x, y) in pixels, x to the right, y
downwards, and pixel (row i, column j) has its centre at (j + 0.5, i + 0.5).

Floors: the error on ground-truth frames, median / 90th percentile / 99th percentile in pixels, 64 sequences
x 10 frames at seed 0 with the configs' scene parameters (refine=True; moving_mnist refine=False). In
brackets the median / p90 after blur (3x3 mean), noise (std 0.03) and dimming (0.85 x + 0.05) together:

    bouncing_balls   0.02 / 0.05 / 0.06   (0.03 / 0.10)
    pendulum         0.04 / 0.08 / 0.40   (0.11 / 0.17)
    spring_mass      0.07 / 0.13 / 0.54   (0.12 / 0.18)
    multi_ball       0.03 / 0.05 / 0.06   (0.03 / 0.10)
    projectile       0.03 / 0.06 / 0.07   (0.03 / 0.06)
    double_pendulum  0.06 / 0.11 / 0.17   (0.13 / 0.25)
    falling_objects  0.04 / 0.13 / 0.21   (0.03 / 0.12)
    orbital          0.03 / 0.05 / 0.07   (0.03 / 0.07)
    goal_reach       0.03 / 0.09 / 0.99   (0.06 / 0.23)   the agent disc drawn over the goal ring
    moving_mnist     1.54 / 1.95 / 2.74   (1.60 / 2.27)   0.44 / 0.88 less the (1, 1) offset below

moving_mnist is the exception: its stored position is not the centroid of the ink. The bundled MNIST
digits have their intensity centroid at (14.0, 14.0) in 0-based pixel indices, i.e. 14.5 in pixel-centre
coordinates of the 28x28 patch, so the ink centroid lies at the stored position + (1.0, 1.0) +- 0.3 px
(half of it is the generator's `centre = pos + 0.5 + DIGIT / 2`, which is 0.5 px short of the box centre
pos + 1 + DIGIT / 2 that its comment describes). Digits are not blobs, so use the global centroid
(refine=False, see `GLOBAL_CENTROID_SCENES`) and compare with the estimate on the true frame,
`position_error_vs_reference`, which is 0 for a perfect prediction.

Not meaningful where colour does not tell objects apart: `wave` has no POSITIONS; moving_mnist with
`colored: false` draws every digit white (the estimates of two digits coincide at their common centroid);
two objects with nearly the same random colour (random_colors draws one channel at 1.0 and the others in
[0.35, 1]) are told apart only by mean shift starting on different blobs, which can fail in predictions.
Overlapping objects (moving_mnist digits, balls in contact for a fraction of a pixel) bias each other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric

THRESHOLD = 0.1  # coverage below this counts as background (noise in predictions)
SIGMA = 0.02  # colour scale of the assignment, RGB units in [0, 1]: small is nearest-colour
GREY_CHROMA = 0.05  # an object colour closer than this to the grey axis turns the grey class off
POWER = 2.0  # weight = coverage above the threshold, to this power
SIZE_WINDOW = 12.0  # std of the Gaussian window, pixels, in which an object's area is measured
BANDWIDTH = 1.5  # mean-shift window std, in units of the object's radius sqrt(area / pi)
MIN_BANDWIDTH = 2.0  # pixels
ITERATIONS = 8  # mean-shift steps; each shrinks the distance to the fixed point ~10x for a disc
GLOBAL_CENTROID_SCENES = ("moving_mnist",)  # scenes whose objects are not blobs: use refine=False


def object_weights(
    frames: torch.Tensor,
    colors: torch.Tensor,
    background: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """How much each pixel is each object, (N, K, H, W) >= 0: steps 1-4 of the module docstring.

    frames (N, 3, H, W) float; colors (N, K, 3); background (N, 3) or None; valid (N, K) bool or None.
    """
    x = frames.float().clamp(0.0, 1.0)
    k = colors.shape[1]
    colors = torch.as_tensor(colors, device=x.device, dtype=x.dtype)
    if background is None:
        background = x.flatten(2).median(dim=-1).values  # (N, 3)
    background = torch.as_tensor(background, device=x.device, dtype=x.dtype)
    r = x - background[:, :, None, None]  # (N, 3, H, W)
    d = colors - background[:, None, :]  # (N, K, 3) each colour's direction from the background
    dd = (d * d).sum(-1).clamp_min(1e-6)[:, :, None, None]  # (N, K, 1, 1)
    dot = torch.einsum("nchw,nkc->nkhw", r, d)  # (N, K, H, W)
    alpha = (dot / dd).clamp(0.0, 1.0)
    rr = (r * r).sum(1, keepdim=True)  # (N, 1, H, W) the background's residual
    resid = (rr - 2 * alpha * dot + alpha * alpha * dd).clamp_min(0.0)  # (N, K, H, W) |r - alpha d|^2
    grey = (x - x.mean(1, keepdim=True)).pow(2).sum(1, keepdim=True)  # (N, 1, H, W) off the grey axis
    chroma = (colors - colors.mean(-1, keepdim=True)).pow(2).sum(-1)  # (N, K)
    if valid is not None:
        resid = resid.masked_fill(~valid[:, :, None, None], float("inf"))  # absent: takes no pixels
        chroma = chroma.masked_fill(~valid, float("inf"))
    grey_on = chroma.amin(1) > GREY_CHROMA**2  # (N,)
    grey = grey.masked_fill(~grey_on[:, None, None, None], float("inf"))
    logits = -torch.cat([resid, rr, grey], dim=1) / (2 * SIGMA**2)  # (N, K + 2, H, W)
    p = logits.softmax(dim=1)[:, :k]  # (N, K, H, W)
    return p * (alpha - THRESHOLD).clamp_min(0.0) ** POWER


def pixel_centres(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(xs (W,), ys (H,)): pixel-centre coordinates, j + 0.5 and i + 0.5 as in render.py."""
    xs = torch.arange(w, device=like.device, dtype=like.dtype) + 0.5
    ys = torch.arange(h, device=like.device, dtype=like.dtype) + 0.5
    return xs, ys


def gaussian_window(centre: torch.Tensor, std, h: int, w: int) -> torch.Tensor:
    """(N, K, H, W) exp(-|p - centre|^2 / (2 std^2)) over the pixel centres p; centre (N, K, 2),
    std a float or (N, K)."""
    xs, ys = pixel_centres(h, w, centre)
    std = torch.as_tensor(std, device=centre.device, dtype=centre.dtype)
    std = std[..., None] if std.ndim else std
    gx = torch.exp(-((xs - centre[..., :1]) ** 2) / (2 * std**2))  # (N, K, W)
    gy = torch.exp(-((ys - centre[..., 1:]) ** 2) / (2 * std**2))  # (N, K, H)
    return gy[..., :, None] * gx[..., None, :]


def weighted_centroid(weight: torch.Tensor) -> torch.Tensor:
    """Centroid (N, K, 2) of weight (N, K, H, W) over the pixel centres; NaN where the weight sums to 0."""
    xs, ys = pixel_centres(*weight.shape[-2:], weight)
    total = weight.sum((-2, -1))  # (N, K)
    cx = (weight.sum(-2) * xs).sum(-1) / total  # marginal over rows, then columns
    cy = (weight.sum(-1) * ys).sum(-1) / total
    return torch.stack([cx, cy], dim=-1).masked_fill((total <= 0)[..., None], float("nan"))


def mean_shift(weight: torch.Tensor) -> torch.Tensor:
    """Step 5: (N, K, 2) positions by mean shift from the densest spot of each weight map (N, K, H, W)."""
    n, k, h, w = weight.shape
    dense = F.avg_pool2d(weight.reshape(n * k, 1, h, w), 5, stride=1, padding=2).view(n, k, h * w)
    peak = dense.argmax(-1)  # (N, K) flat index of the densest 5x5 spot
    centre = torch.stack([peak % w, peak // w], dim=-1).to(weight.dtype) + 0.5  # (N, K, 2)
    # The object's area near the peak, in pixels of full coverage (the root undoes POWER, so that a
    # blurred object counts as bigger, not as fainter).
    area = (weight ** (1 / POWER) * gaussian_window(centre, SIZE_WINDOW, h, w)).sum((-2, -1))  # (N, K)
    std = (BANDWIDTH * (area / torch.pi).sqrt()).clamp_min(MIN_BANDWIDTH)  # (N, K)
    for _ in range(ITERATIONS):
        centre = weighted_centroid(weight * gaussian_window(centre, std, h, w))
    return centre


def estimate_positions(
    frames: torch.Tensor,
    colors: torch.Tensor,
    background: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    refine: bool = True,
) -> torch.Tensor:
    """Positions (N, K, 2) float, (x, y) in pixels, of each object colour in each frame.

    frames (N, 3, H, W) float, [0, 1] (clamped); colors (N, K, 3) in [0, 1]; background (N, 3), optional
    (default: the per-channel median of each frame); valid (N, K) bool, optional: False for objects that
    are not in the frame, which take no pixels from the others and come back NaN. refine: mean shift
    (step 5) rather than the global centroid; refine=False for the scenes in GLOBAL_CENTROID_SCENES.
    NaN where an object has no pixels.
    """
    if valid is not None:
        valid = torch.as_tensor(valid, device=frames.device, dtype=torch.bool)
    weight = object_weights(frames, colors, background, valid)  # (N, K, H, W)
    pos = mean_shift(weight) if refine else weighted_centroid(weight)
    if valid is not None:
        pos = pos.masked_fill(~valid[..., None], float("nan"))
    return pos


def true_positions(states, positions_idx, num_objects: int | None = None):
    """Object centres (..., K, 2) from states (..., S), numpy or torch, with a scene's POSITIONS.

    num_objects keeps the first K objects: a scene may have more POSITIONS slots than colours (moving_mnist
    with num_digits < MAX_DIGITS).
    """
    idx = np.asarray(positions_idx, dtype=np.int64).reshape(-1, 2)[:num_objects]  # (K, 2)
    if isinstance(states, torch.Tensor):
        return states[..., torch.as_tensor(idx, device=states.device)]
    return np.asarray(states)[..., idx]


def position_error(
    pred_frames: torch.Tensor,
    true_positions: torch.Tensor,
    colors: torch.Tensor,
    valid: torch.Tensor | None = None,
    refine: bool = True,
) -> torch.Tensor:
    """Euclidean distance (N, K), pixels, between the estimated and the true object centres.

    pred_frames (N, 3, H, W); true_positions (N, K, 2); colors (N, K, 3); valid (N, K) bool, optional
    (default: where the true position is finite). NaN where the object is absent (not valid), and where it
    is valid but not found in the frame: count those apart, found = valid & ~isnan(error).
    """
    true = torch.as_tensor(true_positions, device=pred_frames.device, dtype=torch.float32)
    if true.shape[-2] != colors.shape[-2]:
        raise ValueError(
            f"{true.shape[-2]} true positions for {colors.shape[-2]} colours: "
            "use true_positions(states, POSITIONS, num_objects=colors.shape[1])"
        )
    if valid is None:
        valid = torch.isfinite(true).all(-1)
    valid = torch.as_tensor(valid, device=pred_frames.device, dtype=torch.bool)
    est = estimate_positions(pred_frames, colors, valid=valid, refine=refine)
    return (est - true).norm(dim=-1)


def position_error_vs_reference(
    pred_frames: torch.Tensor,
    true_frames: torch.Tensor,
    colors: torch.Tensor,
    valid: torch.Tensor | None = None,
    refine: bool = True,
) -> torch.Tensor:
    """Distance (N, K), pixels, between the estimates on predicted and on ground-truth frames.

    For scenes whose stored position is not the centroid of what is drawn (moving_mnist, see the module
    docstring) this compares the prediction with what the estimator reads from the true frame; it is 0 for a
    perfect prediction. NaN where an object is not valid or not found in either frame.
    """
    reference = estimate_positions(true_frames, colors, valid=valid, refine=refine)
    found = torch.isfinite(reference).all(-1)  # (N, K)
    return position_error(pred_frames, reference, colors, valid=found, refine=refine)


class PositionError(Metric):
    """Running mean position error (pixels) of the objects found, and the fraction of valid objects found.

    update(pred_frames, true_positions, colors, valid=None) with the arguments of `position_error`;
    compute() -> {"pos_err": mean pixels, "pos_found": fraction in [0, 1]}.
    """

    def __init__(self, refine: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.refine = refine
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("found", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("expected", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_frames, true_positions, colors, valid=None) -> None:
        true = torch.as_tensor(true_positions, device=pred_frames.device, dtype=torch.float32)
        if valid is None:
            valid = torch.isfinite(true).all(-1)
        error = position_error(pred_frames.detach(), true, colors, valid, refine=self.refine)  # (N, K)
        found = torch.isfinite(error)
        self.error_sum += error[found].double().sum()
        self.found += found.sum()
        self.expected += torch.as_tensor(valid, device=found.device).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "pos_err": (self.error_sum / self.found).float(),  # NaN when nothing was found
            "pos_found": self.found.float() / self.expected.clamp_min(1).float(),
        }
