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
predicts the next latent. Convention: a_t is the action taken after observing frame t, so (z_t, a_t) -> z_{t+1};
passive datasets store zero actions.

Two outputs (`output`):
- "latent": the 1x1 convolution regresses z_{t+1} (or, with `residual=True`, the change z_{t+1} - z_t). A
  regression of an uncertain future is the mean of its possibilities: an object that may be here or there
  comes out as a faint blur over both.
- "tokens": logits (B, K, H, W) over the VQ-VAE's K codes at every cell (trained with cross-entropy against the
  codes of the true future frame), and the next latent is the codebook entry of the predicted code, so every
  predicted frame decodes from real codebook entries, as in token world models (IRIS, Micheli et al. 2023).
  Where the logits come from (`token_head`):
    distance          the 1x1 convolution predicts the change of the latent, z_hat = z_t + dz, and the logit of
                      code e_k is -s |z_hat - e_k|^2 / d, d the mean squared distance between two codes of the
                      codebook (so s, learned, is scale-free). The head starts at zero, so an untrained dynamics
                      predicts "every cell keeps its code" (copy-last) and learns the changes; and codes close to
                      each other get close logits, so what is learned about one code carries to its neighbours
    linear            the 1x1 convolution gives the K logits directly: every code is a class of its own
  How the predicted code is fed back (`feedback`):
    argmax            the most likely code; no gradient through the choice (only through the hidden state)
    straight_through  the argmax code forward, the gradient of the expected code e = softmax(l) @ E backward
    gumbel            a code sampled with the Gumbel-max trick, straight-through (Jang et al. 2017)
    soft              the expected code softmax(l) @ E (not a codebook entry: training only)
  Evaluation rolls out with argmax; imagination (RL) with straight_through, so that the actor's gradient
  reaches its actions through the predicted codes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from physworld.models.spec import FEEDBACKS, OUTPUTS, TOKEN_HEADS
from physworld.models.vector_quantizer import squared_distances


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


class Rollout(NamedTuple):
    """What `LatentDynamics.rollout` predicts for frames Tc .. Tc + K - 1."""

    latents: torch.Tensor  # (B, K, C, H, W): the latents fed back (codebook entries with output="tokens")
    logits: torch.Tensor | None  # (B, K, G * codes, H, W) with output="tokens", else None
    indices: torch.Tensor | None  # (B, K, G, H, W) the codes chosen with output="tokens", else None
    continuous: torch.Tensor | None = None  # (B, K, C, H, W) token_head="distance": z_hat before the choice


def codes_to_latent(
    logits: torch.Tensor, codebook: torch.Tensor, feedback: str = "argmax", groups: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, G*K, H, W) over the codebook (G*K, C/G) (K codes in each of G groups, as the quantiser keeps
    them) -> the latent fed back (B, C, H, W) and the chosen codes (B, G, H, W), as the quantiser's global row
    numbers (for "soft", the argmax codes: the expectation is no single code)."""
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback={feedback!r}: accepted {list(FEEDBACKS)}")
    b, _, h, w = logits.shape
    k = codebook.shape[0] // groups
    # fp32: a softmax over hundreds of codes in bf16 loses the small probabilities
    logits = logits.float().view(b, groups, k, h, w)
    weight = codebook.float()
    if feedback == "gumbel":
        noise = -torch.empty_like(logits).exponential_().log()  # Gumbel(0, 1)
        local = (logits + noise).argmax(2)
    else:
        local = logits.argmax(2)  # (B, G, H, W)
    indices = local + (torch.arange(groups, device=local.device) * k)[None, :, None, None]
    latent = F.embedding(indices, weight)  # (B, G, H, W, C/G)
    if feedback != "argmax":
        probs = logits.softmax(2)  # (B, G, K, H, W)
        soft = torch.einsum("bgkhw,gkd->bghwd", probs, weight.view(groups, k, -1))  # the expected code
        # straight-through: the chosen code forward, the expectation's gradient backward
        latent = soft if feedback == "soft" else latent + (soft - soft.detach())
    latent = latent.permute(0, 1, 4, 2, 3).reshape(b, -1, h, w)  # (B, G * C/G, H, W): the quantiser's order
    return latent.to(codebook.dtype), indices


class LatentDynamics(nn.Module):
    """A stack of ConvGRU cells predicting the next latent from the current latent and action. The sizes come
    from the model spec (models/spec.py; models/build.py), so they have no defaults."""

    def __init__(
        self,
        latent_channels: int,
        hidden_channels: int,
        num_layers: int,
        kernel_size: int = 3,
        action_dim: int = 2,
        residual: bool = False,
        output: str = "latent",
        num_codes: int | None = None,
        feedback: str = "straight_through",
        groups: int = 1,
        token_head: str = "distance",
    ):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output={output!r}: accepted {list(OUTPUTS)}")
        if output == "tokens" and not num_codes:
            raise ValueError("output='tokens' needs num_codes, the size of the VQ-VAE's codebook")
        if feedback not in FEEDBACKS:
            raise ValueError(f"feedback={feedback!r}: accepted {list(FEEDBACKS)}")
        if token_head not in TOKEN_HEADS:
            raise ValueError(f"token_head={token_head!r}: accepted {list(TOKEN_HEADS)}")
        self.action_dim, self.residual, self.output, self.feedback = action_dim, residual, output, feedback
        self.groups = groups  # the VQ-VAE's codebook groups: one set of logits per group and cell
        self.token_head = token_head if output == "tokens" else None
        widths = [latent_channels + action_dim] + [hidden_channels] * num_layers
        self.cells = nn.ModuleList(ConvGRUCell(a, hidden_channels, kernel_size) for a in widths[:-1])
        out_channels = groups * num_codes if self.token_head in ("linear", "copy") else latent_channels
        self.head = nn.Conv2d(hidden_channels, out_channels, kernel_size=1)
        if self.token_head == "copy":
            # logits = the copy bias alone: the untrained dynamics keeps every code
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
            self.log_copy = nn.Parameter(torch.tensor(math.log(5.0)))
        if self.token_head == "distance":
            nn.init.zeros_(self.head.weight)  # dz = 0: the untrained dynamics keeps every cell's code
            nn.init.zeros_(self.head.bias)
            # s = 10: at z_hat = e_i a code at the mean distance is 10 logits below e_i, its nearest neighbours
            # (a small fraction of the mean distance in trained codebooks) about 1: copy-last, not certain
            self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    @property
    def predicts_tokens(self) -> bool:
        return self.output == "tokens"

    def copy_bias(self, z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """(B, G*K, H, W): the learned copy bias b = exp(log_copy) on the logit of every cell's current code (the
        code nearest to z in each group, z itself for codebook entries), 0 elsewhere."""
        b, _, h, w = z.shape
        d2 = self.code_distances(z.detach(), codebook.detach().to(z.dtype))  # (B, G, K, H, W)
        current = F.one_hot(d2.argmin(2), d2.shape[2]).permute(0, 1, 4, 2, 3)  # (B, G, K, H, W)
        return (self.log_copy.exp() * current).reshape(b, -1, h, w)

    def code_distances(self, z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, H, W), codebook (G*K, C/G) -> squared distance of every cell's group part to every
        code of its group (B, G, K, H, W), in z's dtype (the quantiser's `squared_distances`)."""
        b, c, h, w = z.shape
        g = self.groups
        parts = z.view(b, g, c // g, h, w).permute(0, 3, 4, 1, 2)  # (B, H, W, G, d)
        d2 = squared_distances(parts, codebook.view(g, -1, c // g))  # (B, H, W, G, K)
        return d2.permute(0, 3, 4, 1, 2)

    def distance_logits(self, z_hat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """Predicted latents (B, C, H, W), codebook (G*K, C/G) -> logits (B, G*K, H, W): minus the squared
        distance to every code of the cell's group, over the group's mean squared distance between two codes,
        times the learned scale. The codebook is the VQ-VAE's and stays out of this loss's gradient."""
        b, _, h, w = z_hat.shape
        weight = codebook.detach().float().view(self.groups, -1, codebook.shape[1])  # (G, K, d)
        d2 = self.code_distances(z_hat.float(), codebook.detach().float())  # (B, G, K, H, W)
        with torch.no_grad():  # the mean squared distance between two codes of a group, (G,)
            k = weight.shape[1]
            spacing = (torch.cdist(weight, weight).pow(2).sum((1, 2)) / (k * (k - 1))).clamp_min(1e-12)
        logits = -self.log_scale.exp() * d2 / spacing[None, :, None, None, None]
        return logits.reshape(b, -1, h, w)

    def initial_state(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Zero hidden states for a batch shaped like z (B, C, H, W)."""
        b, _, h, w = z.shape
        return [z.new_zeros(b, cell.hidden_channels, h, w) for cell in self.cells]

    def advance(
        self, z: torch.Tensor, action: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """z_t (B, C, H, W), a_t (B, A), state -> the new state of every layer (B, hidden, H, W), no head."""
        if state is None:
            state = self.initial_state(z)
        tiled = action[:, :, None, None].to(z.dtype).expand(-1, -1, *z.shape[-2:])  # (B, A, H, W)
        x = torch.cat([z, tiled], dim=1)
        new_state = []
        for cell, h in zip(self.cells, state):
            x = cell(x, h)
            new_state.append(x)
        return new_state

    def predict(
        self,
        z: torch.Tensor,
        action: torch.Tensor,
        state: list[torch.Tensor] | None = None,
        codebook: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """z_t (B, C, H, W), a_t (B, A), state -> the head's prediction for t + 1, new state. The prediction
        is z_{t+1} (B, C, H, W) with output="latent", logits (B, G * codes, H, W) with output="tokens" (the
        distance head needs the codebook)."""
        out, new_state, _ = self._predict(z, action, state, codebook)
        return out, new_state

    def _predict(self, z, action, state, codebook):
        """predict(), plus the distance head's z_hat (None for the other heads)."""
        new_state = self.advance(z, action, state)
        out, z_hat = self.head(new_state[-1]), None
        if self.token_head == "copy":
            out = out + self.copy_bias(z, self._codebook(codebook))
        elif self.token_head == "distance":
            z_hat = z + out
            out = self.distance_logits(z_hat, self._codebook(codebook))
        elif not self.predicts_tokens and self.residual:
            out = z + out
        return out, new_state, z_hat

    def step(
        self,
        z: torch.Tensor,
        action: torch.Tensor,
        state: list[torch.Tensor] | None = None,
        codebook: torch.Tensor | None = None,
        feedback: str | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """z_t (B, C, H, W), a_t (B, A), state -> predicted z_{t+1} (B, C, H, W), new state.

        With output="tokens", `codebook` (G*K, C/G) (the VQ-VAE's embedding weight) turns the logits into the
        latent, chosen by `feedback` (default: this module's)."""
        out, new_state = self.predict(z, action, state, codebook)
        if self.predicts_tokens:
            out = codes_to_latent(out, self._codebook(codebook), feedback or self.feedback, self.groups)[0]
        return out, new_state

    def rollout(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        horizon: int,
        codebook: torch.Tensor | None = None,
        feedback: str | None = None,
    ) -> Rollout:
        """Warm up on the given latents, then feed back its own predictions.

        context (B, Tc, C, H, W): latents of the context frames; actions (B, >= Tc + horizon - 1, A): the
        action after each frame; codebook and feedback as in `step`. Returns the predictions of
        frames Tc .. Tc + horizon - 1 (see `Rollout`).
        """
        tc = context.shape[1]
        if actions.shape[1] < tc + horizon - 1:
            raise ValueError(f"rollout needs {tc + horizon - 1} actions, got {actions.shape[1]}")
        if self.predicts_tokens:
            codebook, feedback = self._codebook(codebook), feedback or self.feedback
        state = None
        for t in range(tc - 1):  # teacher-forced warm-up on the context
            state = self.advance(context[:, t], actions[:, t], state)
        out, state, z_hat = self._predict(context[:, tc - 1], actions[:, tc - 1], state, codebook)  # frame Tc
        latents, logits, indices, continuous = [], [], [], []
        for k in range(horizon):
            if k > 0:  # open loop: the previous prediction is the input
                out, state, z_hat = self._predict(latents[-1], actions[:, tc + k - 1], state, codebook)
            continuous.append(z_hat)
            if self.predicts_tokens:
                z, chosen = codes_to_latent(out, codebook, feedback, self.groups)
                logits.append(out)
                indices.append(chosen)
            else:
                z = out
            latents.append(z)
        if not self.predicts_tokens:
            return Rollout(torch.stack(latents, dim=1), None, None)
        return Rollout(
            torch.stack(latents, dim=1),
            torch.stack(logits, dim=1),
            torch.stack(indices, dim=1),
            torch.stack(continuous, dim=1) if self.token_head == "distance" else None,
        )

    def _codebook(self, codebook: torch.Tensor | None) -> torch.Tensor:
        if codebook is None:
            raise ValueError("output='tokens' needs the codebook (the VQ-VAE's embedding weight, G*K x C/G)")
        return codebook
