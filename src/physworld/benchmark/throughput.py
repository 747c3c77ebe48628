"""Throughput of training (through Lightning, and a plain PyTorch loop over the same model, batch and loss),
of data loading alone, and of imagination, over `seconds` after `warmup` steps.

Both training loops are timed the same way: a timestamp at the start of every step (after its batch was
fetched), so a step's interval holds its compute, the framework's bookkeeping and the next fetch. The
report's `frames_per_s` is the median interval on a CPU (robust when other processes preempt some steps of
a shared machine) and the mean over the whole window, device synchronised at both ends, on a GPU (where
steps run asynchronously); both are kept.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterable

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from physworld.phases.base import WorldModelPhase
from physworld.resolve import resolve_precision
from physworld.run import build_loggers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(stamps: list[float], frames_per_step: int, sequences_per_step: int, device: torch.device) -> dict:
    """Rates from the start of each timed step and the end of the last: stamps (steps + 1,)."""
    intervals = torch.tensor(stamps, dtype=torch.double).diff()
    mean, median = float(intervals.mean()), float(intervals.median())
    step = median if device.type == "cpu" else mean
    return {
        "steps": len(intervals),
        "seconds": round(stamps[-1] - stamps[0], 3),
        "frames_per_s": frames_per_step / step,
        "sequences_per_s": sequences_per_step / step,
        "frames_per_s_mean": frames_per_step / mean,
        "frames_per_s_median": frames_per_step / median,
    }


class StepTimer(L.Callback):
    """Times the training steps after `warmup`; stops the fit once `seconds` have passed (and `min_steps`).

    `on_window` (optional) is called with "start" and "stop" at the same two instants, so a measurement
    (counting host reads, say) can cover exactly the timed steps, Lightning's bookkeeping included."""

    def __init__(self, warmup: int, seconds: float, min_steps: int = 3, on_window=None):
        self.warmup, self.seconds, self.min_steps, self.on_window = warmup, seconds, min_steps, on_window
        self.seen, self.stamps = 0, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.seen == self.warmup:
            synchronize(pl_module.device)
            if self.on_window:
                self.on_window("start")
        if self.seen >= self.warmup:
            self.stamps.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += 1
        if not self.stamps:
            return
        steps = len(self.stamps)
        if time.perf_counter() - self.stamps[0] >= self.seconds and steps >= self.min_steps:
            synchronize(pl_module.device)
            self.stamps.append(time.perf_counter())
            if self.on_window:
                self.on_window("stop")
            trainer.should_stop = True


def lightning_training(
    cfg: DictConfig, phase: WorldModelPhase, datamodule, seconds: float, warmup: int, on_window=None
) -> dict:
    """Frames/s of `trainer.fit` as train.py runs it (trainer and logger from the config, progress bar on),
    validation and checkpointing off."""
    resolve_precision(cfg)
    timer = StepTimer(warmup, seconds, on_window=on_window)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=[timer],
        logger=build_loggers(cfg) or False,
        max_epochs=10_000,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        trainer.fit(phase, datamodule=datamodule)  # the progress bar still draws, into /dev/null
    b, t = int(cfg.phase.batch_size), int(cfg.phase.seq_len)
    return rate(timer.stamps, b * t, b, phase.device)


def plain_training(
    cfg: DictConfig,
    phase: WorldModelPhase,
    loader: Iterable,
    device: torch.device,
    seconds: float,
    warmup: int,
) -> dict:
    """Frames/s of a minimal PyTorch loop over the same model, batch, loss, precision, gradient clipping and
    optimiser as the Lightning run: what the framework's overhead is measured against."""
    phase.to(device)
    phase.configure_model()  # the same memory format / compilation as under Lightning
    phase.train()
    optimizer = phase.configure_optimizers()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    clip = cfg.trainer.get("gradient_clip_val")
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    b, t = int(cfg.phase.batch_size), int(cfg.phase.seq_len)
    stamps = []
    for i, batch in enumerate(_forever(loader)):
        if i == warmup:
            synchronize(device)
        if i >= warmup:
            stamps.append(time.perf_counter())
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        batch = phase.on_after_batch_transfer(batch, 0)
        with autocast:
            loss = phase.compute_losses(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        if stamps and time.perf_counter() - stamps[0] >= seconds and len(stamps) >= 3:
            break
    synchronize(device)
    stamps.append(time.perf_counter())
    return rate(stamps, b * t, b, device)


def loading(loader: Iterable, device: torch.device, batch_size: int, seq_len: int, seconds: float) -> dict:
    """Frames/s the loader alone delivers to the device (host-to-device copy included; first batch excluded,
    so worker start-up is not counted)."""
    batches = _forever(loader)
    next(batches)
    stamps = [time.perf_counter()]
    for batch in batches:
        batch["frames"].to(device, non_blocking=True)
        stamps.append(time.perf_counter())
        if stamps[-1] - stamps[0] >= seconds and len(stamps) > 3:
            break
    synchronize(device)
    stamps[-1] = time.perf_counter()
    return rate(stamps, batch_size * seq_len, batch_size, device)


def imagination(imagine: Callable[[], int], device: torch.device, seconds: float, warmup: int = 1) -> dict:
    """Imagined latent steps per second of `imagine()`, one call = one imagined batch, returning its steps."""
    for _ in range(warmup):
        imagine()
    synchronize(device)
    calls, steps, started = 0, 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        steps += imagine()
        calls += 1
    synchronize(device)
    took = time.perf_counter() - started
    return {"calls": calls, "seconds": round(took, 3), "latent_steps_per_s": steps / took}


def _forever(loader: Iterable):
    """Batches of the loader, epoch after epoch."""
    return itertools.chain.from_iterable(iter(loader) for _ in itertools.count())
