"""The agent in the real environment: the policies that act from encoded observations through a trained agent
phase's world model (the actor, the planner), the environment an agent phase is scored in, and its scores beside
the random and oracle baselines on the same seeds (physworld.phases.rl evaluates with these; online.py collects
episodes with the actor).

`LatentPolicy` encodes each observation and keeps the ConvGRU's hidden state up to date with the real latents
and actions (as in imagination's start states); the actor acts tanh(mean), the planner plans in the model.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import torch

from physworld.data.scenes import goal_reach as world
from physworld.envs.episodes import Episodes, OraclePolicy, RandomPolicy, run_episodes
from physworld.models.planner import shifted

if TYPE_CHECKING:
    from physworld.phases.rl import RLPhase
    from physworld.phases.settings import RLSettings


class LatentPolicy:
    """The learned policy in the real environment: encode each observation, keep the ConvGRU's hidden state
    up to date with the real latents and actions (as in imagination's start states), act tanh(mean)."""

    def __init__(self, phase: RLPhase):
        self.phase = phase
        self.state: list[torch.Tensor] | None = None
        self.prev: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self, num_envs: int) -> None:
        self.state, self.prev = None, None

    def __call__(self, observations: np.ndarray, infos: list[dict]) -> np.ndarray:
        phase = self.phase
        x = torch.from_numpy(observations).to(phase.device).permute(0, 3, 1, 2).float().div_(255.0)
        z = phase.vqvae.encode(x)[0]  # (E, C, h, w)
        if self.prev is None:
            self.state = phase.dynamics.initial_state(z)
        else:
            self.state = phase.dynamics.advance(*self.prev, self.state)
        action = self.act(z, self.state)
        self.prev = (z, action)
        return action.float().cpu().numpy()

    def act(self, z: torch.Tensor, state: list[torch.Tensor]) -> torch.Tensor:
        return self.phase(z, state[-1])


class PlannerPolicy(LatentPolicy):
    """The planner in the real environment: the same encoding and hidden state as the actor's, then CEM in the
    model (RLPhase.plan) instead of the actor's tanh(mean). With phase.planner.warm_start, each step's search
    starts from the previous step's plan shifted by one step (models/planner.py: shifted); an episode's first
    from 0."""

    def __init__(self, phase: RLPhase):
        super().__init__(phase)
        self.mean: torch.Tensor | None = None  # (E, H, A) the previous step's plan, shifted

    def reset(self, num_envs: int) -> None:
        super().reset(num_envs)
        self.mean = None

    def act(self, z: torch.Tensor, state: list[torch.Tensor]) -> torch.Tensor:
        found = self.phase.plan(z, state, self.mean)
        if self.phase.settings.planner.warm_start:
            self.mean = shifted(found.mean)
        return found.action


# phase.eval_policies: the policy of each name, and its metric keys (return, regret, gap closed, ms per action);
# the actor's are the keys the agent phase has always logged, which phase.monitor and the report read.
POLICIES = {"actor": LatentPolicy, "planner": PlannerPolicy}
KEYS = {
    "actor": ("return_policy", "policy_regret", "gap_closed", "policy_ms_per_action"),
    "planner": ("return_planner", "planner_regret", "gap_closed_planner", "planner_ms_per_action"),
}


def environment(settings: RLSettings) -> tuple[dict, object | None]:
    """The real environment of an agent phase's evaluations, as run_episodes' keyword arguments, and its oracle
    policy (None where there is none): GoalReach with the dataset's physics (phase.env, defaults where absent),
    or with dataset=gym the Gymnasium environment phase.env_id seen through its rendered frames, with its
    reference controller where it has one."""
    if not settings.env_id:
        physics = world.physics_from(settings.env or {})
        return {"env_kwargs": physics._asdict()}, OraclePolicy(physics)
    from physworld.envs.gym_pixels import REFERENCE_CONTROLLERS, PixelEnv, ReferencePolicy

    controller = REFERENCE_CONTROLLERS.get(settings.env_id)
    oracle = ReferencePolicy(controller) if controller is not None else None
    return {"make_env": functools.partial(PixelEnv, settings.env_id, settings.eval_max_steps)}, oracle


def baselines(
    seeds: list[int], env: dict, oracle_policy, action_mask: np.ndarray
) -> tuple[dict[str, float], dict[str, Episodes]]:
    """The random policy's (and the oracle's, where there is one) returns on `seeds`, and their episodes."""
    random = run_episodes(RandomPolicy(seeds[0], action_mask), seeds, **env)
    summary, played = random.summary("return_random"), {"random": random}
    if oracle_policy is not None:
        played["oracle"] = run_episodes(oracle_policy, seeds, **env)
        summary.update(played["oracle"].summary("return_oracle"))
    return summary, played


def scores(baseline: dict[str, float], played: dict[str, Episodes]) -> dict[str, float]:
    """The baselines' returns and each policy's (`played`: name -> its episodes on the same seeds): return, ms
    per action, and with an oracle the share of the random-to-oracle gap closed and the regret."""
    out = dict(baseline)
    gap = out["return_oracle"] - out["return_random"] if "return_oracle" in out else None
    for name, episodes in played.items():
        ret, regret, closed, ms = KEYS[name]
        out.update(episodes.summary(ret))
        out[ms] = episodes.ms_per_action
        if gap is not None:
            out[closed] = (out[ret] - out["return_random"]) / gap if gap > 0 else float("nan")
            out[regret] = out["return_oracle"] - out[ret]
    return out
