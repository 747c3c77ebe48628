"""The agent that learns inside the world model (seed, "Model Architecture" 5 and "Phase 4"): a reward
predictor, a tanh-squashed Gaussian actor and a value critic, all reading the 8x8 latent, plus the
lambda-return of Dreamer (Hafner et al., 2020, "Dream to Control", eq. 6).

Every head reads the latent grid through spatial-softmax keypoints (`LatentHead`), then an MLP: small heads
(the seed's 0.05M each) that know where things are, instead of a dense layer over all 8 * 8 * 192 = 12,288
latent values.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LatentHead(nn.Module):
    """x (B, C, h, w) -> (B, out) through spatial-softmax keypoints (Levine et al., 2016, "End-to-End Training
    of Deep Visuomotor Policies"): two 1x1 convolutions make `keypoints` heat maps over the grid, a softmax
    over each map gives an expected (x, y) in [-1, 1], and an MLP reads the 2 * keypoints coordinates.

    Why keypoints: every head here needs *where* things are (the reward is minus the agent-goal distance). An
    MLP over the flattened grid has to learn distances from 1,000+ entangled inputs; on goal_reach latents
    (model=small) it explained far less of the reward variance than this head did in fewer steps.
    """

    def __init__(
        self, in_channels: int, out_features: int, squeeze: int = 32, keypoints: int = 8, hidden: int = 128
    ):
        super().__init__()
        self.maps = nn.Sequential(
            nn.Conv2d(in_channels, squeeze, kernel_size=1),
            nn.ELU(),
            nn.Conv2d(squeeze, keypoints, kernel_size=1),
        )
        self.log_temperature = nn.Parameter(torch.zeros(()))  # sharpness of the softmax, learned
        self.mlp = nn.Sequential(
            nn.Linear(2 * keypoints, hidden),
            nn.ELU(),
            nn.Linear(hidden, hidden),
            nn.ELU(),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Latents are small (std ~0.1 for a trained VQ-VAE): normalised per sample, the maps' logits are not ~0
        # at the start, so the softmax is not uniform and the keypoints move from the first steps. (Plain ops,
        # not nn.GroupNorm: its CPU backward crashed on the channels-last latents the quantiser returns.)
        # The unbiased std as the norm of the centred values over sqrt(n - 1): x.std(dim=(1, 2, 3)) is the same
        # number, but torch's CPU kernel for it is many times slower, and the planner calls this head at every
        # imagined step (docs/results.md, the planner's milliseconds per action).
        x = x - x.mean(dim=(1, 2, 3), keepdim=True)
        std = torch.linalg.vector_norm(x, dim=(1, 2, 3), keepdim=True) / max(x[0].numel() - 1, 1) ** 0.5
        x = x / (std + 1e-5)
        attention = torch.softmax(self.maps(x).flatten(2) * self.log_temperature.exp(), dim=-1)  # (B, K, h*w)
        ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w * 2 - 1
        grid_x, grid_y = xs.repeat(h), ys.repeat_interleave(w)  # (h*w,) cell centres, row-major
        coords = torch.cat([attention @ grid_x, attention @ grid_y], dim=-1)  # (B, 2K)
        return self.mlp(coords)


class RewardPredictor(nn.Module):
    """Latent z_t (B, C, 8, 8) -> predicted reward of frame t (B,)."""

    def __init__(self, latent_channels: int, **head):
        super().__init__()
        self.head = LatentHead(latent_channels, 1, **head)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z).squeeze(-1)


class Critic(nn.Module):
    """Model state features (B, F, 8, 8) -> value (B,)."""

    def __init__(self, feature_channels: int, **head):
        super().__init__()
        self.head = LatentHead(feature_channels, 1, **head)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).squeeze(-1)


class Actor(nn.Module):
    """Model state features (B, F, 8, 8) -> a tanh-squashed Gaussian policy over actions in [-1, 1]^A."""

    def __init__(
        self, feature_channels: int, action_dim: int = 2, min_std: float = 0.05, max_std: float = 1.0, **head
    ):
        super().__init__()
        self.head = LatentHead(feature_channels, 2 * action_dim, **head)
        self.min_std, self.max_std = min_std, max_std

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> mean (B, A) of the pre-tanh Gaussian, std (B, A) in [min_std, max_std]."""
        mean, raw_std = self.head(features).chunk(2, dim=-1)
        std = self.min_std + (self.max_std - self.min_std) * torch.sigmoid(raw_std)
        return mean, std

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action tanh(mean + std * eps) (B, A) and the entropy of the pre-tanh Gaussian (B,).

        The entropy of the squashed distribution has no closed form; the Gaussian's is the usual stand-in
        (its gradient still pushes std up, which is what the entropy bonus is for)."""
        mean, std = self(features)
        action = torch.tanh(mean + std * torch.randn_like(std))
        entropy = (0.5 * math.log(2 * math.pi * math.e) + std.log()).sum(-1)
        return action, entropy

    def act(self, features: torch.Tensor) -> torch.Tensor:
        """The deterministic action tanh(mean) (B, A), used in the real environment."""
        return torch.tanh(self(features)[0])


def lambda_returns(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float = 0.99, lam: float = 0.95
) -> torch.Tensor:
    """TD(lambda) returns of an imagined trajectory (Dreamer, eq. 6).

    rewards (H, B): r_k, the reward received for the k-th step; values (H + 1, B): v(s_0) .. v(s_H).
    Returns G (H, B) with G_{H-1} = r_{H-1} + gamma v(s_H) and
        G_k = r_k + gamma ((1 - lam) v(s_{k+1}) + lam G_{k+1}).
    """
    horizon = rewards.shape[0]
    out = []
    next_return = values[-1]
    for k in reversed(range(horizon)):
        next_return = rewards[k] + gamma * ((1 - lam) * values[k + 1] + lam * next_return)
        out.append(next_return)
    return torch.stack(out[::-1])


def split_lambda_returns(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float = 0.99, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """lambda_returns is linear in (rewards, values): G = G(rewards, 0) + G(0, values). Returns the two parts,
    the rewards' and the bootstrap values', each (H, B): what the actor's gradient owes to each."""
    return (
        lambda_returns(rewards, torch.zeros_like(values), gamma, lam),
        lambda_returns(torch.zeros_like(rewards), values, gamma, lam),
    )
