"""Surviving faults: atomic checkpoint files, exact resumption, and a clear stop on a non-finite loss.

- `AtomicCheckpointIO` writes each checkpoint to a temporary file in the same folder and renames it into
  place, so a run killed while saving leaves the previous `last.ckpt` intact, never a truncated one; the next
  run's first save removes such a killed write's temporary files (physworld/atomic.py). It reads
  checkpoints (Lightning's resume from `ckpt_path`, its test of the best checkpoint) through
  `physworld.safe_checkpoint`, so a resumed file cannot run code either.
- `ResumeState` saves the Python, NumPy and torch random states in every checkpoint and restores them on
  resume, so a resumed run draws the same random numbers (dead-code restarts, imagination noise) as one
  that was never interrupted. Data order is made resumable by the epoch-seeded samplers of the DataModule.
- `StopOnNonFiniteLoss` checks the training loss every `every_n_steps` steps and stops with one line naming
  the phase, the step and the last good checkpoint, before a NaN reaches `last.ckpt`. Reading the check's
  answer waits for the device; with `perf.sync_free` on, the check stays on the device at every step and its
  answer is read only every `trainer.log_every_n_steps` steps (when the loggers read the metrics anyway) and
  before each validation and epoch end, so before any checkpoint is written.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from physworld.atomic import remove_leftovers, write_atomic
from physworld.errors import PhysworldError, os_error
from physworld.safe_checkpoint import check_pickle


def newest_checkpoint(trainer) -> str:
    """The path of the newest checkpoint the run wrote ('' if none): `last.ckpt` of a metric-free
    ModelCheckpoint (callbacks.last_checkpoint), else a `save_last` file."""
    for callback in trainer.checkpoint_callbacks:
        path = callback.best_model_path if callback.monitor is None else callback.last_model_path
        if path:
            return path
    return ""


class NonFiniteLossError(PhysworldError):
    """Training produced a NaN or infinite loss."""


def _keep_device(storage, location):
    return storage  # TorchCheckpointIO's default map_location: tensors load on the CPU; Lightning moves them


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self):
        super().__init__()
        self._cleaned: set[Path] = set()  # folders whose leftovers this process has removed

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.parent not in self._cleaned:  # the temporary files of a killed run's writes (atomic.py)
                remove_leftovers(path.parent, ".")
                self._cleaned.add(path.parent)
            # atomic on POSIX: readers see the old file or the new one, never half
            write_atomic(
                path,
                lambda tmp: super(AtomicCheckpointIO, self).save_checkpoint(checkpoint, tmp, storage_options),
            )
        except OSError as err:  # a full disk, a read-only folder: one line; the previous checkpoint is intact
            raise os_error(err, path) from None

    def load_checkpoint(self, path, map_location=_keep_device, weights_only=None) -> dict:
        # Lightning reads ckpt_path here (and, under ddp_spawn, the weights its workers hand back).
        check_pickle(Path(path), key="ckpt_path")
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class ResumeState(L.Callback):
    """Random-number-generator states, checkpointed with the run."""

    def state_dict(self) -> dict:
        return {
            "python": random.getstate(),
            "numpy": _numpy_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict) -> None:
        random.setstate(state["python"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> tuple:
    """NumPy's global state (the one seed_everything sets) as plain values and a tensor: checkpoints load with
    torch.load(weights_only=True), which refuses NumPy arrays."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)


class StopOnNonFiniteLoss(L.Callback):
    def __init__(self, every_n_steps: int = 1):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}: a positive integer")
        self.every_n_steps = every_n_steps
        self._batches = 0
        # with sync_free: the first non-finite loss seen and its batch number (0: none yet), on the device
        self._first_bad: torch.Tensor | None = None
        self._bad_batch: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._batches += 1
        losses = self._losses(trainer, outputs)
        if _sync_free(pl_module):
            self._record(losses)
            if self._batches % max(self.every_n_steps, trainer.log_every_n_steps) == 0:
                self._read_back(trainer, pl_module)
            return
        if self._batches % self.every_n_steps:
            return
        for loss in losses:
            if not bool(torch.isfinite(loss.detach()).all()):
                self._stop(trainer, pl_module, loss)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._read_back(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._read_back(trainer, pl_module)

    @staticmethod
    def _losses(trainer, outputs) -> list[torch.Tensor]:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            return [loss]
        # manual optimisation (phase=rl) returns nothing; it logs train/reward_loss, actor_loss, ...
        return [
            v
            for k, v in trainer.callback_metrics.items()
            if k.startswith("train/") and k.endswith("loss") and isinstance(v, torch.Tensor)
        ]

    def _record(self, losses: list[torch.Tensor]) -> None:
        """Keep the first non-finite loss and its batch number on the device, without reading anything back."""
        if not losses:
            return
        total = torch.stack([loss.detach().float().sum() for loss in losses]).sum()  # non-finite if any is
        if self._first_bad is None:
            self._first_bad = torch.zeros_like(total)
            self._bad_batch = torch.zeros((), dtype=torch.long, device=total.device)
        new = ~torch.isfinite(total) & (self._bad_batch == 0)
        self._first_bad = torch.where(new, total, self._first_bad)
        self._bad_batch = torch.where(new, self._bad_batch.new_full((), self._batches), self._bad_batch)

    def _read_back(self, trainer, pl_module) -> None:
        if self._bad_batch is None or not bool(self._bad_batch > 0):  # the one read of the device
            return
        self._stop(trainer, pl_module, self._first_bad, batch=int(self._bad_batch))

    def _stop(self, trainer, pl_module, loss: torch.Tensor, batch: int | None = None) -> None:
        last = newest_checkpoint(trainer) or "none saved yet"
        value = float(loss.detach().float().sum())
        when = f"step {trainer.global_step}"
        if batch is not None:  # found by a deferred check (perf.sync_free): name the batch it happened in
            when = f"training batch {batch} of this fit (found at step {trainer.global_step})"
        raise NonFiniteLossError(
            f"phase={pl_module.hparams.phase['name']}: the training loss became {value} at {when} "
            f"(epoch {trainer.current_epoch}); training stopped, last good checkpoint: {last}. Lower phase.lr "
            "or check the data"
        )


def _sync_free(pl_module) -> bool:
    """Whether the phase runs with perf.sync_free (phases without the fast-path switches: no)."""
    uses = getattr(pl_module, "uses", None)
    return bool(uses("sync_free")) if callable(uses) else False
