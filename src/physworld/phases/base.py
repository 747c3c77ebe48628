"""What every world-model phase shares: the networks, batch conversion, the optimiser, parameter counts.

All world-model phases own the same networks under the same attribute names (`vqvae`, later `dynamics`),
so a checkpoint of one phase loads into the next (`phase.init_from`).
"""

from __future__ import annotations

import lightning as L
import torch

from physworld.models.vqvae import VQVAE, parameter_counts


def build_vqvae(model: dict) -> VQVAE:
    vq = model["vq"]
    return VQVAE(
        hidden_channels=tuple(model["encoder"]["hidden_channels"]),
        num_codes=vq["num_codes"],
        code_dim=vq["code_dim"],
        commitment_cost=vq["commitment_cost"],
        skip=model["decoder"]["skip"],
        init_from_data=vq["init_from_data"],
        restart_dead_codes=vq["restart_dead_codes"],
        restart_threshold=vq["restart_threshold"],
        restart_every=vq["restart_every"],
    )


class WorldModelPhase(L.LightningModule):
    """Base of the world-model phases. `model` and `phase` are the plain dicts of configs/model and
    configs/phase; they are saved as hyperparameters (plain values only, never modules)."""

    def __init__(self, model: dict, phase: dict, dataset_names: list[str] | None = None):
        super().__init__()
        # dataset_names: one per val/test dataloader (dataset=all has one per member), for per-dataset metrics.
        self.dataset_names = list(dataset_names or ["data"])
        self.save_hyperparameters({"model": model, "phase": phase, "dataset_names": self.dataset_names})
        self.vqvae = build_vqvae(model)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        # uint8 (B, T, H, W, 3) crossed to the device; now float (B, T, 3, H, W) in [0, 1].
        frames = batch["frames"]
        if frames.dtype == torch.uint8:
            batch["frames"] = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)
        return batch

    def configure_optimizers(self):
        phase = self.hparams.phase
        return torch.optim.AdamW(
            [p for p in self.parameters() if p.requires_grad],
            lr=phase["lr"],
            weight_decay=phase["weight_decay"],
            betas=tuple(phase["betas"]),
        )

    def parameter_counts(self) -> dict[str, int]:
        return parameter_counts(
            {"encoder": self.vqvae.encoder, "codebook": self.vqvae.quantizer, "decoder": self.vqvae.decoder}
        )
