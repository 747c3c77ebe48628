"""Any Gymnasium environment as the agent sees it: rendered pixels in, the model's actions out.

`PixelEnv` wraps the environment of dataset=gym (`data.sources.gym.open_env`) so that `run_episodes` plays it
like GoalReachEnv: observations are its rendered frames resized to uint8 (64, 64, 3) (as the dataset's frames),
actions are the model's, in [-1, 1] with 2 columns, mapped onto the environment's action box as in the dataset
(`to_env_action`: the columns past the box's size are not played), and each info holds "state", the true
observation flattened (what a reference controller reads).

`REFERENCE_CONTROLLERS` holds, per environment id, a controller on the true state that is the oracle baseline
of evaluations in it: state (E, S) -> actions (E, A) in [-1, 1].
"""

from __future__ import annotations

import numpy as np

from physworld.data.cache import ACTION_DIM
from physworld.data.sources.gym import open_env, rendered, to_env_action
from physworld.envs.pendulum import pendulum_swing_up

REFERENCE_CONTROLLERS = {"Pendulum-v1": pendulum_swing_up}


class PixelEnv:
    """`env_id` with pixel observations and model-range actions; `max_steps` caps an episode (None: the
    environment's own limit, e.g. 200 for Pendulum-v1)."""

    def __init__(self, env_id: str, max_steps: int | None = None):
        from gymnasium.spaces import flatten

        self._flatten = flatten
        self.env = open_env(env_id, max_steps=max_steps)
        self.action_dim = int(self.env.action_space.shape[0])  # the model's columns the environment plays

    def reset(self, seed: int | None = None):
        obs, _ = self.env.reset(seed=seed)
        return rendered(self.env), self._info(obs)

    def step(self, action: np.ndarray):
        action = np.asarray(action, np.float64).reshape(ACTION_DIM)
        obs, reward, terminated, truncated, _ = self.env.step(to_env_action(action, self.env.action_space))
        return rendered(self.env), float(reward), bool(terminated), bool(truncated), self._info(obs)

    def close(self) -> None:
        self.env.close()

    def _info(self, obs) -> dict:
        return {"state": self._flatten(self.env.observation_space, obs).astype(np.float64)}


class ReferencePolicy:
    """A reference controller (REFERENCE_CONTROLLERS) as a policy of run_episodes: it reads each info's "state"
    and pads its actions to the model's 2 columns."""

    def __init__(self, controller):
        self.controller = controller

    def reset(self, num_envs: int) -> None:
        pass

    def __call__(self, observations: np.ndarray, infos: list[dict]) -> np.ndarray:
        actions = self.controller(np.stack([i["state"] for i in infos]))
        out = np.zeros((len(infos), ACTION_DIM), np.float32)
        out[:, : actions.shape[1]] = actions
        return out
