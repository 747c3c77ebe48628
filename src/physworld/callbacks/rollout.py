"""Multi-step rollout evaluation (the design's "callbacks handling multi-step rollout evaluation").

Every `every_n_epochs` validation epochs, and at test time, it takes the first `num_sequences` held-out
sequences of each dataset (whole stored sequences, not the training windows), encodes `context_frames`
frames, rolls the dynamics `horizon` steps forward on its own predictions, decodes, and scores every horizon
t = 1..K against the truth, next to the copy-last-frame baseline (the last context frame, repeated):

    <stage>/rollout_<metric>/tNN              the model       (metric: see physworld.metrics.rollout)
    <stage>/baseline_copy_last_<metric>/tNN   the baseline
    <stage>/rollout_<metric>/<dataset>/tNN    per dataset, for mse and psnr, when there are several

With several datasets (dataset=all) the plain keys are the mean over datasets. Files in `dirpath`:
`rollout_<stage>_error_vs_horizon.png` (model vs baseline per dataset), `rollout_<stage>.png` (truth above
prediction, one pair of rows per dataset) and `rollout_<stage>.gif` (truth | prediction | baseline).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from PIL import Image

from physworld.callbacks.image_grid import image_grid
from physworld.data.cache import load_split
from physworld.metrics.rollout import HorizonMetrics, frame_errors, latent_errors

PER_DATASET = ("mse", "psnr")


class RolloutEvaluation(L.Callback):
    def __init__(
        self,
        dirpath: str,
        horizon: int = 10,
        every_n_epochs: int = 1,
        num_sequences: int = 64,
        batch_size: int = 16,
        context_frames: int | None = None,
        num_gif_sequences: int = 4,
    ):
        if horizon < 1 or every_n_epochs < 1 or num_sequences < 1 or batch_size < 1:
            raise ValueError("horizon, every_n_epochs, num_sequences and batch_size must be positive")
        self.dirpath, self.horizon, self.every_n_epochs = Path(dirpath), horizon, every_n_epochs
        self.num_sequences, self.batch_size, self.context_frames = num_sequences, batch_size, context_frames
        self.num_gif_sequences = num_gif_sequences

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self._evaluate(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer, pl_module):
        self._evaluate(trainer, pl_module, "test")

    # ------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate(self, trainer, pl_module, stage: str) -> None:
        if not hasattr(pl_module, "rollout") or trainer.datamodule is None:
            return  # a phase without dynamics (reconstruction) has nothing to roll out
        c = self.context_frames or pl_module.context_frames
        was_training = pl_module.training
        pl_module.eval()
        results, examples = {}, {}
        for part in trainer.datamodule.splits[stage]:
            name = pl_module.dataset_names[part.dataset_index]
            arrays = load_split(part.path, verify=False)
            frames, actions = arrays["frames"], arrays["actions"]
            k = min(self.horizon, frames.shape[1] - c)
            if k < 1:
                rank_zero_warn(
                    f"rollout: {name} has {frames.shape[1]} frames, none left after {c} context frames"
                )
                continue
            # Each rank scores its own share of the sequences; the metric states are summed across ranks.
            chosen = np.arange(min(self.num_sequences, frames.shape[0]))[
                trainer.global_rank :: trainer.world_size
            ]
            model, baseline = (HorizonMetrics(k).to(pl_module.device) for _ in range(2))
            for start in range(0, len(chosen), self.batch_size):
                rows = chosen[start : start + self.batch_size]
                x = torch.from_numpy(np.asarray(frames[rows, : c + k])).to(pl_module.device)
                x = x.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, c+K, 3, H, W)
                a = torch.from_numpy(np.asarray(actions[rows, : c + k])).to(pl_module.device)
                out = pl_module.rollout(x, a, context_frames=c, horizon=k)
                truth = x[:, c:]
                copy_last = x[:, c - 1 : c].expand_as(truth)
                model.update(
                    {
                        **frame_errors(out["pred_frames"], truth),
                        "latent_mse": latent_errors(out["pred_latents"], out["true_latents"]),
                    }
                )
                last = out["last_latent"].unsqueeze(1).expand_as(out["true_latents"])
                baseline.update(
                    {**frame_errors(copy_last, truth), "latent_mse": latent_errors(last, out["true_latents"])}
                )
                if start == 0:
                    n = self.num_gif_sequences
                    examples[name] = (x[:n].cpu(), out["pred_frames"][:n].clamp(0, 1).cpu(), c)
            results[name] = (model.compute(), baseline.compute())
        if was_training:
            pl_module.train()
        if not results:
            return
        self._log(pl_module, stage, results)
        self._write_files(trainer, stage, results, examples)

    def _log(self, pl_module, stage: str, results: dict) -> None:
        several = len(results) > 1
        collected: dict[str, list[torch.Tensor]] = {}
        for name, (model, baseline) in results.items():
            for prefix, values in (("rollout", model), ("baseline_copy_last", baseline)):
                for metric, per_step in values.items():
                    for t, value in enumerate(per_step, start=1):
                        key = f"{stage}/{prefix}_{metric}/t{t:02d}"
                        collected.setdefault(key, []).append(value)
                        if several and metric in PER_DATASET:
                            pl_module.log(f"{stage}/{prefix}_{metric}/{name}/t{t:02d}", value)
        for key, values in collected.items():
            pl_module.log(key, torch.stack(values).mean())

    @rank_zero_only
    def _write_files(self, trainer, stage: str, results: dict, examples: dict) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        plot = self.dirpath / f"rollout_{stage}_error_vs_horizon.png"
        error_vs_horizon_plot(results, plot, title=f"{stage}, epoch {trainer.current_epoch}")
        strip = self.dirpath / f"rollout_{stage}.png"
        rows = []
        for truth, pred, c in examples.values():
            k = pred.shape[1]
            rows += [truth[0, : c + k], torch.cat([truth[0, :c], pred[0]])]
        Image.fromarray(image_grid(rows)).save(strip)
        gif = self.dirpath / f"rollout_{stage}.gif"
        truth, pred, c = next(iter(examples.values()))
        write_rollout_gif(truth, pred, c, gif)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(f"{stage}/rollout_error_vs_horizon", [str(plot)], step=trainer.global_step)
                logger.log_image(
                    f"{stage}/rollout_frames",
                    [str(strip)],
                    step=trainer.global_step,
                    caption=["per dataset: truth above prediction (context frames first)"],
                )
                columns = ["dataset", "horizon", "model_mse", "baseline_mse", "model_psnr", "baseline_psnr"]
                data = [
                    [
                        name,
                        t + 1,
                        float(m["mse"][t]),
                        float(b["mse"][t]),
                        float(m["psnr"][t]),
                        float(b["psnr"][t]),
                    ]
                    for name, (m, b) in results.items()
                    for t in range(len(m["mse"]))
                ]
                logger.log_table(
                    f"{stage}/rollout_table", columns=columns, data=data, step=trainer.global_step
                )


def error_vs_horizon_plot(results: dict, path: Path, title: str = "") -> None:
    """Frame MSE and PSNR against the horizon: solid lines the model, dashed the copy-last baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (name, (model, baseline)) in enumerate(results.items()):
        colour = plt.cm.tab10(i % 10)
        steps = np.arange(1, len(model["mse"]) + 1)
        for ax, metric in zip(axes, ("mse", "psnr")):
            ax.plot(steps, model[metric].cpu(), "-o", color=colour, ms=3, label=f"{name} model")
            ax.plot(steps, baseline[metric].cpu(), "--", color=colour, alpha=0.7, label=f"{name} copy-last")
    axes[0].set(xlabel="horizon (frames)", ylabel="frame MSE (per pixel)", yscale="log")
    axes[1].set(xlabel="horizon (frames)", ylabel="PSNR (dB)")
    axes[1].legend(fontsize=6, ncol=2 if len(results) > 3 else 1)
    fig.suptitle(f"Rollout error vs horizon {title}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        frames.append(Image.fromarray(grid))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)
