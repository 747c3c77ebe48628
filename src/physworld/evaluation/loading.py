"""Rebuild a trained phase from its checkpoint alone, and find the config of the run that wrote it.

A checkpoint's `hyper_parameters` hold the plain dicts {"model", "phase", "dataset_names"} every world-model
phase saves (phases/base.py), so the phase is rebuilt with `phase_class(name)(**hyper_parameters)` and its state
dict loaded strictly. It does not hold the dataset config: that lives in the training run's config,
`<run>/.hydra/config.yaml` (or `<run>/config.yaml` for a pipeline step), beside `<run>/checkpoints/`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from physworld.errors import CheckpointError, ConfigError
from physworld.evaluation.runs import load_run_config, run_config_file, training_run_dir
from physworld.phases import phase_class
from physworld.phases.checkpoints import (
    check_weights_fit,
    check_world_model_phase,
    checkpoint_spec,
    read_checkpoint,
)

KEY = "ckpt_path"  # the config key the user set, named in every error


def load_phase(path: str | Path) -> tuple[L.LightningModule, dict]:
    """The phase of a world-model checkpoint with its trained weights, in eval mode; and the raw checkpoint.

    Raises CheckpointError (one line naming `ckpt_path`) for a missing, unreadable or non-Lightning file, a
    checkpoint of another phase (rl) or without physworld hyperparameters, or weights that do not fit.
    """
    ckpt = read_checkpoint(path, key=KEY)
    check_world_model_phase(ckpt, str(path), key=KEY)  # accepts the world-model phases only
    return build_phase(ckpt, str(path), key=KEY), ckpt


def build_phase(ckpt: dict, path: str, key: str) -> L.LightningModule:
    """The phase a checkpoint's hyper_parameters describe, with its weights, in eval mode; CheckpointError (one
    line naming `key`) when they do not build a phase or the weights do not fit it."""
    hparams = ckpt.get("hyper_parameters") or {}
    name = hparams["phase"]["name"]
    # the sizes against the weights, before the networks are built (allocated)
    check_weights_fit(checkpoint_spec(ckpt, path, key), ckpt["state_dict"], path, key)
    try:
        phase = phase_class(name)(
            model=hparams.get("model") or {},
            phase=hparams["phase"],
            dataset_names=hparams.get("dataset_names"),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise CheckpointError(
            f"{key}={path!r}: its hyper_parameters do not build a {name} phase ({type(err).__name__}: {err})"
        ) from None
    try:
        phase.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]  # torch's message spans lines: keep the error one line
        raise CheckpointError(
            f"{key}={path!r}: its weights do not fit the model of its hyper_parameters ({detail})"
        ) from None
    return phase.eval()


def training_config(path: str | Path) -> tuple[DictConfig, Path] | None:
    """The config of the run that wrote the checkpoint, and its file, if the checkpoint is in a run folder."""
    run = training_run_dir(path)
    file = run_config_file(run) if run else None
    return (load_run_config(file), file) if file else None
