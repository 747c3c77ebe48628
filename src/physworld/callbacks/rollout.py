"""Multi-step rollout evaluation (the design's "callbacks handling multi-step rollout evaluation").

Every `every_n_epochs` validation epochs, and at test time, it takes the first `num_sequences` held-out
sequences of each dataset (whole stored sequences, not the training windows), encodes `context_frames`
frames, rolls the dynamics `horizon` steps forward on its own predictions, decodes, and scores every horizon
t = 1..K against the truth, next to the copy-last-frame baseline (the last context frame, repeated):

    <stage>/rollout_<metric>/tNN              the model       (metric: see physworld.metrics.rollout)
    <stage>/baseline_copy_last_<metric>/tNN   the baseline
    <stage>/rollout_<metric>/<dataset>/tNN    per dataset, for mse and psnr, when there are several
    <stage>/truth_pos_err/tNN                 the position estimator on the true frames (its own floor)

`pos_err` is the physics-aware metric: object centres estimated from the frames by colour
(physworld.metrics.positions) against the true centres in states.npy, in pixels, averaged over the objects
found (`pos_found`: the fraction of objects found at all; a blurred prediction may lose them); for datasets
whose scene declares object positions. Moving MNIST's digits are not blobs whose
centre is the stored position, so there it is the distance to the estimate on the true frame instead.

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
from physworld.data.cache import load_params, load_split
from physworld.data.scenes import SCENES
from physworld.loggers import log_files
from physworld.metrics.positions import (
    GLOBAL_CENTROID_SCENES,
    position_error,
    position_error_vs_reference,
    true_positions,
)
from physworld.metrics.rollout import FRAME_METRICS, HorizonMetrics, frame_errors, latent_errors

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
        results, examples, floors = {}, {}, {}
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
            positions = _PositionScorer.for_split(part.path, arrays)
            names = (*FRAME_METRICS, "latent_mse", *(("pos_err", "pos_found") if positions else ()))
            model, baseline = (HorizonMetrics(k, names).to(pl_module.device) for _ in range(2))
            floor = HorizonMetrics(k, ("pos_err", "pos_found")).to(pl_module.device)
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
                truth = x[:, c:]
                copy_last = x[:, c - 1 : c].expand_as(truth)
                last = out["last_latent"].unsqueeze(1).expand_as(out["true_latents"])
                scores = {"model": {}, "baseline": {}, "floor": {}}
                if positions:
                    scores = positions.score(rows, c, out["pred_frames"], truth, copy_last)
                model.update(
                    {
                        **frame_errors(out["pred_frames"], truth),
                        "latent_mse": latent_errors(out["pred_latents"], out["true_latents"]),
                        **scores["model"],
                    }
                )
                baseline.update(
                    {
                        **frame_errors(copy_last, truth),
                        "latent_mse": latent_errors(last, out["true_latents"]),
                        **scores["baseline"],
                    }
                )
                if scores["floor"]:
                    floor.update(scores["floor"])
                if start == 0:
                    n = self.num_gif_sequences
                    examples[name] = (x[:n].cpu(), out["pred_frames"][:n].clamp(0, 1).cpu(), c)
            results[name] = (model.compute(), baseline.compute())
            if positions and positions.has_floor:
                floors[name] = floor.compute()
        if was_training:
            pl_module.train()
        if not results:
            return
        self._log(pl_module, stage, results, floors)
        self._write_files(trainer, stage, results, examples)

    def _log(self, pl_module, stage: str, results: dict, floors: dict) -> None:
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
        for values in floors.values():
            for metric, per_step in values.items():
                for t, value in enumerate(per_step, start=1):
                    collected.setdefault(f"{stage}/truth_{metric}/t{t:02d}", []).append(value)
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


class _PositionScorer:
    """Object-position errors per horizon for one split whose scene declares object positions."""

    def __init__(self, scene: str, states: np.ndarray, colors: np.ndarray, index: tuple):
        self.scene, self.states, self.colors, self.index = scene, states, colors, index
        self.has_floor = scene not in GLOBAL_CENTROID_SCENES

    @classmethod
    def for_split(cls, path, arrays: dict) -> _PositionScorer | None:
        scene = path.parent.name
        index = getattr(SCENES.get(scene), "POSITIONS", ())
        if not index or "states" not in arrays:
            return None
        colors = load_params(path).get("object_colors")
        return None if colors is None else cls(scene, arrays["states"], colors, index)

    def score(self, rows, c: int, pred: torch.Tensor, truth: torch.Tensor, copy_last: torch.Tensor) -> dict:
        """pred, truth, copy_last (B, K, 3, H, W) -> {"model" | "baseline" | "floor": {"pos_err", "pos_found"}}."""
        b, k = truth.shape[:2]
        colors = torch.as_tensor(np.asarray(self.colors[rows]), dtype=torch.float32, device=truth.device)
        colors = colors[:, None].expand(-1, k, -1, -1).flatten(0, 1)  # (B*K, objects, 3)
        flat = lambda x: x.clamp(0, 1).flatten(0, 1)  # noqa: E731 (B*K, 3, H, W)

        def summary(errors: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
            """(B*K, objects) -> pos_err: mean over the found objects (NaN if none), pos_found: the fraction
            of present objects found, each (B, K)."""
            found = torch.isfinite(errors) & valid
            return {
                "pos_err": errors.nanmean(-1).unflatten(0, (b, k)),
                "pos_found": (found.sum(-1) / valid.sum(-1).clamp_min(1)).unflatten(0, (b, k)),
            }

        if not self.has_floor:  # digits: distance to the estimate on the true frame
            reference = lambda x: position_error_vs_reference(flat(x), flat(truth), colors, refine=False)  # noqa: E731
            valid = torch.isfinite(reference(truth))
            score = lambda x: summary(reference(x), valid)  # noqa: E731
            return {"model": score(pred), "baseline": score(copy_last), "floor": {}}
        states = np.asarray(self.states[rows, c : c + k])  # (B, K, S)
        true = torch.as_tensor(
            true_positions(states, self.index, num_objects=colors.shape[1]), device=truth.device
        )
        true = true.float().flatten(0, 1)  # (B*K, objects, 2)
        valid = torch.isfinite(true).all(-1)
        score = lambda x: summary(position_error(flat(x), true, colors), valid)  # noqa: E731
        return {"model": score(pred), "baseline": score(copy_last), "floor": score(truth)}
