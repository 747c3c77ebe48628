"""Does it learn physics: the generalisation gap between the in-distribution test split and the out-of-distribution
one (`ood_test`, data/cache.py), and the horizon at which the model stops beating copy-last.

Keys (metrics.json of scripts/evaluate.py; `<metric>` as in `test/<metric>/<dataset>[/tNN]`, e.g.
`rollout_pos_err`, `baseline_copy_last_mse`, `baseline_const_vel_pos_err`, `tokenizer_floor_mse`, `recon_psnr`):
    ood_gap/<metric>/<dataset>[/tNN]     ood_test value minus test value (positive: larger out of distribution)
    ood_ratio/<metric>/<dataset>[/tNN]   ood_test value over test value (left out where the test value is 0)
    ood_gap/<metric>[/tNN], ood_ratio/<metric>[/tNN]   means over the datasets that have an ood_test split
    <split>/crossover_mse/<dataset>      first horizon t at which the model's frame MSE is no longer below
                                         copy-last's, or "never" (below at every scored horizon)
    <split>/crossover_pos_err/<dataset>  the same for the object position error (scenes with positions)
"""

from __future__ import annotations

from pathlib import Path

from physworld.callbacks.metrics_file import write_metrics
from physworld.metrics.rollout import crossover_horizon

CROSSOVER_METRICS = ("mse", "pos_err")  # errors compared with copy-last's at every horizon


def gap_metrics(
    in_dist: dict[str, float], ood: dict[str, float], stage: str, ood_stage: str
) -> dict[str, float]:
    """`ood_gap/...` and `ood_ratio/...` for every key `stage/<rest>` of `in_dist` with an `ood_stage/<rest>` in
    `ood` (both flat metrics of the same datasets)."""
    out: dict[str, float] = {}
    for key, value in in_dist.items():
        rest = key.removeprefix(f"{stage}/")
        other = ood.get(f"{ood_stage}/{rest}")
        if rest == key or other is None:
            continue
        out[f"ood_gap/{rest}"] = other - value
        if value != 0:
            out[f"ood_ratio/{rest}"] = other / value
    return dict(sorted(out.items()))


def crossover_metrics(scores: dict, stage: str) -> dict[str, int | str]:
    """`stage/crossover_<metric>/<dataset>`: where the model stops beating copy-last (crossover_horizon), for every
    dataset with rollouts and that metric. scores: {dataset: DatasetScores}."""
    out: dict[str, int | str] = {}
    for name, s in scores.items():
        if s.rollout is None:
            continue
        for metric in CROSSOVER_METRICS:
            model, copy = s.rollout["model"].get(metric), s.rollout.get("copy_last", {}).get(metric)
            if model is None or copy is None:
                continue
            t = crossover_horizon(model.cpu(), copy.cpu())
            if t is not None:
                out[f"{stage}/crossover_{metric}/{name}"] = t
    return out


def write_evaluation_metrics(path: Path, metrics: dict) -> Path:
    """metrics.json: the finite numbers (as a training run's) and the crossover horizons as they are."""
    kept = {k: v for k, v in metrics.items() if k.split("/")[1].startswith("crossover_")}
    return write_metrics(path, {k: v for k, v in metrics.items() if k not in kept}, as_is=kept)
