"""Roll a trained world model out on held-out sequences and plot the truth above the prediction.

    python examples/rollout_and_plot.py <run>/checkpoints/best.ckpt --dataset goal_reach --out rollout.png

The model is a prediction, comprehensive or rl checkpoint, or a folder written by scripts/export.py. The
test split is generated first if it is missing (into data/, or --data-dir). A capped dataset
(--num-sequences, --num-frames) belongs in its own --data-dir: a folder keeps one size of each split.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")  # write the figure to a file, never open a window
import matplotlib.pyplot as plt  # noqa: E402

import physworld  # noqa: E402
from physworld.world_model import to_images  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a checkpoint (.ckpt) or an exported folder")
    parser.add_argument("--dataset", default="goal_reach", help="the dataset to roll out on (its test split)")
    parser.add_argument("--data-dir", default=None, help="where the data is kept (default: data/)")
    parser.add_argument("--num-sequences", type=int, default=None, help="cap every split (debug=tiny: 8)")
    parser.add_argument(
        "--num-frames", type=int, default=None, help="cap the sequence length (debug=tiny: 8)"
    )
    parser.add_argument("--sequences", type=int, default=3, help="sequences to plot, one pair of rows each")
    parser.add_argument("--context", type=int, default=2, help="frames the model sees before predicting")
    parser.add_argument("--horizon", type=int, default=8, help="frames predicted after the context")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--out", default="rollout.png")
    args = parser.parse_args(argv)

    wm = physworld.load_world_model(args.model, device=args.device)
    data = physworld.datasets.load(
        args.dataset, "test", args.data_dir, num_sequences=args.num_sequences, num_frames=args.num_frames
    )
    n, c = args.sequences, args.context
    k = min(args.horizon, data.frames.shape[1] - c)  # the stored sequences bound the horizon
    prediction = wm.rollout(data.frames[:n, :c], data.actions[:n], horizon=k)  # frames (n, k, 3, H, W)
    truth = data.frames[:n, c : c + k]  # uint8 (n, k, H, W, 3)
    predicted = to_images(prediction.frames)  # uint8 (n, k, H, W, 3)

    mse = ((predicted / 255.0 - truth / 255.0) ** 2).mean(axis=(0, 2, 3, 4))  # (k,) per predicted step
    print("frame MSE per step: " + ", ".join(f"t{c + i}: {m:.4f}" for i, m in enumerate(mse)))

    fig, axes = plt.subplots(2 * n, k, figsize=(1.2 * k, 2.5 * n), squeeze=False)
    for i in range(n):
        for t in range(k):
            for row, image in ((2 * i, truth[i, t]), (2 * i + 1, predicted[i, t])):
                axes[row, t].imshow(image)
                axes[row, t].set_xticks([])
                axes[row, t].set_yticks([])
            axes[2 * i, t].set_title(f"t{c + t}", fontsize=8)
        axes[2 * i, 0].set_ylabel("truth", fontsize=8)
        axes[2 * i + 1, 0].set_ylabel("model", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
