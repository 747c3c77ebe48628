"""Training throughput in frames/s and, on a device whose peak Lightning knows, the model FLOPs utilisation
(MFU), logged with the training metrics every `trainer.log_every_n_steps` steps.

Built on Lightning's `Throughput` (what its ThroughputMonitor callback computes with) and logged under the keys
ThroughputMonitor uses, where a sample is one frame (a batch of B windows of T frames is B*T samples):

    train/device/samples_per_sec   training frames/s over the last log_every_n_steps steps
    train/device/batches_per_sec   training steps/s over the same steps
    train/device/flops_per_sec     FLOP/s (matmuls and convolutions, forward and backward) over the same steps
    train/device/mfu               flops_per_sec / the device's peak at trainer.precision, where Lightning's
                                   get_available_flops knows it (CUDA GPUs in its table, TPUs; never a CPU)
    (on more than one device, also train/samples_per_sec, batches_per_sec and flops_per_sec over all of them)

ThroughputMonitor's running totals (train/time, batches, samples) are left out: they repeat the step axis.

Why not ThroughputMonitor itself: to time every step it waits for the GPU after each one
(torch.cuda.synchronize), which undoes `perf.sync_free`. Here the device is waited for only at the steps where
Lightning logs, and the time spent in validation is left out of the training time (as ThroughputMonitor does).

FLOPs: one real training step (the phase's `first_steady_step`, past one-time work such as codes initialised
from the data, or the RL phase's reward pre-training) runs inside torch.utils.flop_counter; every later step is
taken to cost the same. No extra pass runs, so the run itself (weights, random numbers) is unchanged. A step
with no counted FLOPs, or count_flops=false, leaves out flops_per_sec and mfu; frames/s is always logged.
"""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.fabric.utilities.throughput import Throughput

from physworld.benchmark.flops import TotalFlops, peak_flops

RATES = ("_per_sec", "mfu")  # the keys of Throughput.compute() that are logged


def frames_in_batch(batch: dict) -> int:
    """B*T: the frames of a batch of B windows of T frames (frames (B, T, ...) or token-cache codes (B, T, h, w))."""
    pixels = batch["frames"] if "frames" in batch else batch["tokens"]
    return int(pixels.shape[0] * pixels.shape[1])


class TrainingThroughput(L.Callback):
    """Logs train/device/samples_per_sec (frames/s) and friends; count_flops: count one step's FLOPs (for
    flops_per_sec and mfu)."""

    def __init__(self, count_flops: bool = True):
        self.count_flops = count_flops
        self._counter: TotalFlops | None = None
        self._validation_start: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        try:
            peak = peak_flops(trainer.strategy.root_device, trainer.precision)
        except ValueError:  # a precision without one compute dtype (e.g. transformer-engine): no MFU
            peak = None
        # window_size=2: every rate is over the interval since the previous log step
        self._throughput = Throughput(available_flops=peak, world_size=trainer.world_size, window_size=2)
        self._batches = self._frames = 0
        self._count_at = getattr(pl_module, "first_steady_step", 1) if self.count_flops else None
        self._flops_per_batch: int | None = None
        # FLOPs of the batches since the last log step, given only once every one of them came after the counted
        # step (Throughput pairs its last FLOP entries with its last times, so none may be missing in between)
        self._interval_flops, self._interval_counted = 0, False
        self._paused = 0.0  # seconds of validation since fit started
        self._start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._batches == self._count_at:
            self._counter = TotalFlops()
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._counter is not None:
            self._flops_per_batch = self._stop_counting() or None
            self._interval_counted = False  # this interval had steps before the counted one
        elif self._flops_per_batch:
            self._interval_flops += self._flops_per_batch
        self._batches += 1
        self._frames += frames_in_batch(batch)
        # The check (and the logging call) Lightning's ThroughputMonitor makes: log with the training metrics.
        if not trainer._logger_connector.should_update_logs:
            return
        _wait_for(trainer.strategy.root_device)
        self._throughput.update(
            time=time.perf_counter() - self._start - self._paused,
            batches=self._batches,
            samples=self._frames,
            flops=self._interval_flops if self._interval_counted else None,
        )
        self._interval_flops, self._interval_counted = 0, self._flops_per_batch is not None
        rates = {key: value for key, value in self._throughput.compute().items() if key.endswith(RATES)}
        if rates:  # from the second log step on
            trainer._logger_connector.log_metrics({f"train/{key}": value for key, value in rates.items()})

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            _wait_for(trainer.strategy.root_device)  # the training steps queued so far are training time
            self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._validation_start is not None:
            self._paused += time.perf_counter() - self._validation_start
            self._validation_start = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self._counter is not None:  # the counted step failed: leave the counting mode
            self._stop_counting()

    def _stop_counting(self) -> int:
        counter, self._counter = self._counter, None
        counter.__exit__(None, None, None)
        return int(counter.get_total_flops())


def _wait_for(device: torch.device) -> None:
    """Wait for the work queued on the device, so that the clock reads the time it took."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
