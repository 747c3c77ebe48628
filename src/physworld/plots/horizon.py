"""Rollout scores against the horizon, one colour per dataset, the model beside its baselines.

Both plots take {dataset: {predictor: {metric: (K,)}}}, the per-dataset scores of metrics.rollout's
RolloutScorer.compute(), as the rollout callback and evaluation both have them. The error plot marks, per dataset,
the horizon at which the model stops beating copy-last (metrics.rollout.crossover_horizon) with a thin vertical line:
over a long rollout (evaluation.split=long_test evaluation.horizon=50) it shows how errors grow and where the model's
advantage ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from physworld.metrics.rollout import crossover_horizon
from physworld.plots import pyplot

PLOT_STYLES = {  # predictor -> line style and label, in every plot against the horizon
    "model": ("-o", "model"),
    "copy_last": ("--", "copy-last"),
    "const_vel": ("-.", "const. velocity"),
    "tokenizer": (":", "tokenizer floor"),
}
TRUTH_STYLE = ("-", "estimator floor")  # the position estimator on the true frames (position plot only)
CROSSOVER_PANELS = ("mse", "pos_err")  # panels marked where the model stops beating copy-last


def error_vs_horizon_plot(results: dict, path: Path, title: str = "") -> None:
    """Frame MSE, object position error and sharpness against the horizon, per dataset: the model solid,
    copy-last dashed, constant velocity dash-dotted, the tokenizer floor dotted; a thin vertical line where the
    model's MSE (position error) is first no longer below copy-last's."""
    plt = pyplot()
    panels = (
        ("mse", "frame MSE (per pixel)"),
        ("pos_err", "position error (pixels)"),
        ("sharpness", "sharpness"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i, (name, scores) in enumerate(results.items()):
        colour = plt.cm.tab10(i % 10)
        for ax, (metric, _) in zip(axes, panels):
            for predictor, (style, label) in PLOT_STYLES.items():
                steps = scores.get(predictor, {}).get(metric)
                if steps is None or not torch.isfinite(steps).any():
                    continue
                x = np.arange(1, len(steps) + 1)
                ax.plot(
                    x,
                    steps.cpu(),
                    style,
                    color=colour,
                    ms=3,
                    alpha=1 if predictor == "model" else 0.7,
                    label=f"{name} {label}",
                )
            model, copy = scores.get("model", {}).get(metric), scores.get("copy_last", {}).get(metric)
            if metric in CROSSOVER_PANELS and model is not None and copy is not None:
                t = crossover_horizon(model.cpu(), copy.cpu())
                if isinstance(t, int):
                    ax.axvline(t, color=colour, lw=0.8, ls=(0, (1, 2)))
    for ax, (_, label) in zip(axes, panels):
        ax.set(xlabel="horizon (frames)", ylabel=label)
    axes[0].set_yscale("log")
    axes[2].axhline(1.0, color="grey", lw=0.5)
    axes[1].legend(fontsize=5, ncol=2 if len(results) > 3 else 1)
    fig.suptitle(f"Rollout error vs horizon {title}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def position_plot(results: dict, path: Path) -> None:
    """Left: object position error in pixels against the horizon for every predictor and the estimator on the
    true frames (thin); right: the share of objects found in the model's prediction. Datasets without
    positions keep their colour but draw nothing."""
    plt = pyplot()
    fig, (ax, found) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    styles = {**PLOT_STYLES, "truth": TRUTH_STYLE}
    for i, (name, scores) in enumerate(results.items()):
        if "pos_err" not in scores["model"]:
            continue
        colour = plt.cm.tab10(i % 10)
        steps = np.arange(1, len(scores["model"]["pos_err"]) + 1)
        for key, (style, label) in styles.items():
            if "pos_err" in scores.get(key, {}):
                lw = 0.6 if key == "truth" else 1.5
                ax.plot(
                    steps,
                    scores[key]["pos_err"],
                    style,
                    color=colour,
                    ms=3,
                    lw=lw,
                    label=f"{name} {label}",
                )
        found.plot(steps, scores["model"]["pos_found"], "-o", color=colour, ms=3, label=name)
    ax.set(xlabel="horizon (frames)", ylabel="position error (pixels)", title="Physics position error")
    ax.legend(fontsize=5, ncol=2 if len(results) > 3 else 1)
    found.set(xlabel="horizon (frames)", ylabel="objects found", ylim=(0, 1.05), title="Found in prediction")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
