"""Frames laid out for the eye: a grid of frames (with row and column labels, or plain) and animated GIFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from physworld.plots import pyplot


def image_grid(rows: list[torch.Tensor], scale: int = 2) -> np.ndarray:
    """rows: list of (N, 3, H, W) in [0, 1] -> uint8 (rows*H, N*W, 3) image, 1-px separators, upscaled."""
    strips = []
    for images in rows:
        images = images.detach().float().clamp(0, 1).cpu()
        padded = torch.nn.functional.pad(images, (1, 1, 1, 1), value=1.0)  # (N, 3, H+2, W+2)
        strips.append(torch.cat(list(padded), dim=2))  # (3, H+2, N*(W+2))
    grid = torch.cat(strips, dim=1).permute(1, 2, 0).numpy()  # (rows*(H+2), N*(W+2), 3)
    grid = (grid * 255 + 0.5).astype(np.uint8)
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


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


def write_gif(frames: list[np.ndarray], path: Path, duration: int) -> None:
    """uint8 (H, W, 3) frames -> an animated GIF that loops, each frame shown `duration` ms."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)


def write_rollout_gif(truth: torch.Tensor, pred: torch.Tensor, c: int, path: Path, scale: int = 2) -> None:
    """truth (N, c+K, 3, H, W), pred (N, K, 3, H, W) -> an animated GIF, one row per sequence with the
    columns truth | prediction | copy-last baseline (context frames are the truth in every column)."""
    k = pred.shape[1]
    frames = []
    for t in range(c + k):
        shown_pred = truth[:, t] if t < c else pred[:, t - c]
        shown_base = truth[:, min(t, c - 1)]
        grid = image_grid(
            [
                torch.cat([truth[i, t : t + 1], shown_pred[i : i + 1], shown_base[i : i + 1]])
                for i in range(truth.shape[0])
            ],
            scale=scale,
        )
        frames.append(grid)
    write_gif(frames, path, duration=200)
