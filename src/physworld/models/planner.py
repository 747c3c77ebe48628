"""Model-predictive control in the learned latent space: the cross-entropy method over imagined action sequences
(PlaNet: Hafner et al., 2019, "Learning Latent Dynamics for Planning from Pixels", section 3 and appendix).

At every real step, from each environment's model state (z, hidden), `cem_plan`:

1. keeps a Gaussian over action sequences (horizon H, action size A), mean 0 and std 1 at first;
2. draws `candidates` sequences from it, clipped to the action range [-1, 1];
3. imagines each one with the frozen dynamics and scores it by its discounted predicted rewards
   sum_k gamma^k r(z_{k+1}), plus gamma^H v(s_H) where a value function is given (PlaNet's planner has none; a
   critic's value extends the horizon past H, as in the agent's lambda-return);
4. refits the Gaussian's mean and std to the `elites` best-scoring sequences; repeats steps 2-4 `iterations`
   times and acts the mean's first action (PlaNet replans from scratch at every step: no warm start).

All environments plan at once: their candidates are one batch of B * candidates imagined trajectories.
The model is given as three functions, so that the planner knows nothing of phases or checkpoints:

  step(z (N, ...), action (N, A), state) -> (z', state')   the dynamics, one imagined step
  reward(z (N, ...)) -> (N,)                               the reward of the state an action led to
  value(z (N, ...), state) -> (N,)                         optional: the value of the last imagined state

`state` is a list of tensors whose first dimension is N (the ConvGRU's hidden state per layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

State = list[torch.Tensor]


@dataclass(frozen=True)
class PlannerSettings:
    horizon: int = 12  # H: imagined steps per candidate sequence (PlaNet: 12)
    candidates: int = 500  # sequences drawn per iteration and environment (PlaNet: 1000)
    elites: int = 50  # best sequences the Gaussian is refitted to (PlaNet: 100)
    iterations: int = 5  # refits per real step (PlaNet: 10)
    gamma: float = 0.95  # discount of the imagined rewards (and of the terminal value)
    min_std: float = 0.05  # floor of the refitted std, so that the search never stops exploring entirely

    def __post_init__(self):
        if not 0 < self.elites <= self.candidates:
            raise ValueError(f"elites={self.elites}: accepted 1 to candidates={self.candidates}")


def cem_plan(
    step: Callable[[torch.Tensor, torch.Tensor, State], tuple[torch.Tensor, State]],
    reward: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    state: State,
    action_dim: int,
    settings: PlannerSettings,
    value: Callable[[torch.Tensor, State], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The first action (B, A) of the best action sequence found from each of B start states z (B, ...) and
    `state` (a list of (B, ...) tensors); see the module docstring."""
    s = settings
    b, n = z.shape[0], s.candidates
    mean = z.new_zeros(b, 1, s.horizon, action_dim)  # (B, 1, H, A): broadcasts over the candidates
    std = z.new_ones(b, 1, s.horizon, action_dim)
    # Every candidate starts from its environment's state: B*N rows, environment-major
    z0 = z.repeat_interleave(n, dim=0)  # (B*N, ...)
    state0 = [h.repeat_interleave(n, dim=0) for h in state]
    with torch.no_grad():
        for _ in range(s.iterations):
            noise = torch.randn(b, n, s.horizon, action_dim, device=z.device, dtype=z.dtype)
            actions = (mean + std * noise).clamp(-1.0, 1.0)  # (B, N, H, A)
            scores = _imagined_returns(step, reward, value, z0, state0, actions.flatten(0, 1), s.gamma)
            top = scores.view(b, n).topk(s.elites, dim=1).indices  # (B, E)
            elite = actions.gather(
                1, top[:, :, None, None].expand(-1, -1, s.horizon, action_dim)
            )  # (B, E, H, A)
            mean = elite.mean(dim=1, keepdim=True)
            std = elite.std(dim=1, keepdim=True, unbiased=False).clamp_min(s.min_std)
    return mean[:, 0, 0]  # (B, A)


def _imagined_returns(step, reward, value, z, state, actions: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted predicted return (M,) of action sequences (M, H, A) from start states z (M, ...), state."""
    total, discount = z.new_zeros(z.shape[0]), 1.0
    for k in range(actions.shape[1]):
        z, state = step(z, actions[:, k], state)
        total = total + discount * reward(z)
        discount *= gamma
    if value is not None:
        total = total + discount * value(z, state)
    return total
