"""The evaluation figures (the seed's list, from real scores): reconstruction grids, dataset previews,
physics rollouts, the autoregressive rollout, error and position error against the horizon, rollout GIFs.

Frames are laid out by the project's `image_grid` and the rollout GIF and error plot are the callback's own
(`callbacks/rollout.py`); this module adds row and column labels and picks what goes in each figure.
Every function returns {file name: caption} for the files it wrote, in reading order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from physworld.callbacks.image_grid import image_grid
from physworld.callbacks.rollout import error_vs_horizon_plot, write_rollout_gif
from physworld.evaluation.plotting import pyplot
from physworld.evaluation.scoring import DatasetScores


def labelled_grid(
    rows: list[tuple[str, torch.Tensor]], path: Path, title: str = "", columns: list[str] | None = None
) -> None:
    """rows: (label, frames (N, 3, H, W) in [0, 1]) -> one labelled image of frames, a row per entry.
    Shorter rows are padded with white frames; `columns` labels the frames of the longest row."""
    width = max(frames.shape[0] for _, frames in rows)
    padded = [
        torch.cat([frames, frames.new_ones(width - frames.shape[0], *frames.shape[1:])]) for _, frames in rows
    ]
    grid = image_grid(padded, scale=1)  # (rows*(H+2), width*(W+2), 3), 1-px white borders
    cell_h, cell_w = grid.shape[0] / len(rows), grid.shape[1] / width
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.4 + grid.shape[1] / 48, 0.5 + grid.shape[0] / 48))
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks((np.arange(len(rows)) + 0.5) * cell_h, [label for label, _ in rows], fontsize=8)
    if columns:
        ax.set_xticks((np.arange(len(columns)) + 0.5) * cell_w, columns, fontsize=7)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9, pad=14 if columns else 6)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # "tight": long row labels stay inside the image
    plt.close(fig)


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
        position_plot(rolled, out / "position_error_vs_horizon.png")
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


def position_plot(scores: dict[str, DatasetScores], path: Path) -> None:
    plt = pyplot()
    fig, (ax, found) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    styles = {
        "model": ("-o", "model"),
        "copy_last": ("--", "copy-last"),
        "const_vel": ("-.", "const. velocity"),
        "tokenizer": (":", "tokenizer floor"),
        "truth": ("-", "estimator floor"),
    }
    for i, (name, s) in enumerate(scores.items()):
        if "pos_err" not in s.rollout["model"]:
            continue
        colour = plt.cm.tab10(i % 10)
        steps = np.arange(1, len(s.rollout["model"]["pos_err"]) + 1)
        for key, (style, label) in styles.items():
            if "pos_err" in s.rollout.get(key, {}):
                lw = 0.6 if key == "truth" else 1.5
                ax.plot(
                    steps,
                    s.rollout[key]["pos_err"],
                    style,
                    color=colour,
                    ms=3,
                    lw=lw,
                    label=f"{name} {label}",
                )
        found.plot(steps, s.rollout["model"]["pos_found"], "-o", color=colour, ms=3, label=name)
    ax.set(xlabel="horizon (frames)", ylabel="position error (pixels)", title="Physics position error")
    ax.legend(fontsize=5, ncol=2 if len(scores) > 3 else 1)
    found.set(xlabel="horizon (frames)", ylabel="objects found", ylim=(0, 1.05), title="Found in prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
