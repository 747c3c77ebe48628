"""Save a grid of inputs vs model outputs at each validation epoch (PNG in the run dir, and to W&B); the grid is
plots.frames.image_grid."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from physworld.plots.frames import image_grid


class ReconstructionGrid(L.Callback):
    """Top row: inputs; bottom row: outputs, from the first validation batch of each epoch.

    The phase's validation_step returns {"inputs", "outputs"} (B, 3, H, W) for this callback.
    """

    def __init__(self, dirpath: str, num_images: int = 8):
        self.dirpath, self.num_images = Path(dirpath), num_images
        self._rows: list[torch.Tensor] | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0 and isinstance(outputs, dict) and "inputs" in outputs:
            n = self.num_images
            self._rows = [outputs["inputs"][:n].cpu(), outputs["outputs"][:n].cpu()]

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module):
        if self._rows is None or trainer.sanity_checking:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        file = self.dirpath / f"recon_epoch{trainer.current_epoch:03d}.png"
        grid = Image.fromarray(image_grid(self._rows))
        grid.save(file)
        grid.save(self.dirpath / "recon_latest.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    "val/reconstructions",
                    [str(file)],
                    step=trainer.global_step,
                    caption=["top: input, bottom: reconstruction"],
                )
        self._rows = None
