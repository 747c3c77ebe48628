"""Which datasets a composed config stands for: the members of a `dataset=` choice (dataset=all's ten), as plain
dicts with the `data.max_sequences` / `data.max_frames` caps applied, and the check of each one's spec. Training,
the data commands, evaluation, export and a pipeline all load their data through this plan."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from physworld.data.cache import EVAL_SPLITS, SPLITS
from physworld.data.scenes import SCENES
from physworld.data.sources import SOURCES
from physworld.require import positive_int, require


def dataset_members(dataset: DictConfig) -> list[DictConfig]:
    """The datasets a `dataset=` choice stands for: its members for a mixture (dataset=all), else itself."""
    members = dataset.get("members")
    return list(members.values()) if members else [dataset]


def datasets_for(cfg: DictConfig) -> list[dict]:
    """Plain dicts of the datasets to load, with the `data.max_sequences` / `data.max_frames` caps applied
    (debug=tiny uses them so that every dataset, dataset=all included, shrinks to a few short sequences)."""
    data = cfg.get("data") or {}
    max_sequences, max_frames = data.get("max_sequences"), data.get("max_frames")
    out = []
    for member in dataset_members(cfg.dataset):
        d = OmegaConf.to_container(member, resolve=True)
        d.pop("members", None)
        if max_sequences is not None:
            # a recorded source's null size means "all there is": the cap then stands alone
            d["sizes"] = {
                split: max_sequences if n is None else min(n, max_sequences)
                for split, n in d["sizes"].items()
            }
        if max_frames is not None:
            d["num_frames"] = min(d["num_frames"], max_frames)
        out.append(d)
    return out


def check_dataset(dataset: DictConfig) -> None:
    names = sorted(SCENES) + sorted(SOURCES)
    require(dataset, "name", lambda v: v in SCENES or v in SOURCES, f"one of {names}")
    if dataset.name in SOURCES:  # recorded data (data/sources/): its own keys
        SOURCES[dataset.name].check(dataset)
        return
    require(dataset, "num_frames", positive_int, "a positive integer")
    for split in SPLITS:
        require(dataset, f"sizes.{split}", positive_int, "a positive integer (sequences in the split)")
    for split in EVAL_SPLITS:  # optional: declared by the datasets that have the split
        require(
            dataset, f"sizes.{split}", lambda v: v is None or positive_int(v), "null or a positive integer"
        )
    require(dataset, "long_num_frames", lambda v: v is None or positive_int(v), "null or a positive integer")
    require(
        dataset, "ood", lambda v: v is None or isinstance(v, DictConfig), "null or a mapping of scene ranges"
    )
