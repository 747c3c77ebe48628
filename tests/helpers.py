"""Callbacks the fault tests inject into real train.py subprocesses (`+callbacks.<name>._target_=...`)."""

from __future__ import annotations

import os
import signal

import lightning as L


class LossRecorder(L.Callback):
    """Append `<global step> <train loss>` per training step to a file, flushed at once (survives SIGKILL)."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        with open(self.path, "a") as f:
            f.write(f"{trainer.global_step} {float(outputs['loss']):.10g}\n")


class KillAtStep(L.Callback):
    """SIGKILL this process when the given global step is reached: no cleanup, like a preempted job."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
