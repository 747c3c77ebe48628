"""The fast paths (`perf.*` in configs/train.yaml): how to run, not what to learn, so they stay out of the
hyperparameters and checkpoints do not depend on them. Each is true, false or "auto" (compile: true or false);
"auto" is decided per device type here. scripts/benchmark.py (make bench) measures each on and off. No torch
here: the start-up checks read the keys before torch is imported.

A phase (phases/base.py) holds one `FastPaths` and asks it: channels_last converts its hot networks and their
input to NHWC, compile runs torch.compile on them, fused_adamw uses AdamW's fused kernel, sync_free keeps the
training step free of host-device synchronisation (no prog_bar metric read back every step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULTS = {"channels_last": "auto", "compile": False, "fused_adamw": "auto", "sync_free": "auto"}
AUTO_DEVICES = {  # the device types on which "auto" means on
    # MPS: channels_last convolutions have had correctness and speed issues on Apple GPUs (not measurable
    # here), so auto keeps NCHW there.
    "channels_last": ("cpu", "cuda"),
    "fused_adamw": ("cuda",),  # on CPU within noise of the plain AdamW (docs/results.md, Speed)
    "sync_free": ("cuda", "mps"),  # on a CPU reading a number back costs nothing
}


@dataclass
class FastPaths:
    values: dict = field(default_factory=lambda: dict(DEFAULTS))

    @classmethod
    def of(cls, perf: Mapping) -> FastPaths:
        """The fast paths of the plain dict of `perf`, the defaults for keys it lacks; KeyError for others."""
        unknown = set(perf) - set(DEFAULTS)
        if unknown:
            raise KeyError(f"unknown fast paths {sorted(unknown)}: accepted {sorted(DEFAULTS)}")
        return cls({**DEFAULTS, **perf})

    def uses(self, path: str, device_type: str) -> bool:
        """Whether a fast path is on for a device of `device_type` ("cpu", "cuda", "mps"), "auto" resolved."""
        value = self.values[path]
        if value != "auto":
            return bool(value)
        return device_type in AUTO_DEVICES.get(path, ())

    def fused_adamw(self, device_type: str, grad_scaler: bool, clipping: bool) -> bool:
        """fused_adamw, except when auto meets a grad scaler (16-mixed) with clipping: the scaler leaves the
        gradients scaled until the fused step, so they cannot be clipped (an explicit true lets Lightning say so)."""
        if not self.uses("fused_adamw", device_type):
            return False
        if self.values["fused_adamw"] == "auto":
            return not (grad_scaler and clipping)
        return True
