"""The evaluation figures (the seed's list, from real scores): reconstruction grids, dataset previews,
physics rollouts, the autoregressive rollout, error and position error against the horizon, rollout GIFs.

physworld.plots draws them (the labelled frame grids, the rollout GIF, the plots against the horizon, the
same as the rollout callback's); this module picks what goes in each figure, its labels and its caption.
Every function returns {file name: caption} for the files it wrote, in reading order.
"""

from __future__ import annotations

from pathlib import Path

import torch

from physworld.evaluation.scoring import DatasetScores
from physworld.plots.frames import labelled_grid, write_rollout_gif
from physworld.plots.horizon import error_vs_horizon_plot, position_plot


def reconstruction_figures(scores: dict[str, DatasetScores], out: Path) -> dict[str, str]:
    """`reconstruction_<dataset>.png` per dataset and `sharp_model_v2_result.png`, every dataset at once."""
    files = {}
    rows = []
    for name, s in scores.items():
        inputs, outputs = s.recon_examples
        pair = [(f"{name}\ninput", inputs), (f"{name}\nreconstruction", outputs)]
        rows += pair
        file = f"reconstruction_{name}.png"
        title = (
            f"{name}: input above reconstruction (PSNR {s.recon['psnr']:.2f} dB, SSIM {s.recon['ssim']:.3f})"
        )
        labelled_grid(pair, out / file, title)
        files[file] = f"{name}: test frames (top) and their VQ-VAE reconstructions (bottom)."
    labelled_grid(rows, out / "sharp_model_v2_result.png", "Inputs and reconstructions, every dataset")
    return {"sharp_model_v2_result.png": "Inputs and VQ-VAE reconstructions of every dataset.", **files}


def preview_figures(scores: dict[str, DatasetScores], out: Path) -> dict[str, str]:
    """`<dataset>_preview.png`: the first evaluated sequences, every other frame."""
    files = {}
    for name, s in scores.items():
        rows = [(f"sequence {i}", seq) for i, seq in enumerate(s.preview)]
        columns = [f"t={2 * t}" for t in range(s.preview.shape[1])]
        file = f"{name}_preview.png"
        labelled_grid(rows, out / file, f"{name}: evaluated sequences, every other frame", columns)
        files[file] = f"{name}: the first sequences of the evaluated split, every other frame."
    return files


def horizon_columns(c: int, k: int) -> list[str]:
    return [f"ctx {i + 1}" for i in range(c)] + [f"t+{t + 1}" for t in range(k)]


def rollout_figures(scores: dict[str, DatasetScores], out: Path, num_examples: int, num_gif: int):
    """Per dataset `physics_<dataset>_result.png` and `rollout_<dataset>.gif`; for all datasets
    `autoregressive_rollout.png`, `rollout_error_vs_horizon.png`, `position_error_vs_horizon.png`."""
    rolled = {name: s for name, s in scores.items() if s.rollout is not None}
    if not rolled:
        return {}
    files = {}
    strip = []
    for name, s in rolled.items():
        truth, pred, floor = s.examples
        c, k = s.context_frames, pred.shape[1]
        context = truth[:, :c]
        rows = []
        for i in range(min(num_examples, truth.shape[0])):
            rows += [
                (f"seq {i} truth", truth[i, : c + k]),
                (f"seq {i} tokenizer", torch.cat([context[i], floor[i]])),
                (f"seq {i} model", torch.cat([context[i], pred[i]])),
            ]
        file = f"physics_{name}_result.png"
        labelled_grid(
            rows,
            out / file,
            f"{name}: {c} context frames, then the truth, its codes decoded, and the model's {k}-step rollout",
            horizon_columns(c, k),
        )
        files[file] = (
            f"{name}: context frames, then per sequence the ground truth, the tokenizer floor (the true future's "
            "codes decoded: the best any dynamics can show through this VQ-VAE) and the model's open-loop rollout."
        )
        strip += [(f"{name}\ntruth", truth[0, : c + k]), (f"{name}\nmodel", torch.cat([context[0], pred[0]]))]
    c_max = max(s.context_frames for s in rolled.values())
    k_max = max(s.examples[1].shape[1] for s in rolled.values())
    labelled_grid(
        strip,
        out / "autoregressive_rollout.png",
        "Autoregressive rollouts: truth above the model's predictions fed back as inputs",
        horizon_columns(c_max, k_max),
    )
    files["autoregressive_rollout.png"] = "One sequence per dataset: truth above the multi-step prediction."
    error_vs_horizon_plot({n: s.rollout for n, s in rolled.items()}, out / "rollout_error_vs_horizon.png")
    files["rollout_error_vs_horizon.png"] = (
        "Frame MSE, object position error and sharpness against the horizon: the model (solid), copy-last "
        "(dashed), constant velocity (dash-dot, positions only) and the tokenizer floor (dotted)."
    )
    if any("pos_err" in s.rollout["model"] for s in rolled.values()):
        position_plot({n: s.rollout for n, s in rolled.items()}, out / "position_error_vs_horizon.png")
        files["position_error_vs_horizon.png"] = (
            "Object position error in pixels against the horizon: model (solid), copy-last (dashed), constant "
            "velocity (dash-dot), tokenizer floor (dotted), the estimator on true frames (thin); right: share of "
            "objects found in the prediction."
        )
    for name, s in rolled.items():
        truth, pred, _ = s.examples
        file = f"rollout_{name}.gif"
        write_rollout_gif(truth[:num_gif], pred[:num_gif], s.context_frames, out / file)
        files[file] = f"{name}: rollout GIF, columns truth | model | copy-last baseline."
    return files
