"""FLOPs of one training step, counted by torch.utils.flop_counter (matmuls and convolutions, forward and
backward: what MFU counts), and the model FLOPs utilisation (MFU) against the device's peak as Lightning
knows it (lightning.fabric.utilities.throughput.get_available_flops)."""

from __future__ import annotations

import torch
from lightning.fabric.utilities.throughput import get_available_flops
from torch.utils.flop_counter import FlopCounterMode

from physworld.phases.base import WorldModelPhase

# trainer.precision (its part before "-") -> the compute dtype whose peak get_available_flops looks up
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16, "32": torch.float32, "64": torch.float64}


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
        phase.compute_losses(batch)["loss"].backward()
    phase.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def peak_flops(device: torch.device, precision: str) -> int | None:
    """The device's peak FLOP/s at a trainer.precision (32-true, bf16-mixed, 16-mixed, ...): Lightning's
    get_available_flops, which knows the data sheets of common CUDA GPUs and TPUs (float32 counts as TF32 on
    Ampere and later unless torch's float32 matmul precision is "highest"); None where it has no entry (CPUs,
    MPS, GPUs missing from its table)."""
    kind = str(precision).split("-")[0]
    if kind not in COMPUTE_DTYPES:
        raise ValueError(
            f"precision={precision!r}: accepted 64-true, 32-true, 16-mixed, 16-true, bf16-mixed, bf16-true"
        )
    return get_available_flops(device, COMPUTE_DTYPES[kind])


def utilisation(flops_per_frame: float, frames_per_s: float, device: torch.device, precision: str) -> dict:
    """What a training run at frames_per_s achieves: TFLOP/s and, where the device's peak is known, the model
    FLOPs utilisation (MFU = achieved / peak) and that peak; mfu is None elsewhere."""
    achieved = flops_per_frame * frames_per_s
    out = {"achieved_tflops": achieved / 1e12, "mfu": None}
    peak = peak_flops(device, precision)
    if peak:
        out |= {"mfu": achieved / peak, "peak_tflops": peak / 1e12}
    return out
