"""Where a trained agent's gradient points: the predicted rewards' part against the critic's, at zero actions
and at the policy's own (physworld.evaluation.agent_gradient; docs/results.md, "The agent's collapse"):

    python scripts/rl_gradient_split.py <run of phase=rl>/checkpoints/last.ckpt [--split data/demo/goal_reach/val]
"""

from __future__ import annotations

import argparse
import sys

from physworld.errors import PhysworldError, print_error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint of a phase=rl run")
    parser.add_argument(
        "--split", default="data/demo/goal_reach/val", help="a goal_reach split (default: the demo's val)"
    )
    parser.add_argument("--windows", type=int, default=64, help="windows from the start of the split (64)")
    args = parser.parse_args()
    if args.windows < 1:
        return print_error(ValueError(f"--windows={args.windows}: accepted a positive number of windows"))
    try:
        from physworld.data.cache import load_split
        from physworld.evaluation.agent_gradient import gradient_split, load_agent, markdown

        phase = load_agent(args.checkpoint)
        split = load_split(args.split)
        print(markdown(gradient_split(phase, split, args.windows)))
    except PhysworldError as err:
        return print_error(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
