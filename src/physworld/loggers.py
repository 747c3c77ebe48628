"""The run's loggers (`logger=csv`, `logger=wandb`, `logger=tensorboard`), and what makes runs comparable on a
W&B dashboard.

- W&B is offline unless the user chose a mode (`WANDB_MODE`) or has a key (`WANDB_API_KEY`): no account and
  no network still work; `wandb sync <run dir>/wandb/offline-run-*` uploads later.
- Runs are named `<phase>-<dataset>-seed<seed>` (plus `-job<N>` in a multirun, so the jobs of a sweep tell
  apart), grouped by experiment (`experiment_name`, else the phase) and tagged by phase and dataset.
- Every logger gets the resolved config at the top level (so a dashboard filters on `phase.lr` and
  `model.vq.num_codes`), the parameter counts, and `run.*`: git commit, uncommitted changes, the command-line
  overrides and, in a multirun, the sweep folder and job number.
- Step axes: every metric is plotted against `trainer/global_step`; the monitored and optimised metrics keep
  their minimum as the run's summary (what the runs table and sweep views sort on).
- Media are written to files first (PNG, GIF) and logged by path (`log_files`), so no video dependency.
- `CSVLogger` is Lightning's, except that it keeps the rows and columns already in `metrics.csv`: Lightning's
  writer deletes the file when its folder is not empty (a resumed run lost its earlier epochs), and forgets the
  columns when a fresh copy of the logger appends, as under `trainer=ddp_spawn`, where fit and test each run in
  newly spawned processes (then failing with "dict contains fields not in fieldnames").
- `TensorBoardLogger` is Lightning's, except that every event file gets a name of its own. Lightning closes the
  writer after fit and reopens a file for test; with tensorboardX (Lightning's writer when tensorboard is not
  installed) the file name holds only the second and the host, and the file is opened with "wb", so a test that
  starts within the same second as fit ends overwrote the training curves.

Logging happens on rank zero only (Lightning's loggers are rank-zero-only), so under DDP every file and
every W&B run is written once.
"""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import hydra
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

STEP_AXIS = "trainer/global_step"  # what Lightning's WandbLogger sends with every log call
STAGES = ("train", "val", "test")


class CSVWriter(ExperimentWriter):
    """Lightning's CSV writer, starting from the header of an existing metrics.csv and appending to it (see the
    module doc)."""

    def _check_log_dir_exists(self) -> None:
        # Lightning's deletes an existing metrics.csv here: a resumed run (ckpt_path=last) would lose the rows of
        # the epochs before it. A new run never starts in an old run's folder (checks.check_new_run_dir).
        pass

    def _record_new_keys(self) -> set[str]:
        if not self.metrics_keys and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys.extend(next(csv.reader(file), []))
        return super()._record_new_keys()


class CSVLogger(LightningCSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> CSVWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = CSVWriter(log_dir=self.log_dir)
        return self._experiment


_WRITERS = itertools.count()  # numbers this process's TensorBoard writers


class TensorBoardLogger(LightningTensorBoardLogger):
    @property
    def experiment(self):
        if self._experiment is None:  # a new writer: a file name no earlier writer of this run has used
            self._kwargs["filename_suffix"] = f".{os.getpid()}.{next(_WRITERS)}"
        return super().experiment

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        # A closed writer reopens its file under its old suffix when written to again (test after fit): drop it,
        # so the next stage gets a new writer and a new name.
        self._experiment = None


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """One logger per node of `cfg.logger` that has a `_target_` (none for `logger=none`)."""
    loggers: list[Logger] = []
    for node in (cfg.get("logger") or {}).values():
        if node is None or "_target_" not in node:
            continue
        if node._target_.endswith("WandbLogger"):
            loggers.append(build_wandb(cfg, node))
        else:
            loggers.append(hydra.utils.instantiate(node))
    return loggers


def build_wandb(cfg: DictConfig, node: DictConfig) -> WandbLogger:
    if "WANDB_MODE" not in os.environ and "WANDB_API_KEY" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
    Path(node.save_dir).mkdir(parents=True, exist_ok=True)
    job = sweep_job()
    name = node.get("name")
    tags = [*cfg.get("tags", []), cfg.phase.name, cfg.dataset.name]
    if job is not None:
        name = f"{name}-job{job['job']}"
        tags.append("sweep")
    # W&B refuses duplicate tags; keep the first of each, in order.
    return hydra.utils.instantiate(node, name=name, tags=list(dict.fromkeys(map(str, tags))))


def log_run_info(loggers: Sequence[Logger], cfg: DictConfig, parameters: dict[str, int]) -> None:
    """Log the resolved config, parameter counts and run info to every logger; declare W&B's step axes."""
    params = {
        **OmegaConf.to_container(cfg, resolve=True),
        "parameters": parameters,
        "run": run_info(cfg),
    }
    for logger in loggers:
        logger.log_hyperparams(params)
        if isinstance(logger, WandbLogger):
            declare_metrics(logger, cfg)


def run_info(cfg: DictConfig) -> dict:
    """Git commit (None outside a repository), whether tracked files have uncommitted changes, the
    command-line overrides, and in a multirun the sweep folder and job number."""
    root = cfg.paths.get("root_dir") or "."
    info = {**git_state(root), "output_dir": str(cfg.paths.output_dir), "overrides": overrides()}
    job = sweep_job()
    if job is not None:
        info.update(job)
    return info


def git_state(root: str | Path) -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):  # no git, not a repository, or too slow
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def overrides() -> list[str]:
    """The command-line overrides of this job ([] when Hydra is not running, e.g. under the compose API)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(OmegaConf.select(HydraConfig.get(), "overrides.task", default=[]) or [])


def sweep_job() -> dict | None:
    """{'sweep_dir', 'job'} when this process runs one job of a Hydra multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if OmegaConf.select(hc, "mode") != RunMode.MULTIRUN:
        return None
    return {"sweep_dir": str(hc.sweep.dir), "job": int(hc.job.num)}


@rank_zero_only
def declare_metrics(logger: WandbLogger, cfg: DictConfig) -> None:
    """Step axes of every stage's metrics, and min summaries of the metrics that pick models."""
    run = logger.experiment
    run.define_metric(STEP_AXIS)
    for stage in STAGES:
        run.define_metric(f"{stage}/*", step_metric=STEP_AXIS)
    for key in dict.fromkeys([cfg.phase.monitor, cfg.get("optimized_metric")]):
        if key:  # both are "lower is better" (ModelCheckpoint mode min; the sweeps minimise)
            run.define_metric(key, step_metric=STEP_AXIS, summary="min")


@rank_zero_only
def log_files(trainer, key: str, paths: Sequence[str | Path], captions: Sequence[str] | None = None) -> None:
    """Log image files (PNG, JPEG) as W&B images and GIFs as W&B videos, at the trainer's global step, to
    every W&B logger of the trainer (a no-op without one). The files must already exist."""
    paths = [str(p) for p in paths]
    kwargs = {"caption": list(captions)} if captions else {}
    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger):
            continue
        if all(p.lower().endswith(".gif") for p in paths):
            logger.log_video(key, paths, step=trainer.global_step, **kwargs)  # format from the suffix
        else:
            logger.log_image(key, paths, step=trainer.global_step, **kwargs)


def finish_wandb(loggers: Sequence[Logger]) -> None:
    """Close the W&B run, so each job of a multirun is its own run."""
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        wandb.finish()
