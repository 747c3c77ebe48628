"""Reading checkpoints of one world-model phase into another (`phase.init_from`), with one-line errors.

Every world-model phase keeps its networks under the same attribute names (`vqvae`, `dynamics`), so a
checkpoint's state dict loads into any phase that has those networks; networks the checkpoint lacks (the
dynamics of a reconstruction checkpoint) keep their fresh initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from physworld.errors import CheckpointError
from physworld.phases import phases_that
from physworld.safe_checkpoint import load_checkpoint_file

NETWORKS = ("vqvae", "dynamics")


def read_checkpoint(path: str | Path, key: str = "phase.init_from") -> dict:
    """Load a Lightning checkpoint on the CPU without running anything in it (safe_checkpoint.py), or raise
    CheckpointError naming `key` and the path."""
    ckpt = load_checkpoint_file(path, key)
    if "state_dict" not in ckpt:
        raise CheckpointError(f"{key}={str(path)!r} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def checkpoint_phase(ckpt: dict) -> str | None:
    return ((ckpt.get("hyper_parameters") or {}).get("phase") or {}).get("name")


def check_world_model_checkpoint(ckpt: dict, path: str, model: dict, key: str = "phase.init_from") -> None:
    """The checkpoint must come from a world-model phase with the same VQ-VAE sizes as `model`."""
    name, accepted = checkpoint_phase(ckpt), phases_that("is_world_model")
    if name not in accepted:
        raise CheckpointError(
            f"{key}={path!r} is a checkpoint of phase {name!r}: accepted one of {list(accepted)}"
        )
    saved = (ckpt.get("hyper_parameters") or {}).get("model") or {}
    has_dynamics = any(k.startswith("dynamics.") for k in ckpt["state_dict"])
    # What the networks' shapes and meaning depend on; a checkpoint saved before a key existed had its default.
    defaults = {"vq": {"groups": 1}, "dynamics": {"output": "latent", "residual": False}}
    sizes = (
        "hidden_channels",
        "num_codes",
        "code_dim",
        "groups",
        "num_layers",
        "kernel_size",
        "output",
        "residual",
    )
    for group in ("encoder", "vq", "dynamics"):
        for size in sizes:
            if group == "dynamics" and not has_dynamics:
                continue  # a reconstruction checkpoint's dynamics keys describe no trained network
            mine = (model.get(group) or {}).get(size)
            theirs = (saved.get(group) or {}).get(size, defaults.get(group, {}).get(size))
            if mine is not None and theirs is not None and list(_aslist(mine)) != list(_aslist(theirs)):
                raise CheckpointError(
                    f"{key}={path!r} was trained with model.{group}.{size}={theirs}, "
                    f"this run has model.{group}.{size}={mine}: use the same model settings"
                )


def load_networks(module: torch.nn.Module, ckpt: dict) -> list[str]:
    """Copy the networks the checkpoint has into `module`; return the names of the networks loaded."""
    state = ckpt["state_dict"]
    loaded = []
    for net in NETWORKS:
        if not hasattr(module, net):
            continue
        prefix = f"{net}."
        part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if part:
            getattr(module, net).load_state_dict(part)
            loaded.append(net)
    return loaded


def _aslist(value) -> list:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
