"""Model-predictive control in the learned latent space: the cross-entropy method over imagined action sequences
(PlaNet: Hafner et al., 2019, "Learning Latent Dynamics for Planning from Pixels", section 3 and appendix), warm
started from the previous step's plan (as TD-MPC: Hansen et al., 2022, section 3.2, and iCEM: Pinneri et al.,
2020, which also keep the best sequence found so far among the candidates).

At every real step, from each environment's model state (z, hidden), `cem_plan`:

1. keeps a Gaussian over action sequences (horizon H, action size A) of std 1; its mean is 0, or with a warm
   start the previous real step's plan shifted by one step (`shifted`: the step just played dropped, a 0 appended);
2. draws `candidates` sequences from it, clipped to the action range [-1, 1]; the first candidate of every
   iteration is the mean itself, so the plan kept is never worse under the model than the one it started from;
3. imagines each one with the frozen dynamics and scores it by its discounted predicted rewards
   sum_k gamma^k r(z_{k+1}), plus gamma^H v(s_H) where a value function is given (PlaNet's planner has none; a
   critic's value extends the horizon past H, as in the agent's lambda-return);
4. refits the Gaussian's mean and std to the `elites` best-scoring sequences; repeats steps 2-4 `iterations`
   times and acts the mean's first action. It returns the mean too, for the next step's warm start.

The cost is candidates x horizon x iterations imagined steps per environment and real step: with a warm start
the search carries over from step to step, so fewer candidates and iterations find a plan a cold start needs
more for (docs/results.md has the timings). All environments plan at once: their candidates are one batch of
B * candidates imagined trajectories. The model is given as three functions, so that the planner knows nothing
of phases or checkpoints:

  step(z (N, ...), action (N, A), state) -> (z', state')   the dynamics, one imagined step
  reward(z (N, ...)) -> (N,)                               the reward of the state an action led to
  value(z (N, ...), state) -> (N,)                         optional: the value of the last imagined state

`state` is a list of tensors whose first dimension is N (the ConvGRU's hidden state per layer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

State = list[torch.Tensor]


class Plan(NamedTuple):
    """The planner's answer for B environments."""

    action: torch.Tensor  # (B, A) the first action of the mean sequence: the one to play
    mean: torch.Tensor  # (B, H, A) the mean sequence the search ended at (shifted: next step's warm start)


@dataclass(frozen=True)
class PlannerSettings:
    # Per real step the search imagines candidates x horizon x iterations steps per environment. PlaNet's 12, 1000,
    # 100 and 10 (horizon, candidates, elites, iterations) and TD-MPC's 5, 512, 64 and 6 are sizes for a GPU; a
    # warm start carries the search over from step to step, so fewer candidates do on a CPU, and the budget goes
    # to the horizon (docs/results.md: on goal_reach the horizon mattered, the number of candidates did not).
    horizon: int = 10  # H: imagined steps per candidate sequence (a terminal value takes over after them)
    candidates: int = 16  # sequences drawn per iteration and environment
    elites: int = 2  # best sequences the Gaussian is refitted to
    iterations: int = 2  # refits per real step
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
    mean: torch.Tensor | None = None,
) -> Plan:
    """The plan from each of B start states z (B, ...) and `state` (a list of (B, ...) tensors): its first action
    (B, A) and its mean sequence (B, H, A). `mean` (B, H, A): where the search starts (a warm start: the previous
    step's plan, `shifted`); None: at 0. See the module docstring."""
    s = settings
    b, n = z.shape[0], s.candidates
    if mean is None:
        mean = z.new_zeros(b, s.horizon, action_dim)
    mean = mean[:, None].to(z.dtype)  # (B, 1, H, A): broadcasts over the candidates
    std = torch.ones_like(mean)
    # Every candidate starts from its environment's state: B*N rows, environment-major
    z0 = z.repeat_interleave(n, dim=0)  # (B*N, ...)
    state0 = [h.repeat_interleave(n, dim=0) for h in state]
    with torch.no_grad():
        for _ in range(s.iterations):
            noise = torch.randn(b, n, s.horizon, action_dim, device=z.device, dtype=z.dtype)
            noise[:, 0] = 0.0  # candidate 0: the mean itself
            actions = (mean + std * noise).clamp(-1.0, 1.0)  # (B, N, H, A)
            scores = _imagined_returns(step, reward, value, z0, state0, actions.flatten(0, 1), s.gamma)
            top = scores.view(b, n).topk(s.elites, dim=1).indices  # (B, E)
            elite = actions.gather(
                1, top[:, :, None, None].expand(-1, -1, s.horizon, action_dim)
            )  # (B, E, H, A)
            mean = elite.mean(dim=1, keepdim=True)
            std = elite.std(dim=1, keepdim=True, unbiased=False).clamp_min(s.min_std)
    return Plan(action=mean[:, 0, 0], mean=mean[:, 0])


def shifted(mean: torch.Tensor) -> torch.Tensor:
    """A plan's mean sequence (B, H, A) one real step later: its first action (played) dropped, 0 appended."""
    return torch.cat([mean[:, 1:], torch.zeros_like(mean[:, :1])], dim=1)


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
