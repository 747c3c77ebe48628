"""Imagination workloads: a callable that imagines one batch of latent trajectories and returns how many
latent steps it took. `IMAGINERS` maps a name to a builder `(cfg, device, starts, horizon) -> callable`,
cfg being the composed train config.

Today's entry rolls the ConvGRU dynamics forward (what the RL phase's imagination runs on). To measure the
RL phase's own imagine() (actor, dynamics, reward model and critics), register a builder for it here, e.g.

    def rl_phase(cfg, device, starts, horizon):
        phase = build(cfg).to(device)             # cfg composed with phase=rl, phase.imagination_horizon=horizon
        z, state = ...                            # `starts` start states, as phase.start_states gives them

        def imagine():
            phase.imagine(z, state)
            return starts * horizon

        return imagine

    IMAGINERS["rl"] = rl_phase

and scripts/benchmark.py measures it beside the plain dynamics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from physworld.models.build import build_dynamics
from physworld.models.spec import ModelSpec


def dynamics_rollout(cfg: DictConfig, device: torch.device, starts: int, horizon: int) -> Callable[[], int]:
    """LatentDynamics of cfg.model rolled forward `horizon` (H) steps with no grad from `starts` (B) random
    latents (B, C, 8, 8) and zero hidden states, under random actions in [-1, 1]."""
    spec, n = ModelSpec.from_config(OmegaConf.to_container(cfg.model, resolve=True)), starts
    dynamics = build_dynamics(spec).to(device).eval()
    groups = spec.vq.groups
    codebook = torch.randn(groups * spec.vq.num_codes, spec.vq.code_dim // groups).to(device)  # output=tokens
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(n, spec.vq.code_dim, 8, 8, generator=g).to(device)  # (B, C, 8, 8)
    hidden = dynamics.initial_state(z0)
    actions = (torch.rand(horizon, n, spec.dynamics.action_dim, generator=g) * 2 - 1).to(device)  # (H, B, A)

    @torch.no_grad()
    def imagine() -> int:
        z, state = z0, hidden
        for k in range(horizon):
            z, state = dynamics.step(z, actions[k], state, codebook, feedback="argmax")
        return n * horizon

    return imagine


IMAGINERS: dict[str, Callable[[DictConfig, torch.device, int, int], Callable[[], int]]] = {
    "dynamics": dynamics_rollout,
}
