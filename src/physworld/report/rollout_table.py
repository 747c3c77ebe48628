"""The rollout table: a run's or an evaluation's rollout scores as markdown, one row per horizon, the model beside
its baselines (copy-last, constant velocity, the tokenizer floor), its sharpness and foreground-area ratio.
Printed by scripts/rollout_table.py and at the end of a pipeline with `pipeline.table` (experiment=frame_loop).

Reads `<stage>/<prefix>_<metric>[/<dataset>]/tNN` keys (the mean over datasets without a dataset), as the
rollout callback and scripts/evaluate.py write them; a cell is empty where a dataset has no such metric.
"""

from __future__ import annotations

COLUMNS = (  # (key prefix and metric, header, decimals)
    ("rollout_mse", "MSE model", 4),
    ("baseline_copy_last_mse", "MSE copy-last", 4),
    ("tokenizer_floor_mse", "MSE tokenizer", 4),
    ("rollout_pos_err", "pos. err. model (px)", 2),
    ("baseline_copy_last_pos_err", "copy-last", 2),
    ("baseline_const_vel_pos_err", "const. vel.", 2),
    ("tokenizer_floor_pos_err", "tokenizer", 2),
    ("rollout_pos_found", "found", 2),
    ("rollout_sharpness", "sharpness model", 2),
    ("tokenizer_floor_sharpness", "sharpness tokenizer", 2),
    ("rollout_area_ratio", "area ratio model", 2),
    ("tokenizer_floor_area_ratio", "area ratio tokenizer", 2),
)


def table(metrics: dict[str, float], stage: str, dataset: str | None, horizons: list[int] | None) -> str:
    where = f"/{dataset}" if dataset else ""
    prefix = f"{stage}/rollout_mse{where}/t"
    steps = sorted(int(k[len(prefix) :]) for k in metrics if k.startswith(prefix))
    if not steps:
        raise ValueError(f"no {prefix}NN keys in the metrics: accepted a rollout's metrics.json")
    rows = ["| horizon | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for t in [t for t in horizons if t in steps] if horizons else steps:
        cells = []
        for key, _, digits in COLUMNS:
            value = metrics.get(f"{stage}/{key}{where}/t{t:02d}")
            cells.append("" if value is None else f"{value:.{digits}f}")
        rows.append(f"| t{t:02d} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
