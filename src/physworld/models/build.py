"""The networks of a model spec (models/spec.py), built with the sizes it gives: the one place where a spec
becomes modules, shared by the phases, checkpoint checks, the Python API (physworld.world_model) and the
benchmarks. Plain torch: importing this module loads neither Lightning nor Hydra."""

from __future__ import annotations

from physworld.models.convgru import LatentDynamics
from physworld.models.frame_head import FrameHead
from physworld.models.spec import ModelSpec
from physworld.models.vqvae import VQVAE


def build_vqvae(spec: ModelSpec) -> VQVAE:
    vq = spec.vq
    return VQVAE(
        hidden_channels=spec.encoder.hidden_channels,
        num_codes=vq.num_codes,
        code_dim=vq.code_dim,
        commitment_cost=vq.commitment_cost,
        skip=spec.decoder.skip,
        init_from_data=vq.init_from_data,
        restart_dead_codes=vq.restart_dead_codes,
        restart_threshold=vq.restart_threshold,
        restart_every=vq.restart_every,
        groups=vq.groups,
    )


def build_frame_head(spec: ModelSpec) -> FrameHead | None:
    """The frame head of model.decoder.output=warp|composite (models/frame_head.py); None for pixels, where the
    VQ-VAE's decoder draws the predicted frames."""
    if spec.decoder.output == "pixels":
        return None
    return FrameHead(
        spec.vq.code_dim,
        spec.encoder.hidden_channels,
        spec.decoder.output,
        spec.decoder.sampling,
        spec.decoder.flow_grid,
    )


def build_dynamics(spec: ModelSpec) -> LatentDynamics:
    dyn = spec.dynamics
    return LatentDynamics(
        latent_channels=spec.vq.code_dim,
        hidden_channels=dyn.hidden_channels,
        num_layers=dyn.num_layers,
        kernel_size=dyn.kernel_size,
        action_dim=dyn.action_dim,
        residual=dyn.residual,
        output=dyn.output,
        num_codes=spec.vq.num_codes,
        feedback=dyn.feedback,
        groups=spec.vq.groups,
        token_head=dyn.token_head,
    )
