"""train(cfg): build everything from the composed config in a visible order, fit, test, return metrics."""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
from hydra.errors import InstantiationException
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from physworld import loggers as run_loggers
from physworld.callbacks.metrics_file import scalar_metrics, write_metrics
from physworld.checks import check_config, check_files
from physworld.data.datamodule import VideoDataModule
from physworld.data.plan import dataset_members, datasets_for
from physworld.errors import ConfigError, PhysworldError
from physworld.log_handlers import drop_lightning_console_handler
from physworld.phases import phase_class
from physworld.phases.checkpoints import init_model
from physworld.resolve import resolve_ckpt_path, resolve_precision


def plain(node) -> dict | list:
    """A config node as plain Python values (what the phases store as hyperparameters)."""
    return OmegaConf.to_container(node, resolve=True)


def build_datamodule(cfg: DictConfig) -> VideoDataModule:
    members = dataset_members(cfg.dataset)
    weights = cfg.dataset.get("weights")
    if weights is not None:  # a mapping name -> weight; members left out get weight 0
        weights = [float(weights.get(d.name, 0.0)) for d in members]
    return VideoDataModule(
        datasets=datasets_for(cfg),
        data_dir=cfg.paths.data_dir,
        seed=cfg.seed,
        data_seed=cfg.data.seed,
        seq_len=cfg.phase.seq_len,
        batch_size=cfg.phase.batch_size,
        stride=cfg.data.stride,
        num_workers=cfg.data.num_workers,
        pin_memory=cfg.data.pin_memory,
        persistent_workers=cfg.data.persistent_workers,
        weights=weights,
        on_device=cfg.data.on_device,
        token_cache=cfg.data.get("token_cache", False),
        verify=cfg.data.get("verify", "auto"),
    )


def build_phase(cfg: DictConfig) -> L.LightningModule:
    names = [d.name for d in dataset_members(cfg.dataset)]
    # with phase.init_from: the architecture of the networks the checkpoint holds is the checkpoint's
    model = init_model(plain(cfg.model), plain(cfg.phase))
    phase = phase_class(cfg.phase.name)(model=model, phase=plain(cfg.phase), dataset_names=names)
    return phase.use_fast_paths(plain(cfg.perf))  # perf.*: not hyperparameters, so not a constructor argument


def build_loggers(cfg: DictConfig) -> list:
    return run_loggers.build_loggers(cfg)  # W&B: offline by default, names, groups and tags (see there)


def build_callbacks(cfg: DictConfig) -> list:
    try:
        return [
            hydra.utils.instantiate(node)
            for node in (cfg.get("callbacks") or {}).values()
            if node is not None
        ]
    except InstantiationException as err:
        if isinstance(err.__cause__, PhysworldError):  # a callback's own one-line error (an unreadable file)
            raise err.__cause__ from None
        raise


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list) -> L.Trainer:
    """The trainer of `cfg.trainer`; a value Lightning refuses (trainer.devices=[0,1] on a CPU) is one line."""
    try:
        return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        detail = " ".join(str(cause).split())[:300]
        raise ConfigError(f"trainer: Lightning refuses these trainer.* values ({detail})") from None


def format_counts(counts: dict[str, int]) -> str:
    return "parameters: " + ", ".join(f"{name} {n:,}" for name, n in counts.items())


def train(cfg: DictConfig, values_checked: bool = False) -> dict[str, float]:
    """Fit and/or test the phase chosen by `phase=`; write `<run dir>/metrics.json`; return its metrics.
    values_checked: the caller ran check_config(cfg, files=False) already, so only the file checks remain."""
    if values_checked:
        check_files(cfg)
    else:
        check_config(cfg)
    drop_lightning_console_handler()  # Hydra's console handler prints Lightning's lines; its own would repeat them
    rank_zero_info(f"precision: {resolve_precision(cfg)}")
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)

    datamodule = build_datamodule(cfg)
    phase = build_phase(cfg)
    rank_zero_info(format_counts(phase.parameter_counts()))
    callbacks = build_callbacks(cfg)
    loggers = build_loggers(cfg)
    trainer = build_trainer(cfg, callbacks, loggers)

    run_loggers.log_run_info(loggers, cfg, phase.parameter_counts())  # config, git commit, W&B step axes

    metrics: dict[str, float] = {}
    try:
        if cfg.train:
            # weights_only: torch's restricted unpickler, also when a config replaces the checkpoint IO plugin
            # (AtomicCheckpointIO checks the file first, physworld/safe_checkpoint.py).
            trainer.fit(phase, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg), weights_only=True)
            metrics.update(scalar_metrics(trainer.callback_metrics))
        if cfg.test:
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            ckpt = best or (None if cfg.train else resolve_ckpt_path(cfg))
            trainer.test(phase, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
            metrics.update(scalar_metrics(trainer.callback_metrics))
        if trainer.is_global_zero:
            path = write_metrics(output_dir / "metrics.json", metrics)
            rank_zero_info(f"metrics: {path}")
            if trainer.checkpoint_callback and trainer.checkpoint_callback.dirpath:
                rank_zero_info(f"checkpoints: {trainer.checkpoint_callback.dirpath}")
    finally:
        if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
            import wandb

            wandb.finish()  # each job of a multirun is its own W&B run
    return metrics
