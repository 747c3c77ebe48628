"""Start-up checks of a composed config: a bad value stops the run before any work, with one line naming
the key, the value and what is accepted (physworld.require).

This module imports neither torch nor Lightning at the top (train.py runs check_config before importing them,
so a bad value is reported in seconds); the few checks that need torch import it where they run."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from physworld.data.plan import check_dataset, dataset_members, datasets_for
from physworld.errors import ConfigError
from physworld.fast_paths import DEFAULTS as FAST_PATHS
from physworld.models.spec import ModelSpec
from physworld.phases import PHASES, declared, phase_class
from physworld.require import non_negative_int, non_negative_number, positive_int, require
from physworld.resolve import PRECISIONS, resolve_ckpt_path


def check_dynamics(cfg: DictConfig) -> None:
    """What the dynamics phases' keys (phases/settings.py) need of the model: the encoded latents train a frame
    head, which model.decoder.output=pixels has none of."""
    if cfg.phase.get("head_latents") == "encoded" and cfg.model.decoder.output == "pixels":
        raise ConfigError(
            "phase.head_latents='encoded' is not accepted: 'predicted' with model.decoder.output=pixels (encoded "
            "needs warp or composite)"
        )


def check_token_cache(cfg: DictConfig) -> None:
    """data.token_cache: the training windows as codes of the frozen VQ-VAE (data/tokens.py)."""
    require(cfg, "data.token_cache", lambda v: isinstance(v, bool) or v == "auto", "true, false or auto")
    if cfg.data.token_cache is True and not frozen_vqvae(cfg):
        raise ConfigError(
            f"data.token_cache=true is not accepted with phase={cfg.phase.name} training the VQ-VAE: the codes "
            "would change under it (accepted with a frozen VQ-VAE: phase=prediction or rl, or use auto)"
        )


def frozen_vqvae(cfg: DictConfig) -> bool:
    """Whether the phase keeps the VQ-VAE fixed (so its codes of the data never change)."""
    return phase_class(cfg.phase.name).freezes_vqvae(cfg.phase)  # imports the phase (Lightning): only here


def check_rl(cfg: DictConfig) -> None:
    """The agent phase needs rewards, actions and a real environment (dataset=goal_reach, gym, or episodes played
    in dataset.env_id) and a world model with dynamics."""
    require(
        cfg,
        "dataset.name",
        lambda v: v in ("goal_reach", "gym") or (v == "episodes" and cfg.dataset.get("env_id")),
        "goal_reach, gym, or episodes with the dataset.env_id they were played in (phase=rl needs actions, "
        "rewards and an environment to be evaluated in)",
    )
    check_eval_policies(cfg)


def check_eval_policies(cfg: DictConfig) -> None:
    """phase.monitor is a metric the evaluated policies log."""
    env_id = cfg.phase.get("env_id")
    if env_id:
        from physworld.envs.gym_pixels import REFERENCE_CONTROLLERS  # gymnasium: only for dataset=gym

        if env_id not in REFERENCE_CONTROLLERS:  # no oracle, so no gap closed and no regret are logged
            require(
                cfg,
                "phase.monitor",
                lambda v: "regret" not in str(v) and "gap" not in str(v),
                f"{env_id} has no reference controller (an oracle: {sorted(REFERENCE_CONTROLLERS)} have one), so "
                "no regret is logged: e.g. phase.monitor=val/reward_loss",
            )
    if "actor" not in cfg.phase.eval_policies:
        require(
            cfg,
            "phase.monitor",
            lambda v: "policy" not in str(v),
            "a metric of a policy that is evaluated (without the actor: e.g. val/planner_regret)",
        )


def check_init_from(init) -> None:
    """The file exists and holds nothing that would run code (refused at start-up, before any data is made)."""
    from physworld.safe_checkpoint import check_pickle  # torch: not needed by the checks before it

    if not Path(init).is_file():
        raise ConfigError(f"phase.init_from={init!r}: no such checkpoint file")
    check_pickle(Path(init), key="phase.init_from")


def check_lpips(cfg: DictConfig) -> None:
    """The rollout callback's LPIPS switch, and with it on, that its AlexNet weights file is there (found at
    start-up, not after the data is made; nothing downloads it)."""
    rollout = (cfg.get("callbacks") or {}).get("rollout")
    if rollout is None or "lpips" not in rollout:
        return
    require(cfg, "callbacks.rollout.lpips", lambda v: isinstance(v, bool), "true or false")
    key = "callbacks.rollout.lpips_backbone"
    require(cfg, key, lambda v: v is None or isinstance(v, str), "null or a file path")
    if rollout.lpips:
        from physworld.metrics.lpips import backbone_path  # torch: only when LPIPS is on

        backbone_path(rollout.lpips_backbone, key)


def check_perf(cfg: DictConfig) -> None:
    """The fast paths (`perf.*`) and the loader keys that choose how, not what, to train."""
    for key in ("perf.channels_last", "perf.fused_adamw", "perf.sync_free", "data.pin_memory"):
        require(cfg, key, lambda v: isinstance(v, bool) or v == "auto", "true, false or auto")
    for key in ("perf.compile", "data.persistent_workers", "data.on_device"):
        require(cfg, key, lambda v: isinstance(v, bool), "true or false")
    unknown = sorted(set(cfg.perf) - set(FAST_PATHS))
    if unknown:
        raise ConfigError(f"perf.{unknown[0]} is not accepted: perf has {', '.join(FAST_PATHS)}")


# Packages a logger needs that are not dependencies of physworld: logger class -> (modules, any one of which
# serves, what to install). Lightning's TensorBoardLogger writes with tensorboard, else with tensorboardX.
LOGGER_PACKAGES = {
    "WandbLogger": (("wandb",), "pip install 'physworld[wandb]'"),
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "pip install 'physworld[tensorboard]'"),
}


def importable(module: str) -> bool:
    """Whether `import module` would find it (without importing it: wandb alone takes a second or more)."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: marked missing (as tests simulate an absent package)
    return importlib.util.find_spec(module) is not None


def check_loggers(cfg: DictConfig) -> None:
    """A logger whose package is an optional extra: one line naming the extra when it is not installed."""
    for name, node in (cfg.get("logger") or {}).items():
        target = str((node or {}).get("_target_", ""))
        cls = target.rsplit(".", 1)[-1]
        if cls in LOGGER_PACKAGES:
            modules, install = LOGGER_PACKAGES[cls]
            if not any(importable(module) for module in modules):
                raise ConfigError(
                    f"logger={name} needs the {' or '.join(modules)} package, which is not installed: {install}"
                )


def check_ddp_in_sweep(cfg: DictConfig) -> None:
    """Lightning's `ddp` starts ranks 1.. by re-running the command line: under a Hydra multirun each child would
    re-run the whole sweep. Refuse it there (ddp_spawn or the SLURM launcher work)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    strategy = (cfg.get("trainer") or {}).get("strategy")
    if strategy == "ddp" and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        if not SLURMEnvironment.detect():
            raise ConfigError(
                "trainer.strategy='ddp' is not accepted in a multirun (-m): its child processes would re-run the "
                "whole sweep; use trainer=ddp_spawn, or hydra/launcher=slurm"
            )


def phase_settings(cfg: DictConfig):
    """The typed settings of cfg.phase (its phase's class in physworld.phases.PHASES), or ConfigError."""
    phase = OmegaConf.to_container(cfg.phase, resolve=True, throw_on_missing=False)
    return PHASES[cfg.phase.name].settings.from_config(phase)


def check_config(cfg: DictConfig, files: bool = True) -> None:
    """Raise ConfigError for the first bad value; before anything is built, once a run (the CLI and the pipeline
    check the values before importing torch, run.train then the files). files=False skips check_files (a
    pipeline checks its later steps before their checkpoints exist)."""
    require(cfg, "phase.name", lambda v: v in PHASES, f"one of {sorted(PHASES)}")
    phase_settings(cfg)  # every phase.* key, one line each (phases/settings.py)
    require(cfg, "seed", non_negative_int, "a non-negative integer")
    require(cfg, "data.seed", non_negative_int, "a non-negative integer")
    check_verify(cfg)
    require(cfg, "data.stride", positive_int, "a positive integer")
    require(cfg, "data.num_workers", non_negative_int, "a non-negative integer")
    check_perf(cfg)
    if cfg.get("trainer") is not None:
        require(cfg, "trainer.precision", lambda v: str(v) in PRECISIONS, f"one of {list(PRECISIONS)}")
    ModelSpec.from_config(OmegaConf.to_container(cfg.model, resolve=True))  # every model.* key, one line each
    weights = cfg.dataset.get("weights")
    if weights is not None:
        names = [d.name for d in dataset_members(cfg.dataset)]
        require(
            cfg,
            "dataset.weights",
            lambda w: (
                set(w) <= set(names)
                and all(non_negative_number(v) for v in w.values())
                and sum(w.values()) > 0
            ),
            f"a mapping from members {names} to non-negative numbers, not all zero",
        )
    for key in ("data.max_sequences", "data.max_frames"):
        require(cfg, key, lambda v: v is None or positive_int(v), "null or a positive integer")
    check_token_cache(cfg)
    for dataset in dataset_members(cfg.dataset):
        try:
            check_dataset(dataset)
        except ConfigError as err:
            raise ConfigError(f"dataset: {err}") from None
    for dataset in datasets_for(cfg):
        if cfg.phase.seq_len > dataset["num_frames"]:
            raise ConfigError(
                f"phase.seq_len={cfg.phase.seq_len} is longer than the stored sequences of "
                f"{dataset['name']} ({dataset['num_frames']} frames): accepted 1..{dataset['num_frames']}"
            )
    if declared(cfg.phase.name, "trains_dynamics"):
        check_dynamics(cfg)
    if declared(cfg.phase.name, "trains_agent"):
        check_rl(cfg)
    check_loggers(cfg)
    check_lpips(cfg)
    check_ddp_in_sweep(cfg)
    if files:
        check_files(cfg)


def check_files(cfg: DictConfig) -> None:
    """The checks of check_config that read files (torch for a checkpoint): phase.init_from is a world model
    that fits; a run without ckpt_path starts in a new folder; a resumed one's checkpoint is of this phase and
    fits its networks."""
    if cfg.phase.get("init_from") is not None:
        check_init_from(cfg.phase.init_from)
    ckpt = resolve_ckpt_path(cfg)
    if ckpt is None:
        check_new_run_dir(cfg.paths.output_dir, "paths.output_dir")
    else:
        from physworld.phases.checkpoints import (
            check_architecture,
            checkpoint_phase,
            init_model,
            read_checkpoint,
        )

        saved_ckpt = read_checkpoint(ckpt, key="ckpt_path")  # torch
        saved = checkpoint_phase(saved_ckpt)
        if saved != cfg.phase.name:
            raise ConfigError(
                f"ckpt_path={str(ckpt)!r} is a checkpoint of phase {saved!r}, this run is phase={cfg.phase.name}: "
                "resume with the same phase (to start a new phase from it, use phase.init_from)"
            )
        # The run's networks (built from its model.* keys, or phase.init_from's) must fit the checkpoint's
        # weights: a differing size is one line here, not a size-mismatch traceback once the networks are built.
        model = init_model(OmegaConf.to_container(cfg.model, resolve=True), OmegaConf.to_container(cfg.phase))
        check_architecture(saved_ckpt, str(ckpt), ModelSpec.from_config(model), key="ckpt_path")


# What a run that got somewhere leaves in its folder (Hydra's .hydra/ and the log file are there from the start)
RUN_RESULTS = ("checkpoints", "csv/metrics.csv", "metrics.json")


def check_new_run_dir(folder, key: str) -> None:
    """A run without ckpt_path starts in a folder where no earlier run left checkpoints, logs or metrics: it
    would replace them. Ranks 1.. of a DDP run (LOCAL_RANK set) start after rank 0 and skip this."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    folder = Path(str(folder))
    found = [name for name in RUN_RESULTS if (folder / name).exists()]
    if found:
        raise ConfigError(
            f"{key}={str(folder)!r} already holds a run ({', '.join(found)}): resume it with ckpt_path=last, or "
            "start the new run in another folder (hydra.run.dir=<new folder>)"
        )


def check_verify(cfg: DictConfig) -> None:
    """data.verify (data/cache.py): when a data file's hash is checked."""
    from physworld.data.cache import VERIFY  # numpy, no torch

    require(cfg, "data.verify", lambda v: v in VERIFY, f"one of {list(VERIFY)}")
