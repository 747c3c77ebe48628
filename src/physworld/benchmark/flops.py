"""FLOPs of one training step, counted by torch.utils.flop_counter (matmuls and convolutions, forward and
backward: what MFU counts), and the device's peak for the model FLOPs utilisation (MFU) on a GPU."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from physworld.benchmark.workloads import training_loss
from physworld.phases.base import WorldModelPhase

# Dense peak TFLOP/s from the vendors' data sheets: bf16 tensor cores, tf32 tensor cores, fp32 CUDA cores.
# The first name that is part of torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_TFLOPS = {
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100 NVL": {"bf16": 835.0, "tf32": 417.5, "fp32": 60.0},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L4": {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3},
    "RTX 4090": {"bf16": 165.2, "tf32": 82.6, "fp32": 82.6},
}


class _GlobalOnly:
    """Stands in for FlopCounterMode's per-module tracker: every FLOP counts towards "Global" only."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


class TotalFlops(FlopCounterMode):
    """FlopCounterMode, totals only. Its module tracker hooks every module call and fails on inputs that
    require grad but were made under no_grad (the prediction phase decodes its predictions that way for a
    metric), so it is replaced (torch 2.13's `mod_tracker` attribute)."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _GlobalOnly()


def training_flops(phase: WorldModelPhase, batch: dict) -> int:
    """Forward + backward FLOPs of the phase's training loss on one batch (already on the phase's device)."""
    phase.train()
    batch = phase.on_after_batch_transfer(dict(batch), 0)
    with TotalFlops() as counter:
        training_loss(phase, batch).backward()
    phase.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def peak_flops(device: torch.device, precision: str) -> tuple[float, str] | None:
    """(peak FLOP/s, what it is) of a known CUDA device for this precision; None elsewhere."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            if precision.startswith("bf16"):
                kind = "bf16"
            else:  # fp32 convolutions run on TF32 tensor cores when cuDNN allows it (torch's default)
                kind = "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
            return peaks[kind] * 1e12, f"{key} dense {kind}"
    return None
