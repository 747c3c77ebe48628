"""Two tiny Gymnasium environments for tests/test_gym_source.py, registered when this module is imported, as a
package's environments are: `gym.make("tests.gym_envs:PhysworldDot-v0")` imports it first."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class DotEnv(gym.Env):
    """A dot pushed by a 2-D action on a 24x40 canvas: continuous actions, rgb_array rendering."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(0.2, 0.8, 2).astype(np.float32)
        return self.pos.copy(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + 0.05 * np.asarray(action, np.float32), 0.0, 1.0).astype(np.float32)
        return self.pos.copy(), float(-self.pos.sum()), False, False, {}

    def render(self):
        frame = np.zeros((24, 40, 3), np.uint8)
        frame[int(self.pos[1] * 23), int(self.pos[0] * 39)] = 255
        return frame


class NoRenderEnv(DotEnv):
    """The same dot, drawn only for a human: no rgb_array."""

    metadata = {"render_modes": ["human"]}


for name, cls in (("PhysworldDot-v0", DotEnv), ("PhysworldNoRender-v0", NoRenderEnv)):
    if name not in gym.registry:
        gym.register(id=name, entry_point=cls, max_episode_steps=100)
