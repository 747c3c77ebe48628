"""Multi-step rollout evaluation (the design's "callbacks handling multi-step rollout evaluation").

Every `every_n_epochs` validation epochs, and at test time, it takes the first `num_sequences` held-out
sequences of each dataset (whole stored sequences, not the training windows), encodes `context_frames`
frames, rolls the dynamics `horizon` steps forward on its own predictions, decodes, and scores every horizon
t = 1..K against the truth with physworld.metrics.rollout (the scoring evaluate.py uses too), next to the
copy-last-frame and constant-velocity baselines and the tokenizer floor:

    <stage>/rollout_<metric>/tNN                  the model
    <stage>/baseline_copy_last_<metric>/tNN       the last context frame, repeated
    <stage>/baseline_const_vel_pos_err/tNN        the true positions moved on at their last velocity
    <stage>/tokenizer_floor_<metric>/tNN          the true future codes, decoded
    <stage>/truth_pos_err/tNN                     the position estimator on the true frames (its own floor)
    <stage>/<prefix>_<metric>/<dataset>/tNN       per dataset, for PER_DATASET, when there are several

With `lpips: true` (off by default; needs torchvision's AlexNet weights, `lpips_backbone`), `lpips` is scored
too, for the model, copy-last and the tokenizer floor (physworld.metrics.lpips).
With several datasets (dataset=all) the plain keys are the mean over the datasets that have the metric.
This callback decides only when to score, what to log and which files to write. Files in `dirpath`:
`rollout_<stage>_error_vs_horizon.png` (frame MSE, position error and sharpness against the horizon, model vs
baselines per dataset), `rollout_<stage>.png` (truth above prediction, one pair of rows per dataset) and
`rollout_<stage>.gif` (truth | prediction | copy-last), drawn by physworld.plots.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from PIL import Image

from physworld.data.cache import load_params, load_split
from physworld.loggers import log_files
from physworld.metrics.lpips import build_lpips
from physworld.metrics.rollout import RolloutScorer, horizon_keys
from physworld.plots.frames import image_grid, write_rollout_gif
from physworld.plots.horizon import error_vs_horizon_plot

PER_DATASET = ("mse", "psnr", "lpips", "pos_err", "pos_found", "sharpness", "area_ratio")


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
        lpips: bool = False,
        lpips_backbone: str | None = None,
    ):
        if horizon < 1 or every_n_epochs < 1 or num_sequences < 1 or batch_size < 1:
            raise ValueError("horizon, every_n_epochs, num_sequences and batch_size must be positive")
        self.dirpath, self.horizon, self.every_n_epochs = Path(dirpath), horizon, every_n_epochs
        self.num_sequences, self.batch_size, self.context_frames = num_sequences, batch_size, context_frames
        self.num_gif_sequences = num_gif_sequences
        # the metric itself, or None; check_config has found its backbone file before this runs
        self.lpips = build_lpips(lpips, lpips_backbone, "callbacks.rollout.lpips_backbone")

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self._evaluate(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer, pl_module):
        self._evaluate(trainer, pl_module, "test")

    # ------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate(self, trainer, pl_module, stage: str) -> None:
        if not pl_module.entry.trains_dynamics or trainer.datamodule is None:
            return  # a phase that trains no dynamics (reconstruction, rl) has no rollout() to score
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
            scene = part.path.parent.name
            scorer = RolloutScorer(scene, load_params(part.path), arrays.get("states"), c, k, self.lpips)
            scorer.to(pl_module.device)
            # Each rank scores its own share of the sequences; the metric states are summed across ranks.
            chosen = np.arange(min(self.num_sequences, frames.shape[0]))[
                trainer.global_rank :: trainer.world_size
            ]
            for start in range(0, len(chosen), self.batch_size):
                rows = chosen[start : start + self.batch_size]
                x = torch.from_numpy(np.asarray(frames[rows, : c + k])).to(pl_module.device)
                x = x.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, c+K, 3, H, W)
                a = torch.from_numpy(np.asarray(actions[rows, : c + k])).to(pl_module.device)
                out = pl_module.rollout(x, a, context_frames=c, horizon=k)
                scorer.update(rows, x, out)
                if start == 0:
                    n = self.num_gif_sequences
                    examples[name] = (x[:n].cpu(), out["pred_frames"][:n].clamp(0, 1).cpu(), c)
            results[name] = scorer.compute()
        if was_training:
            pl_module.train()
        if not results:
            return
        self._log(pl_module, stage, results)
        self._write_files(trainer, stage, results, examples)

    def _log(self, pl_module, stage: str, results: dict) -> None:
        several = len(results) > 1
        collected: dict[str, list[torch.Tensor]] = {}
        for name, scores in results.items():
            for key, value in horizon_keys(stage, scores).items():
                collected.setdefault(key, []).append(value)
            if several:
                per_dataset = {
                    p: {m: v for m, v in ms.items() if m in PER_DATASET} for p, ms in scores.items()
                }
                for key, value in horizon_keys(stage, per_dataset, dataset=name).items():
                    if torch.isfinite(value):
                        pl_module.log(key, value)
        for key, values in collected.items():
            stacked = torch.stack(values)
            if torch.isfinite(stacked).any():  # datasets without positions do not count in the mean
                pl_module.log(key, stacked[torch.isfinite(stacked)].mean())

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
        log_files(trainer, f"{stage}/rollout_gif", [gif], captions=["truth | prediction | copy-last"])
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(f"{stage}/rollout_error_vs_horizon", [str(plot)], step=trainer.global_step)
                logger.log_image(
                    f"{stage}/rollout_frames",
                    [str(strip)],
                    step=trainer.global_step,
                    caption=["per dataset: truth above prediction (context frames first)"],
                )
                columns, data = rollout_table(results)
                logger.log_table(
                    f"{stage}/rollout_table", columns=columns, data=data, step=trainer.global_step
                )


TABLE_COLUMNS = (  # (predictor, metric) -> the W&B rollout table's columns
    ("model", "mse"),
    ("copy_last", "mse"),
    ("tokenizer", "mse"),
    ("model", "psnr"),
    ("copy_last", "psnr"),
    ("model", "pos_err"),
    ("copy_last", "pos_err"),
    ("const_vel", "pos_err"),
    ("tokenizer", "pos_err"),
    ("model", "pos_found"),
    ("model", "sharpness"),
    ("tokenizer", "sharpness"),
    ("model", "area_ratio"),
    ("tokenizer", "area_ratio"),
)
LPIPS_COLUMNS = (("model", "lpips"), ("copy_last", "lpips"), ("tokenizer", "lpips"))  # when it is scored


def rollout_table(results: dict) -> tuple[list[str], list[list]]:
    """{dataset: {predictor: {metric: (K,)}}} -> columns and rows (one per dataset and horizon); NaN where a
    dataset lacks a metric (wave: no positions)."""
    with_lpips = any("lpips" in scores["model"] for scores in results.values())
    shown = TABLE_COLUMNS + (LPIPS_COLUMNS if with_lpips else ())
    columns = ["dataset", "horizon", *(f"{predictor}_{metric}" for predictor, metric in shown)]
    rows = []
    for name, scores in results.items():
        for t in range(len(scores["model"]["mse"])):
            values = [scores.get(p, {}).get(m) for p, m in shown]
            rows.append([name, t + 1, *(float("nan") if v is None else float(v[t]) for v in values)])
    return columns, rows
