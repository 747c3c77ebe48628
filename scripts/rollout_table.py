"""Print a run's or an evaluation's rollout scores as a markdown table, one row per horizon, the model beside
its baselines (copy-last, constant velocity, the tokenizer floor):

    python scripts/rollout_table.py <metrics.json> [--stage test] [--dataset NAME] [--horizons 1 2 5 10]

The table: physworld.report.rollout_table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from physworld.report.rollout_table import table


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
    try:
        print(table(metrics, args.stage, args.dataset, args.horizons))
    except ValueError as err:
        print(f"rollout_table: error: {args.metrics}: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
