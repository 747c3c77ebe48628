"""Action-conditioned ConvGRU dynamics over the VQ-VAE latent (seed, "Model Architecture" 4).

One cell (Shi et al. 2015, "Convolutional LSTM Network", with the GRU gating of Cho et al. 2014), every
matrix product of the GRU replaced by a convolution:

    r_t = sigmoid(W_ir * x_t + W_hr * h_{t-1} + b_r)              reset gate
    u_t = sigmoid(W_iu * x_t + W_hu * h_{t-1} + b_u)              update gate (the seed's z_t)
    c_t = tanh(W_ic * x_t + W_hc * (r_t . h_{t-1}) + b_c)         candidate
    h_t = (1 - u_t) . h_{t-1} + u_t . c_t

(the seed writes the update gate as z_t, which clashes with its latent z_t; we call it u_t). The input and
hidden convolutions of the gates are fused into one convolution over [x, h], which is the same function.

`LatentDynamics` stacks `num_layers` cells. Its input at step t is the latent z_t (B, C, 8, 8) with the
action a_t (B, A) tiled over the 8x8 grid as A extra channels; a 1x1 convolution of the top hidden state
predicts z_{t+1} (or, with `residual=True`, the change z_{t+1} - z_t). Convention: a_t is the action taken
after observing frame t, so (z_t, a_t) -> z_{t+1}; passive datasets store zero actions.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvGRUCell(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size={kernel_size}: an odd size keeps the 8x8 grid ('same' padding)")
        self.hidden_channels = hidden_channels
        padding = kernel_size // 2
        self.gates = nn.Conv2d(
            in_channels + hidden_channels, 2 * hidden_channels, kernel_size, padding=padding
        )
        self.candidate = nn.Conv2d(
            in_channels + hidden_channels, hidden_channels, kernel_size, padding=padding
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W), h (B, C_h, H, W) -> new h (B, C_h, H, W)."""
        reset, update = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return (1 - update) * h + update * candidate


class LatentDynamics(nn.Module):
    """A stack of ConvGRU cells predicting the next latent from the current latent and action."""

    def __init__(
        self,
        latent_channels: int = 192,
        hidden_channels: int = 192,
        num_layers: int = 2,
        kernel_size: int = 3,
        action_dim: int = 2,
        residual: bool = False,
    ):
        super().__init__()
        self.action_dim, self.residual = action_dim, residual
        widths = [latent_channels + action_dim] + [hidden_channels] * num_layers
        self.cells = nn.ModuleList(ConvGRUCell(a, hidden_channels, kernel_size) for a in widths[:-1])
        self.head = nn.Conv2d(hidden_channels, latent_channels, kernel_size=1)

    def initial_state(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Zero hidden states for a batch shaped like z (B, C, H, W)."""
        b, _, h, w = z.shape
        return [z.new_zeros(b, cell.hidden_channels, h, w) for cell in self.cells]

    def step(
        self, z: torch.Tensor, action: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """z_t (B, C, H, W), a_t (B, A), state -> predicted z_{t+1} (B, C, H, W), new state."""
        if state is None:
            state = self.initial_state(z)
        tiled = action[:, :, None, None].to(z.dtype).expand(-1, -1, *z.shape[-2:])  # (B, A, H, W)
        x = torch.cat([z, tiled], dim=1)
        new_state = []
        for cell, h in zip(self.cells, state):
            x = cell(x, h)
            new_state.append(x)
        out = self.head(x)
        return (z + out if self.residual else out), new_state

    def rollout(self, context: torch.Tensor, actions: torch.Tensor, horizon: int) -> torch.Tensor:
        """Warm up on the given latents, then feed back its own predictions.

        context (B, Tc, C, H, W): latents of the context frames; actions (B, >= Tc + horizon - 1, A): the
        action after each frame. Returns the predictions of frames Tc .. Tc + horizon - 1, (B, K, C, H, W).
        """
        tc = context.shape[1]
        if actions.shape[1] < tc + horizon - 1:
            raise ValueError(f"rollout needs {tc + horizon - 1} actions, got {actions.shape[1]}")
        state = None
        for t in range(tc):  # teacher-forced warm-up: the last step predicts frame Tc
            z, state = self.step(context[:, t], actions[:, t], state)
        predictions = [z]
        for k in range(1, horizon):
            z, state = self.step(z, actions[:, tc + k - 1], state)
            predictions.append(z)
        return torch.stack(predictions, dim=1)
