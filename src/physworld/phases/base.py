"""What every world-model phase shares: the networks, batch conversion, the optimiser, parameter counts,
and the fast paths (`perf.*` in configs/train.yaml, measured on and off by scripts/benchmark.py).

All world-model phases own the same networks under the same attribute names (`vqvae`, later `dynamics`),
so a checkpoint of one phase loads into the next (`phase.init_from`).
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from physworld.errors import CheckpointError
from physworld.fast_paths import FastPaths
from physworld.models.build import build_vqvae
from physworld.models.spec import ModelSpec
from physworld.models.vqvae import parameter_counts
from physworld.phases import PHASES, Phase
from physworld.phases.checkpoints import check_world_model_checkpoint, load_networks, read_checkpoint

# Networks only some phases have: label in the parameter counts -> attribute name.
OPTIONAL_NETWORKS = {
    "dynamics": "dynamics",
    "frame head": "frame_head",
    "reward": "reward_model",
    "actor": "actor",
    "critic": "critic",
}


class WorldModelPhase(L.LightningModule):
    """Base of the world-model phases. `model` and `phase` are the plain dicts of configs/model and
    configs/phase; they are saved as hyperparameters (plain values only, never modules). The networks are built
    from `spec`, the ModelSpec of `model` (models/spec.py), which every checkpoint also saves as `model_spec`.
    A run started from `phase.init_from` gets the model config with the checkpoint's architecture
    (phases/checkpoints.init_model, called by physworld.run.build_phase)."""

    @property
    def entry(self) -> Phase:
        """Its row of the table physworld.phases.PHASES, by the phase name it was built with (phase.name): its
        class, settings and what it can do (`phase.entry.trains_dynamics`, ...)."""
        return PHASES[self.hparams.phase["name"]]

    @classmethod
    def freezes_vqvae(cls, phase: dict) -> bool:
        """Whether a phase of this class with the settings `phase` (configs/phase) keeps the VQ-VAE fixed, so
        that it may train on the token cache (data.token_cache)."""
        return False

    @property
    def vqvae_frozen(self) -> bool:
        """Whether this phase keeps the VQ-VAE fixed (freezes_vqvae of its own settings)."""
        return self.freezes_vqvae(self.hparams.phase)

    @property
    def trains_on_frames(self) -> bool:
        """Whether its training loss needs the frames even when the token cache gives the codes."""
        return False

    @property
    def first_steady_step(self) -> int:
        """The first training batch of a fit (from 0) whose step does the work of every later one: the step whose
        FLOPs physworld.callbacks.throughput counts. The first step also does one-time work (codes initialised
        from the data, compilation)."""
        return 1

    def __init__(self, model: dict, phase: dict, dataset_names: list[str] | None = None):
        super().__init__()
        # dataset_names: one per val/test dataloader (dataset=all has one per member), for per-dataset metrics.
        self.dataset_names = list(dataset_names or ["data"])
        self.save_hyperparameters({"model": model, "phase": phase, "dataset_names": self.dataset_names})
        self.spec = ModelSpec.from_config(model)
        # the typed settings (phases/settings.py); a checkpoint's dict may keep keys since removed
        self.settings = self.entry.settings.from_config(phase, strict=False)
        self.vqvae = build_vqvae(self.spec)
        # perf.*: the defaults until use_fast_paths sets the run's, before fitting (physworld/fast_paths.py)
        self.fast_paths = FastPaths()
        self._fast_paths_applied = False

    def setup(self, stage: str) -> None:
        # Load phase.init_from here, not in __init__: a checkpoint of this phase must load without the file
        # it was initialised from. When fit resumes from ckpt_path, Lightning restores over it afterwards.
        path = self.settings.init_from
        if stage != "fit" or not path or getattr(self, "_initialised", False):
            return
        ckpt = read_checkpoint(path)
        check_world_model_checkpoint(ckpt, str(path), self.spec)
        loaded = load_networks(self, ckpt)
        if self.entry.needs_trained_dynamics and "dynamics" not in loaded:
            raise CheckpointError(
                f"phase.init_from={str(path)!r} has no dynamics: train phase=prediction on dataset=goal_reach "
                "first and pass its checkpoint"
            )
        rank_zero_info(f"phase.init_from: loaded {', '.join(loaded)} from {path}")
        self._initialised = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain values only: checkpoints are read with weights_only loading (safe_checkpoint.py).
        checkpoint["model_spec"] = self.spec.to_dict()

    def on_fit_start(self) -> None:
        # After the weights are final (phase.init_from loaded, a resumed checkpoint restored) and before the
        # training loader is built: a frozen VQ-VAE's codes of the training frames never change, so train on
        # them (data.token_cache).
        datamodule = self.trainer.datamodule
        if getattr(datamodule, "token_cache", False) in (True, "auto") and self.vqvae_frozen:
            folders = datamodule.attach_token_cache(self.vqvae, self.device, frames=self.trains_on_frames)
            where = folders[0] if len(folders) == 1 else f"<dataset>/train/tokens/{folders[0].name}"
            rank_zero_info(f"data.token_cache: training on the codes of {len(folders)} split(s): {where}")

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        # uint8 (B, T, H, W, 3) crossed to the device; now float (B, T, 3, H, W) in [0, 1]. The permuted view
        # keeps the channels-last layout in memory (what channels_last networks want); otherwise make it NCHW.
        # (Batches from the token cache carry codes, not frames.)
        frames = batch.get("frames")
        if frames is not None and frames.dtype == torch.uint8:
            frames = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)
            batch["frames"] = frames if self.uses("channels_last") else frames.contiguous()
        return batch

    def configure_model(self) -> None:
        # Lightning calls this before fit, validate and test (before moving to the device, which keeps the
        # memory format); the fast paths are applied once.
        if self._fast_paths_applied:
            return
        if self.uses("channels_last"):
            for net in self.hot_modules():
                net.to(memory_format=torch.channels_last)  # 4-D conv weights become NHWC
        if self.uses("compile"):
            for net in self.hot_modules():
                net.compile()  # in place: the state_dict keys (and so checkpoints) stay the same
        self._fast_paths_applied = True

    def configure_optimizers(self):
        return torch.optim.AdamW(
            [p for p in self.parameters() if p.requires_grad],
            lr=self.settings.lr,
            weight_decay=self.settings.weight_decay,
            betas=self.settings.betas,
            fused=True if self._fused() else None,  # None: torch's default (foreach on CUDA)
        )

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        # Lightning's mixed-precision plugin refuses to clip for a fused optimizer, because under 16-mixed the
        # gradients are still scaled here. bf16-mixed has no grad scaler: they are the true gradients, so clip.
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if gradient_clip_val and optimizer.defaults.get("fused") and scaler is None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def log(self, name: str, value, prog_bar: bool = False, *args, **kwargs) -> None:
        """LightningModule.log without host-device synchronisation in training steps (`perf.sync_free`).

        Lightning turns every prog_bar metric into a Python number at every step (an .item(), which waits
        for the GPU): with sync_free, training metrics stay off the progress bar (loggers still get them every
        trainer.log_every_n_steps). Lightning would also turn a Python number into a device tensor by a
        blocking copy; here it is always a fill kernel instead."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = torch.full((), float(value), device=self.device)
        if prog_bar and self.training and self.uses("sync_free"):
            prog_bar = False
        super().log(name, value, prog_bar, *args, **kwargs)

    def log_dataset_means(
        self, stage: str, values: dict[str, dict[str, torch.Tensor]], prefix: str = "", prog_bar: str = ""
    ) -> None:
        """The one averaging rule of every per-dataset metric, in every phase: `values` holds each evaluation
        dataset's metrics (name -> key -> value); each goes to `<stage>/<prefix><key>/<dataset>` (with more than
        one dataset, dataset=all) and their mean over datasets to `<stage>/<prefix><key>`: every dataset counts
        the same, whatever its size. `prog_bar`: the key shown on the progress bar."""
        totals: dict[str, list[torch.Tensor]] = {}
        for name, metrics in values.items():
            for key, value in metrics.items():
                totals.setdefault(key, []).append(value)
                if len(self.dataset_names) > 1:
                    self.log(f"{stage}/{prefix}{key}/{name}", value)
        for key, per_dataset in totals.items():
            self.log(f"{stage}/{prefix}{key}", torch.stack(per_dataset).mean(), prog_bar=key == prog_bar)

    # ------------------------------------------------------------------------------------------------------

    def use_fast_paths(self, perf: dict) -> WorldModelPhase:
        """Set the fast paths from the plain dict of `perf` in configs/train.yaml (before fitting)."""
        self.fast_paths = FastPaths.of(perf)
        return self

    def uses(self, path: str) -> bool:
        """Whether a fast path is on for the device this phase trains on."""
        return self.fast_paths.uses(path, self._device_type())

    def _fused(self) -> bool:
        trainer = self._trainer
        scaler = trainer is not None and getattr(trainer.precision_plugin, "scaler", None) is not None
        clipping = trainer is not None and bool(trainer.gradient_clip_val)
        return self.fast_paths.fused_adamw(self._device_type(), scaler, clipping)

    def _device_type(self) -> str:
        return (self._trainer.strategy.root_device if self._trainer is not None else self.device).type

    def predicted_frames(
        self, latents: torch.Tensor, last_latent: torch.Tensor, last_frame: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predicted latents (B, K, C, h, w) -> frames (B, K, 3, H, W) (linear: clamp to display) and the frame
        head's flow (B, K, 2, H, W), or None where the VQ-VAE's decoder draws them (model.decoder.output=pixels).
        last_latent (B, C, h, w) and last_frame (B, 3, H, W): the last real (context) frame, which the frame head
        moves; every horizon is warped from it, never from an earlier prediction."""
        head = getattr(self, "frame_head", None)
        if head is None:
            b, k = latents.shape[:2]
            return self.vqvae.decode(latents.flatten(0, 1)).unflatten(0, (b, k)), None
        out = head(latents, last_latent, last_frame)
        return out.frames, out.flow

    @property
    def codebook(self) -> torch.Tensor:
        """The VQ-VAE's codebook (K, C): a token dynamics' predicted codes are fed back as its entries."""
        return self.vqvae.quantizer.embedding.weight

    def hot_modules(self) -> list[nn.Module]:
        """The networks every training step runs: what channels_last converts and torch.compile compiles.
        (The dynamics' rollout is a Python loop over its cells, so the cells are compiled, not the loop.)"""
        nets = [self.vqvae.encoder, self.vqvae.quantizer, self.vqvae.decoder]
        dynamics = getattr(self, "dynamics", None)
        if dynamics is not None:
            nets += [*dynamics.cells, dynamics.head]
        if getattr(self, "frame_head", None) is not None:
            nets.append(self.frame_head)
        return nets

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per component, for the networks this phase has (printed at start, logged)."""
        modules = {
            "encoder": self.vqvae.encoder,
            "codebook": self.vqvae.quantizer,
            "decoder": self.vqvae.decoder,
        }
        for label, attribute in OPTIONAL_NETWORKS.items():
            if hasattr(self, attribute):
                modules[label] = getattr(self, attribute)
        return parameter_counts(modules)
