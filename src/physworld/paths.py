"""Where physworld finds its configs, and where runs keep their data and outputs by default.

CONFIG_DIR is the Hydra config tree. It ships inside the package (physworld/configs, package data in
pyproject.toml), so an installed wheel composes the same configs as the repository: every script, entry point
and test finds it here, never relative to the repository. compose() is the one way to compose it from Python
(a pipeline's steps, evaluate_run, the benchmark, the tests), as the command line of that config would.

The config tree's help texts (`--help`) list the groups a command's config uses with the resolver
`${physworld.config_groups:}`, registered here, beside CONFIG_DIR, so whatever composes the tree can resolve it.

project_root() is the folder that `paths.root_dir` (configs/paths/default.yaml) defaults to, with data/ and
outputs/ under it: $PHYSWORLD_ROOT when set; else the repository when physworld is imported from a source
checkout (src/physworld beside pyproject.toml: an editable install or PYTHONPATH=src); else the current
directory (an installed wheel).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "configs"


def config_groups(*, _root_: DictConfig) -> str:
    """`group: option, option, ...`, a line per config group the composed config chose from (its defaults list,
    as hydra.runtime.choices records it; Hydra's own groups left out). A command's --help lists these, where
    Hydra's $APP_CONFIG_GROUPS lists every folder of the config tree, groups the command never reads included."""
    from physworld.choices import group_options

    choices = OmegaConf.select(_root_, "hydra.runtime.choices") or {}
    groups = sorted(g for g in choices if g != "hydra" and not g.startswith("hydra/"))
    return "\n".join(f"{g}: {', '.join(group_options(CONFIG_DIR, g))}" for g in groups)


if not OmegaConf.has_resolver("physworld.config_groups"):
    OmegaConf.register_new_resolver("physworld.config_groups", config_groups)


def compose(config_name: str, overrides=(), *, keep_hydra: bool = False) -> DictConfig:
    """The config `configs/<config_name>.yaml` composed with `overrides`, as its command line (train.py,
    scripts/evaluate.py, ...) would see it. HydraConfig is set, so `${hydra:...}` interpolations resolve; the
    hydra node is removed, as @hydra.main hands a task its config, unless keep_hydra. (Hydra is imported here,
    not with this module, which the Python API reads CONFIG_DIR from.)"""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    if not keep_hydra:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def source_checkout() -> Path | None:
    """The repository this package is imported from, or None when it is installed (a wheel)."""
    repo = PACKAGE_DIR.parents[1]
    if PACKAGE_DIR.parent.name == "src" and (repo / "pyproject.toml").is_file():
        return repo
    return None


def project_root() -> Path:
    """$PHYSWORLD_ROOT, else the source checkout, else the current directory (see the module docstring)."""
    if os.environ.get("PHYSWORLD_ROOT"):
        return Path(os.environ["PHYSWORLD_ROOT"])
    return source_checkout() or Path.cwd()
