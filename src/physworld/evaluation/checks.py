"""check_evaluation(cfg): the checks of configs/evaluate.yaml's values, one line naming the key, the value and
what is accepted.

Nothing here imports torch or Lightning: physworld-evaluate runs these checks before importing them (seconds),
so a bad value or a checkpoint path that does not exist is reported at once. evaluate() runs them again, for
callers from Python (evaluate_run). Whether the checkpoint's contents are usable is known only once torch reads
it (physworld/phases/checkpoints.py).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from physworld.data.plan import check_dataset, dataset_members
from physworld.errors import CheckpointError, ConfigError
from physworld.require import non_negative_int, positive_int, positive_number, require

# devices.DEVICES, the choices of devices.pick_device (no torch here)
DEVICES = ("auto", "cpu", "cuda", "mps")
# evaluation.counterfactual.actions: the keys of evaluation/counterfactual.py's COUNTERFACTUALS (no torch here)
COUNTERFACTUAL_ACTIONS = ("negate", "rotate", "zero")
SPLITS = ("val", "test", "ood_test", "long_test")  # the held-out splits evaluation scores (data/cache.py)


def check_evaluation(cfg: DictConfig) -> None:
    """Raise ConfigError (CheckpointError for a missing checkpoint) for the first bad `ckpt_path`,
    `evaluation.*`, `data.*` or `dataset` value."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        raise ConfigError(
            "ckpt_path=None is not accepted: pass the checkpoint to evaluate, "
            "e.g. ckpt_path=outputs/train/runs/<run>/checkpoints/best.ckpt"
        )
    if not Path(str(ckpt)).is_file():
        raise CheckpointError(f"ckpt_path={str(ckpt)!r}: no such checkpoint file")
    require(cfg, "evaluation.split", lambda v: v in SPLITS, f"one of {list(SPLITS)}")
    require(cfg, "evaluation.ood_gap", lambda v: isinstance(v, bool), "true or false")
    if cfg.evaluation.ood_gap and cfg.evaluation.split != "test":
        raise ConfigError(
            f"evaluation.split={cfg.evaluation.split!r} is not accepted with evaluation.ood_gap=true: "
            "test (the gap is ood_test against test)"
        )
    for key in ("batch_size", "horizon", "num_images", "num_examples", "num_gif_sequences"):
        require(cfg, f"evaluation.{key}", positive_int, "a positive integer")
    for key in ("num_sequences", "context_frames"):
        require(
            cfg, f"evaluation.{key}", lambda v: v is None or positive_int(v), "null or a positive integer"
        )
    require(cfg, "evaluation.lpips", lambda v: isinstance(v, bool), "true or false")
    require(
        cfg, "evaluation.lpips_backbone", lambda v: v is None or isinstance(v, str), "null or a file path"
    )
    require(cfg, "evaluation.device", lambda v: v in DEVICES, f"one of {list(DEVICES)}")
    for key in ("probes.enabled", "counterfactual.enabled"):
        require(cfg, f"evaluation.{key}", lambda v: isinstance(v, bool), "true or false")
    optional = "null or a positive integer"
    require(cfg, "evaluation.probes.train_sequences", lambda v: v is None or positive_int(v), optional)
    require(cfg, "evaluation.probes.max_features", lambda v: v is None or positive_int(v), optional)
    require(cfg, "evaluation.probes.ridge", positive_number, "a positive number")
    accepted = f"one of {list(COUNTERFACTUAL_ACTIONS)}"
    require(cfg, "evaluation.counterfactual.actions", lambda v: v in COUNTERFACTUAL_ACTIONS, accepted)
    require(cfg, "data.seed", non_negative_int, "a non-negative integer")
    for key in ("data.max_sequences", "data.max_frames"):
        require(cfg, key, lambda v: v is None or positive_int(v), "null or a positive integer")
    check_dataset_choice(cfg.get("dataset"))


def check_dataset_choice(dataset: DictConfig | None) -> None:
    """`dataset=<name>|all` (checked like training's), or none: the training run's own data."""
    if dataset is None:
        return
    if "name" not in dataset:
        raise ConfigError(
            f"dataset={OmegaConf.to_container(dataset)} sets dataset keys but no dataset: add dataset=<name>"
        )
    for member in dataset_members(dataset):
        try:
            check_dataset(member)
        except ConfigError as err:
            raise ConfigError(f"dataset: {err}") from None
