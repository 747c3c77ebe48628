"""Print a run's or an evaluation's rollout scores as a markdown table, one row per horizon, the model beside
its baselines (copy-last, constant velocity, the tokenizer floor):

    python scripts/rollout_table.py <metrics.json> [--stage test] [--dataset NAME] [--horizons 1 2 5 10]

Reads `<stage>/<prefix>_<metric>[/<dataset>]/tNN` keys (the mean over datasets without --dataset), as the
rollout callback and scripts/evaluate.py write them; a cell is empty where a dataset has no such metric.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
)


def table(metrics: dict[str, float], stage: str, dataset: str | None, horizons: list[int] | None) -> str:
    where = f"/{dataset}" if dataset else ""
    prefix = f"{stage}/rollout_mse{where}/t"
    steps = sorted(int(k[len(prefix) :]) for k in metrics if k.startswith(prefix))
    if not steps:
        raise SystemExit(
            f"rollout_table: no {prefix}NN keys in the metrics: accepted a rollout's metrics.json"
        )
    rows = ["| horizon | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for t in horizons or steps:
        cells = []
        for key, _, digits in COLUMNS:
            value = metrics.get(f"{stage}/{key}{where}/t{t:02d}")
            cells.append("" if value is None else f"{value:.{digits}f}")
        rows.append(f"| t{t:02d} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, help="a metrics.json of a training run or an evaluation")
    parser.add_argument("--stage", default="test", help="the key prefix: test (default) or val")
    parser.add_argument(
        "--dataset", default=None, help="one dataset's keys (default: the mean over datasets)"
    )
    parser.add_argument("--horizons", type=int, nargs="*", default=None, help="the rows (default: every one)")
    args = parser.parse_args()
    try:
        metrics = json.loads(args.metrics.read_text())
    except (OSError, ValueError) as err:
        print(f"rollout_table: error: {args.metrics}: not a readable metrics.json ({err})", file=sys.stderr)
        sys.exit(2)
    print(table(metrics, args.stage, args.dataset, args.horizons))


if __name__ == "__main__":
    main()
