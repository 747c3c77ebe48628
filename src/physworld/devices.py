"""The one device picker: `auto` is CUDA, else Apple's MPS, else the CPU, everywhere a device is chosen outside
Lightning (the evaluation, the Python API, the benchmark; training's accelerator is Lightning's own choice)."""

from __future__ import annotations

import torch

from physworld.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def available() -> dict[str, bool]:
    """Each device type and whether this machine has it, in the order `auto` prefers them."""
    return {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}


def pick_device(choice: str = "auto", key: str = "device") -> torch.device:
    """`choice` (one of DEVICES) as a torch device; ConfigError (one line naming `key`, the value and what this
    machine accepts) for an unknown or absent one."""
    here = available()
    if choice == "auto":
        return torch.device(next(name for name, ok in here.items() if ok))
    if choice not in DEVICES or not here[choice]:
        accepted = ["auto", *(name for name, ok in here.items() if ok)]
        what = "not available here" if choice in DEVICES else "not a device"
        raise ConfigError(f"{key}={choice!r} is {what}: accepted one of {accepted}")
    return torch.device(choice)
