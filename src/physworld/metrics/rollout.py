"""Scoring of multi-step rollouts at every horizon, for the model and for what it is compared with: the one
scoring engine of the training-time callback (callbacks/rollout.py) and of scripts/evaluate.py.

Predictors, each scored at horizons t = 1..K after `c` context frames, and their key prefixes:
    rollout              the model's open-loop rollout (its own predictions fed back)
    baseline_copy_last   the last context frame, repeated (its latent and its codes, likewise)
    baseline_const_vel   the objects' true positions moved on at their last velocity, p_{c-1} + t (p_{c-1} - p_{c-2})
                         (the simulator's states, not frames: position error only)
    tokenizer_floor      the true future frames through the VQ-VAE (their codes, decoded): the error a perfect
                         dynamics still shows through this VQ-VAE. For token dynamics no rollout can do better;
                         a latent dynamics can in principle, as its latents need not be codebook entries
    truth                the position estimator on the true frames: its own floor (pos_err, pos_found)

Metrics (frames in [0, 1]; predictions clamped to that range; conventions as in OpenSTL's tables):
- `mse`, `mae`: per-pixel means of one frame, averaged over frames; `mse_sum`, `mae_sum`: the same errors summed
  over C x H x W per frame (OpenSTL's "MSE"/"MAE"); `rmse`: sqrt of `mse` at that horizon (the seed's "3-step
  RMSE" is `rmse` at t03); `psnr`: per frame with data_range 1, then averaged (not pooled); `ssim`: Gaussian-window
  SSIM per frame (torchmetrics' definition, physworld.metrics.frames);
- `latent_mse`: squared error of the latent against the encoded true frame; `token_acc`: the fraction of the 8x8
  cells whose code is the true frame's (for a latent dynamics, the code nearest to its predicted latent);
- `lpips` (only when the scorer is given an LPIPS metric: `evaluation.lpips`, `callbacks.rollout.lpips`): the
  learned perceptual distance of Zhang et al. (2018) per frame, AlexNet version (physworld.metrics.lpips), for the
  model, copy-last and the tokenizer floor; 0 for identical frames;
- `sharpness`: the gradient energy sum |grad x|^2 of the frames (finite differences over rows and columns), as a
  fraction of the true frames' at the same horizon (sums over every evaluated frame). A blur spreads an edge
  over more pixels and lowers it by that factor; a fading object lowers it with the square of its contrast;
  copying the truth gives 1;
- `area_ratio`: the foreground-area ratio, the number of drawn-on pixels of the frames (farther than
  FOREGROUND_THRESHOLD from the frame's median colour in some channel, physworld.metrics.frames.foreground_mask)
  as a fraction of the true frames' at the same horizon (sums over every evaluated frame). About 1 is right;
  above 1 an object smeared over more pixels or drawn twice (a ghost left at its old place), below 1 one that
  faded into the background or shrank. Colour-blind and without the simulator's states, so every scene has it;
- `pos_err`: the distance in pixels between where an object is drawn in the frame (located by its colour,
  physworld.metrics.positions) and where the simulator put it, averaged over every object found; `pos_found`:
  the fraction of the objects present that are found at all. Scenes whose stored position is not the centroid
  of what is drawn (moving_mnist's digit boxes, `REFERENCE_SCENES`) are compared with the estimate on the true
  frame instead (0 for a perfect prediction), and have no `truth` floor. Scenes without point-like objects in
  known colours (wave) have no position metrics.

`HorizonMetrics` accumulates sums and counts, so a value is the mean over every evaluated frame (or object) and
its states are summed across DDP ranks; NaN values (an object not found) are left out of their mean.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from physworld.data.scenes import SCENES
from physworld.metrics.frames import foreground_mask, psnr_per_frame, ssim_per_frame
from physworld.metrics.lpips import LPIPS
from physworld.metrics.positions import (
    GLOBAL_CENTROID_SCENES,
    estimate_positions,
    position_error,
    position_error_vs_reference,
    true_positions,
)

FRAME_METRICS = ("mse", "mae", "mse_sum", "mae_sum", "psnr", "ssim")
POSITION_METRICS = ("pos_err", "pos_found")
PREFIXES = {
    "model": "rollout",
    "copy_last": "baseline_copy_last",
    "const_vel": "baseline_const_vel",
    "tokenizer": "tokenizer_floor",
    "truth": "truth",
}
# Scenes located by the global centroid and compared with the estimate on the true frame (see the docstring).
REFERENCE_SCENES = frozenset(GLOBAL_CENTROID_SCENES)


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


def gradient_energy(frames: torch.Tensor) -> torch.Tensor:
    """frames (N, K, 3, H, W) -> sum over the frame of the squared finite differences along rows and
    columns, (N, K): the numerator and denominator of `sharpness`."""
    x = frames.detach().float().clamp(0, 1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum((-3, -2, -1))
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum((-3, -2, -1))
    return dx + dy


def foreground_area(frames: torch.Tensor) -> torch.Tensor:
    """frames (N, K, 3, H, W) -> the number of drawn-on pixels of each frame (N, K): the numerator and
    denominator of `area_ratio`."""
    x = frames.detach().float().clamp(0, 1)
    return foreground_mask(x.flatten(0, 1)).flatten(1).sum(1).reshape(x.shape[:2])


def has_positions(scene: str, params: dict) -> bool:
    """Whether the scene draws point-like objects in known colours (wave, for one, has none)."""
    return bool(getattr(SCENES.get(scene), "POSITIONS", ())) and "object_colors" in params


def position_errors(
    scene: str, frames: dict[str, torch.Tensor], truth: torch.Tensor, states: np.ndarray, colors: np.ndarray
) -> dict[str, torch.Tensor]:
    """Per-object position errors of several predictions of the same frames.

    frames: name -> predicted frames (N, K, 3, H, W); truth (N, K, 3, H, W) the true frames; states (N, K, S)
    their simulator states; colors (N, O, 3) the object colours. Returns name -> (N, K, O) distances in pixels,
    NaN where the object is absent or not found, "truth": the estimator on the true frames (not for
    REFERENCE_SCENES, where it is 0 by construction), and "present": (N, K, O) bool, the objects to be found.
    """
    n, k = truth.shape[:2]
    colors_t = torch.as_tensor(np.asarray(colors), dtype=torch.float32, device=truth.device)
    num_objects = colors_t.shape[1]
    colors_t = colors_t[:, None].expand(n, k, num_objects, 3).flatten(0, 1)  # (N*K, O, 3)
    flat = lambda x: x.detach().float().clamp(0, 1).flatten(0, 1)  # noqa: E731 (N*K, 3, H, W)
    out: dict[str, torch.Tensor] = {}
    if scene in REFERENCE_SCENES:
        for name, pred in frames.items():
            out[name] = position_error_vs_reference(flat(pred), flat(truth), colors_t, refine=False)
        present = torch.isfinite(estimate_positions(flat(truth), colors_t, refine=False)).all(-1)
    else:
        true = object_positions(scene, states, num_objects, truth.device).flatten(0, 1)  # (N*K, O, 2)
        present = torch.isfinite(true).all(-1)  # absent objects (falling_objects' empty slots) are NaN
        for name, pred in {**frames, "truth": truth}.items():
            out[name] = position_error(flat(pred), true, colors_t, valid=present)
    out["present"] = present
    return {name: value.reshape(n, k, num_objects) for name, value in out.items()}


def object_positions(scene: str, states: np.ndarray, num_objects: int, device) -> torch.Tensor:
    """The simulator's object centres (..., O, 2) of states (..., S), NaN for absent objects."""
    positions = true_positions(np.asarray(states), SCENES[scene].POSITIONS, num_objects)
    return torch.as_tensor(positions, dtype=torch.float32, device=device)


def constant_velocity_errors(scene: str, states: np.ndarray, c: int, k: int, num_objects: int, device):
    """states (N, >= c + K, S) -> (N, K, O) distances in pixels between the true positions at frames
    c .. c + K - 1 and those extrapolated from frames c - 2 and c - 1 at constant velocity."""
    p = object_positions(scene, states[:, c - 2 : c + k], num_objects, device)  # (N, 2 + K, O, 2)
    steps = torch.arange(1, k + 1, device=device, dtype=p.dtype)[None, :, None, None]  # (1, K, 1, 1)
    guess = p[:, 1:2] + steps * (p[:, 1:2] - p[:, :1])  # (N, K, O, 2)
    return (guess - p[:, 2:]).norm(dim=-1)


class HorizonMetrics(Metric):
    """Sums of per-horizon values; `compute()` -> {name: (K,) means}, with `rmse` added where `mse` is.

    update(values): name -> (N, K) per frame, or (N, K, O) per object; every finite entry counts once, NaN
    entries (an object not found) are left out of their mean.
    """

    full_state_update = False

    def __init__(self, horizon: int, names=(*FRAME_METRICS, "latent_mse"), **kwargs):
        super().__init__(**kwargs)
        self.names = tuple(names)
        shape = (len(self.names), horizon)
        self.add_state("sums", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: dict[str, torch.Tensor]) -> None:
        for i, name in enumerate(self.names):
            value = (
                values[name].double().flatten(2)
                if values[name].ndim > 2
                else values[name].double()[..., None]
            )
            finite = torch.isfinite(value)  # (N, K, O)
            self.sums[i] += torch.where(finite, value, 0.0).sum((0, 2))
            self.counts[i] += finite.sum((0, 2))

    def compute(self) -> dict[str, torch.Tensor]:
        means = self.sums / self.counts  # NaN where nothing finite was seen
        out = {name: means[i].float() for i, name in enumerate(self.names)}
        if "mse" in out:
            out["rmse"] = out["mse"].sqrt()
        return out


class RolloutScorer(torch.nn.Module):
    """Every predictor's metrics at every horizon for the rollouts of one split.

    scene: the dataset's scene name; params: its params.npz (object colours); states: its states.npy (N, T, S);
    c, k: context frames and horizon; lpips: the LPIPS metric, or None to leave `lpips` out (it is a submodule,
    so `.to(device)` moves it too). `update(rows, frames, out)` takes the rows of the split that were rolled
    out, their frames (B, >= c + K, 3, H, W) in [0, 1] and the phase's `rollout()` output; `compute()` ->
    {predictor: {metric: (K,) tensor}} (see the module docstring for both). It is a Module so that `.to(device)`
    moves its metric states.
    """

    def __init__(
        self, scene: str, params: dict, states: np.ndarray | None, c: int, k: int, lpips: LPIPS | None = None
    ):
        super().__init__()
        self.scene, self.c, self.k, self.states = scene, c, k, states
        self.lpips = lpips
        self.colors = params.get("object_colors")
        self.positions = states is not None and has_positions(scene, params)
        self.const_vel = self.positions and c >= 2
        self.truth_floor = self.positions and scene not in REFERENCE_SCENES
        pos = POSITION_METRICS if self.positions else ()
        frame = (*FRAME_METRICS, *(("lpips",) if lpips is not None else ()))
        names = {
            "model": (*frame, "latent_mse", "token_acc", "grad_energy", "fg_area", *pos),
            "copy_last": (*frame, "latent_mse", "token_acc", *pos),
            "tokenizer": (*frame, "grad_energy", "fg_area", *pos),
            "truth": ("grad_energy", "fg_area", *(pos if self.truth_floor else ())),
        }
        if self.const_vel:
            names["const_vel"] = ("pos_err",)
        self.metrics = torch.nn.ModuleDict({key: HorizonMetrics(k, value) for key, value in names.items()})

    @torch.no_grad()
    def update(self, rows: np.ndarray, frames: torch.Tensor, out: dict) -> None:
        c, k = self.c, self.k
        truth = frames[:, c : c + k]  # (B, K, 3, H, W)
        candidates = {
            "model": out["pred_frames"],
            "copy_last": frames[:, c - 1 : c].expand_as(truth),
            "tokenizer": out["floor_frames"],
        }
        values = {name: frame_errors(pred, truth) for name, pred in candidates.items()}
        if self.lpips is not None:
            n = truth.shape[0]
            true_features = self.lpips.features(truth.flatten(0, 1))  # once for the three predictors
            for name, pred in candidates.items():
                pred_features = self.lpips.features(pred.detach().float().clamp(0, 1).flatten(0, 1))
                values[name]["lpips"] = self.lpips.distance(pred_features, true_features).reshape(n, k)
        true_latents, true_indices = out["true_latents"], out["true_indices"]
        values["model"]["latent_mse"] = latent_errors(out["pred_latents"], true_latents)
        values["copy_last"]["latent_mse"] = latent_errors(
            out["last_latent"].unsqueeze(1).expand_as(true_latents), true_latents
        )
        values["model"]["token_acc"] = (out["pred_indices"] == true_indices).float().flatten(2).mean(2)
        values["copy_last"]["token_acc"] = (
            (out["last_indices"].unsqueeze(1) == true_indices).float().flatten(2).mean(2)
        )
        values["truth"] = {"grad_energy": gradient_energy(truth), "fg_area": foreground_area(truth)}
        for name in ("model", "tokenizer"):
            values[name]["grad_energy"] = gradient_energy(candidates[name])
            values[name]["fg_area"] = foreground_area(candidates[name])
        if self.positions:
            states = np.asarray(self.states[rows])  # (B, T, S)
            colors = np.asarray(self.colors[rows])  # (B, O, 3)
            errors = position_errors(self.scene, candidates, truth, states[:, c : c + k], colors)
            present = errors.pop("present")
            for name, error in errors.items():
                found = torch.isfinite(error).float().masked_fill(~present, float("nan"))
                values[name].update(pos_err=error, pos_found=found)
            if self.const_vel:
                values["const_vel"] = {
                    "pos_err": constant_velocity_errors(
                        self.scene, states, c, k, colors.shape[1], frames.device
                    )
                }
        for name, metric in self.metrics.items():
            metric.update(values[name])

    def compute(self) -> dict[str, dict[str, torch.Tensor]]:
        results = {name: metric.compute() for name, metric in self.metrics.items()}
        truth_energy = results["truth"].pop("grad_energy")
        truth_area = results["truth"].pop("fg_area")
        for name in ("model", "tokenizer"):
            results[name]["sharpness"] = results[name].pop("grad_energy") / truth_energy
            results[name]["area_ratio"] = results[name].pop("fg_area") / truth_area
        if not results["truth"]:
            del results["truth"]
        return results


def horizon_keys(stage: str, results: dict, dataset: str | None = None) -> dict[str, torch.Tensor]:
    """{predictor: {metric: (K,)}} -> flat keys `stage/<prefix>_<metric>[/<dataset>]/tNN` (one value each)."""
    where = f"/{dataset}" if dataset else ""
    return {
        f"{stage}/{PREFIXES[predictor]}_{metric}{where}/t{t:02d}": value
        for predictor, metrics in results.items()
        for metric, steps in metrics.items()
        for t, value in enumerate(steps, start=1)
    }


def crossover_horizon(model, baseline) -> int | str | None:
    """The first horizon t (1-based) at which the model's error is no longer below the baseline's (model >=
    baseline), "never" when it stays below at every scored horizon, None when no horizon has both values.
    Horizons where either value is NaN (no object found) are skipped. model, baseline: (K,) errors."""
    model = torch.as_tensor(model, dtype=torch.float64).reshape(-1)
    baseline = torch.as_tensor(baseline, dtype=torch.float64).reshape(-1)
    if model.shape != baseline.shape:
        raise ValueError(
            f"crossover_horizon: model {tuple(model.shape)} and baseline {tuple(baseline.shape)} differ"
        )
    both = torch.isfinite(model) & torch.isfinite(baseline)
    if not both.any():
        return None
    worse = both & (model >= baseline)
    return int(worse.nonzero()[0, 0]) + 1 if worse.any() else "never"
