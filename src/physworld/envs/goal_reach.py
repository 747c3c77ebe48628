"""GoalReachEnv: push a point-mass agent to a goal ring in a walled 64x64 box, seen only as pixels.

The physics, drawing and reward are those of the `goal_reach` dataset
(`physworld.data.scenes.goal_reach`, whose docstring states the equations and the frame / action / reward
conventions), called here with N = 1: an episode and a dataset sequence with the same start and actions
give byte-identical frames.

- observation: uint8 (64, 64, 3) RGB, an orange agent disc and a green goal ring on a near-black background;
- action: float32 (2,) in [-1, 1], the force (x right, y down) held for one step; values outside are clipped;
- reward of `step(a)`: -|agent - goal| / 64 of the state after the step (64 = the box side, not the diagonal),
  so it lies in [-sqrt(2), 0];
- episodes: agent and goal uniform in the box, agent at rest; no termination (reaching the goal does not end
  the episode, the agent should stay there), truncation after `max_steps` = 100 steps, so returns of
  different policies are sums over the same 100 rewards;
- info: "agent_pos", "agent_vel", "goal_pos", float64 (2,) copies in pixels and pixels/step, and "step".

`reset(options={"agent_pos": ..., "agent_vel": ..., "goal_pos": ...})` places the agent and goal instead of
drawing them (any subset of the keys), e.g. to replay a dataset sequence.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from physworld.data.render import SIZE
from physworld.data.scenes import goal_reach as world
from physworld.data.scenes.goal_reach import oracle_action

__all__ = ["GoalReachEnv", "oracle_action"]

_DEFAULTS = world.Physics()  # the signature's defaults are the physics' own, never a second copy


class GoalReachEnv(gym.Env):
    """A point mass in a walled box, rewarded for being near a goal; pixel observations.

    Args (pixels, steps; defaults as in `physworld.data.scenes.goal_reach.Physics`):
        mass: agent mass (1.0); the acceleration is force_scale * action / mass.
        drag: linear friction rate per step (0.5); with no force the speed decays as exp(-drag t).
        force_scale: force of a unit action (1.5), pixels/step^2 at mass 1; a full push on one axis gives
            the terminal speed force_scale / (mass drag) = 3 pixels/step.
        max_speed: speed cap (4.0 pixels/step; only a diagonal push reaches it).
        restitution: fraction of the normal velocity kept at a wall (0.5; 0 stops, 1 is elastic).
        substeps: integration sub-steps per step (4).
        agent_radius: agent disc radius (3.0 pixels).
        goal_radius: goal ring outer radius (4.5 pixels; the ring is 1.5 pixels wide).
        max_steps: steps before truncation (100). `gymnasium.make` also wraps it in a TimeLimit of 100.
        render_mode: None or "rgb_array" (`render()` returns the current observation).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        mass: float = _DEFAULTS.mass,
        drag: float = _DEFAULTS.drag,
        force_scale: float = _DEFAULTS.force_scale,
        max_speed: float = _DEFAULTS.max_speed,
        restitution: float = _DEFAULTS.restitution,
        substeps: int = _DEFAULTS.substeps,
        agent_radius: float = _DEFAULTS.agent_radius,
        goal_radius: float = _DEFAULTS.goal_radius,
        max_steps: int = 100,
        render_mode: str | None = None,
    ):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode={render_mode!r}: accepted None or 'rgb_array'")
        self.physics = world.Physics(
            mass=float(mass),
            drag=float(drag),
            force_scale=float(force_scale),
            max_speed=float(max_speed),
            restitution=float(restitution),
            substeps=int(substeps),
            agent_radius=float(agent_radius),
            goal_radius=float(goal_radius),
        )
        self.max_steps = int(max_steps)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (world.ACTION_DIM,), np.float32)
        self.pos = np.zeros((1, 2))  # (N=1, 2) agent centre, pixels
        self.vel = np.zeros((1, 2))  # (1, 2) pixels/step
        self.goal = np.full((1, 2), SIZE / 2)  # (1, 2) goal centre, pixels
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos, self.vel, self.goal = world.initial_state(self.np_random, 1, self.physics)
        options = options or {}
        for key, attr in (("agent_pos", "pos"), ("agent_vel", "vel"), ("goal_pos", "goal")):
            if key in options:
                setattr(self, attr, np.asarray(options[key], np.float64).reshape(1, 2).copy())
        self.steps = 0
        return self._observation(), self._info()

    def step(self, action):
        action = np.asarray(action, np.float32).reshape(1, world.ACTION_DIM)  # float32, as in the dataset
        self.pos, self.vel = world.step(self.pos, self.vel, action, self.physics)
        self.steps += 1
        reward = float(world.reward(self.pos, self.goal)[0])
        truncated = self.steps >= self.max_steps
        return self._observation(), reward, False, truncated, self._info()

    def render(self):
        return self._observation() if self.render_mode == "rgb_array" else None

    def _observation(self) -> np.ndarray:
        return world.render(self.pos, self.goal, self.physics)[0]  # (64, 64, 3) uint8

    def _info(self) -> dict:
        return {
            "agent_pos": self.pos[0].copy(),
            "agent_vel": self.vel[0].copy(),
            "goal_pos": self.goal[0].copy(),
            "step": self.steps,
        }
