"""Training curves of a run: one panel per metric, its train and val values against the step."""

from __future__ import annotations

import math
from pathlib import Path

from physworld.plots import pyplot

Series = dict[str, list[tuple[int, float]]]  # metric key -> [(step, value), ...]
STAGES = ("train", "val")  # test values are single points at the end: they go in the metrics tables


def plot_training_curves(series: Series, path: Path, title: str = "") -> bool:
    """One panel per metric logged as train/<name> or val/<name> (both stages in one panel); False when
    there is nothing to plot."""
    names = sorted(
        {key.split("/", 1)[1] for key in series if key.count("/") == 1 and key.split("/")[0] in STAGES}
    )
    if not names:
        return False

    plt = pyplot()
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = []
        for stage, style, colour in (("train", "-", "C0"), ("val", "-o", "C1")):
            points = series.get(f"{stage}/{name}")
            if points:
                ax.plot(*zip(*points), style, color=colour, ms=3, lw=1, label=stage)
                values += [v for _, v in points]
        positive = [v for v in values if v > 0]
        if len(positive) == len(values) and max(values) > 30 * min(values):
            ax.set_yscale("log")  # losses fall by orders of magnitude
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
