"""Run policies in a real environment: seeded episodes in lockstep, returns and (in GoalReach) trajectories.

A policy is an object with `reset(num_envs)` and `__call__(observations uint8 (E, 64, 64, 3), infos) ->
actions (E, 2)`, where `infos` is the list of each env's info dict. The policies every evaluation reports side
by side: the learned ones (physworld.envs.agent), `RandomPolicy` (uniform actions) and an
oracle: in GoalReach `OraclePolicy` (steers straight at the goal from the true state), in a Gymnasium
environment its reference controller (physworld.envs.gym_pixels), where it has one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from physworld.data.scenes.goal_reach import Physics
from physworld.envs.goal_reach import GoalReachEnv, oracle_action


@dataclass
class Episodes:
    returns: np.ndarray  # (E,) sum of rewards
    positions: np.ndarray | None  # (E, S + 1, 2) agent centre per step, pixels (GoalReach; None elsewhere)
    goals: np.ndarray | None  # (E, 2) goal centre (GoalReach; None elsewhere)
    frames: np.ndarray  # (S + 1, 64, 64, 3) uint8 observations of the first episode
    policy_seconds: float = 0.0  # wall time spent in the policy's calls (choosing the actions, all episodes)
    actions_taken: int = 0  # actions the policy chose: steps x episodes

    def summary(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}": float(self.returns.mean()), f"{prefix}_std": float(self.returns.std())}

    @property
    def ms_per_action(self) -> float:
        """Milliseconds the policy took per action, its batched calls (all episodes at once) shared evenly."""
        return 1000.0 * self.policy_seconds / max(self.actions_taken, 1)


class RandomPolicy:
    """Actions uniform in [-1, 1]; `mask` (2,) zeroes the columns an environment does not play (as its dataset)."""

    def __init__(self, seed: int = 0, mask: np.ndarray | None = None):
        self.rng = np.random.default_rng(seed)
        self.mask = np.ones(2, np.float32) if mask is None else np.asarray(mask, np.float32)

    def reset(self, num_envs: int) -> None:
        pass

    def __call__(self, observations: np.ndarray, infos: list[dict]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=(len(infos), 2)).astype(np.float32) * self.mask


class OraclePolicy:
    """Steers straight at the goal using the true position and velocity (the env's `oracle_action`, with the
    gains of the environment's physics: pass the same `physics` as the environment's, default its defaults)."""

    def __init__(self, physics: Physics | None = None):
        self.physics = physics

    def reset(self, num_envs: int) -> None:
        pass

    def __call__(self, observations: np.ndarray, infos: list[dict]) -> np.ndarray:
        pos = np.stack([i["agent_pos"] for i in infos])
        vel = np.stack([i["agent_vel"] for i in infos])
        goal = np.stack([i["goal_pos"] for i in infos])
        return oracle_action(pos, vel, goal, self.physics)


def run_episodes(policy, seeds: list[int], env_kwargs: dict | None = None, make_env=None) -> Episodes:
    """One full episode per seed, all environments stepped together so the policy sees a batch, until the first
    ends. The environments are GoalReachEnv(**env_kwargs), or `make_env()`'s (e.g. a gym_pixels.PixelEnv)."""
    make_env = make_env or (lambda: GoalReachEnv(**(env_kwargs or {})))
    envs = [make_env() for _ in seeds]
    pairs = [env.reset(seed=int(s)) for env, s in zip(envs, seeds)]
    observations = np.stack([p[0] for p in pairs])
    infos = [p[1] for p in pairs]
    policy.reset(len(envs))
    returns = np.zeros(len(envs))
    tracked = "agent_pos" in infos[0]  # GoalReach's infos say where the agent and its goal are
    positions, frames = [np.stack([i["agent_pos"] for i in infos]) if tracked else None], [observations[0]]
    done, seconds, taken = False, 0.0, 0
    while not done:
        start = time.perf_counter()
        actions = np.asarray(policy(observations, infos), np.float32)
        seconds += time.perf_counter() - start
        taken += len(envs)
        results = [env.step(a) for env, a in zip(envs, actions)]
        observations = np.stack([r[0] for r in results])
        returns += np.array([r[1] for r in results])
        infos = [r[4] for r in results]
        done = any(r[2] or r[3] for r in results)
        positions.append(np.stack([i["agent_pos"] for i in infos]) if tracked else None)
        frames.append(observations[0])
    for env in envs:
        env.close()
    return Episodes(
        returns=returns,
        positions=np.stack(positions, axis=1) if tracked else None,
        goals=np.stack([i["goal_pos"] for i in infos]) if tracked else None,
        frames=np.stack(frames),
        policy_seconds=seconds,
        actions_taken=taken,
    )
