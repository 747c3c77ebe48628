"""Goal reach: a point-mass agent pushed by a 2-D force inside a walled box, and a goal ring it should reach.

This module holds the physics, the drawing and the reward of the agent environment
(`physworld.envs.goal_reach.GoalReachEnv`), vectorised over N agents; the environment calls the same
functions with N = 1, so a dataset sequence and an episode with the same actions give the same bytes.

Physics (pixels, time unit one frame = one environment step), `substeps` semi-implicit Euler sub-steps of
h = 1 / substeps per frame:

    v += h (force_scale * a / mass - drag * v)      a = action clipped to [-1, 1]^2, held for the frame
    v *= min(1, max_speed / |v|)                    speed cap
    x += h v

then the walls: an agent centre past [r, 64 - r] on an axis is reflected back inside, its overshoot and
that velocity component scaled by -restitution (0: the agent stops at the wall, 1: elastic). With no
force the speed decays as exp(-drag t); a constant push gives the terminal speed force_scale / (mass drag).

Reward: r = -|agent - goal| / 64 (centre distance in units of the box side, in [-sqrt(2), 0]).

Dataset conventions, per sequence (the reward predictor relies on them):

- states[t] and frames[t] are the state at frame t (`STATE_NAMES`); the goal does not move;
- actions[t] (float32 (T, 2), in [-1, 1]) is applied after frame t is observed and produces frame t + 1;
  the last action actions[T-1] is what the policy chose at the last frame, its result is not stored;
- rewards[t] = -|agent(t) - goal| / 64 is the reward of the state in frame t (so rewards[0] comes from the
  initial state, before any action).

The environment returns, for `step(a_t)`, the observation of frame t + 1 and its reward, i.e. rewards[t + 1]
in the dataset convention. Every sequence starts at rest with agent and goal uniform in the box.

Policies: each sequence is driven either by a random policy -- an Ornstein-Uhlenbeck force, correlated
over about 1 / ou_theta frames so that the agent travels instead of jittering in place -- or, for a
fraction `scripted_fraction` of sequences, by `oracle_action` plus Gaussian noise of std `scripted_noise`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from physworld.data.render import SIZE, blank, draw_discs, to_uint8
from physworld.data.scenes.base import Scene

VERSION = 2  # 2: a responsive agent (drag 0.5, force 1.5, cap 4) and physics-aware oracle gains
ACTION_DIM = 2
RING_WIDTH = 1.5  # width of the goal ring, pixels (inside its radius)
BACKGROUND = np.array([0.04, 0.04, 0.04], np.float32)
AGENT_COLOR = np.array([1.0, 0.55, 0.15], np.float32)  # orange disc
GOAL_COLOR = np.array([0.3, 1.0, 0.4], np.float32)  # green ring

STATE_NAMES = ("agent_x", "agent_y", "agent_vx", "agent_vy", "goal_x", "goal_y")
POSITIONS = ((0, 1), (4, 5))  # agent, goal; their colours are params["object_colors"][:, 0] and [:, 1]


class Physics(NamedTuple):
    """The world's constants; the defaults are the environment's (pixels, frames)."""

    mass: float = 1.0  # agent mass
    drag: float = 0.5  # linear friction rate, 1/frame (velocity forgets its past in ~2 frames)
    force_scale: float = 1.5  # force of a unit action, pixels/frame^2 at mass 1 (terminal speed 3 px/frame)
    max_speed: float = 4.0  # speed cap, pixels/frame (bites on diagonal pushes only)
    restitution: float = 0.5  # wall bounce: fraction of the normal velocity kept (0 stops, 1 elastic)
    substeps: int = 4  # integration sub-steps per frame
    agent_radius: float = 3.0  # agent disc radius, pixels
    goal_radius: float = 4.5  # goal ring outer radius, pixels


def physics_from(params: dict) -> Physics:
    """The Physics named in a scene config; missing keys take the environment's defaults."""
    return Physics(**{k: type(d)(params[k]) for k, d in Physics._field_defaults.items() if k in params})


def step(pos: np.ndarray, vel: np.ndarray, action: np.ndarray, physics: Physics):
    """Advance N agents by one frame. pos, vel (N, 2) float64 pixels, pixels/frame; action (N, 2).
    Returns the new (pos, vel), float64 (N, 2)."""
    h = 1.0 / physics.substeps
    force = physics.force_scale * np.clip(np.asarray(action, np.float64), -1.0, 1.0)  # (N, 2)
    lo, hi = physics.agent_radius, SIZE - physics.agent_radius  # walls for the centre
    e = physics.restitution
    pos, vel = np.array(pos, np.float64), np.array(vel, np.float64)
    for _ in range(physics.substeps):
        vel = vel + h * (force / physics.mass - physics.drag * vel)
        speed = np.sqrt((vel * vel).sum(-1, keepdims=True))  # (N, 1)
        vel = vel * np.minimum(1.0, physics.max_speed / np.maximum(speed, 1e-12))
        pos = pos + h * vel
        below, above = pos < lo, pos > hi
        pos = np.where(below, lo + e * (lo - pos), np.where(above, hi - e * (pos - hi), pos))
        vel = np.where(below | above, -e * vel, vel)
        pos = np.clip(pos, lo, hi)  # only matters for an overshoot longer than the box
    return pos, vel


def reward(agent_pos: np.ndarray, goal_pos: np.ndarray) -> np.ndarray:
    """-(centre distance) / 64 for positions (..., 2) -> (...), float64."""
    d = np.asarray(agent_pos, np.float64) - np.asarray(goal_pos, np.float64)
    return -np.sqrt((d * d).sum(-1)) / SIZE


ORACLE_STIFFNESS = 0.45  # 1/frame^2: the oracle's closed-loop stiffness near the goal (omega ~ 0.67 / frame)


def oracle_gains(physics: Physics) -> tuple[float, float]:
    """PD gains (kp, kd) that make the unsaturated closed loop critically damped for these physics:
    stiffness force_scale kp / mass = ORACLE_STIFFNESS, damping force_scale kd / mass + drag = 2 sqrt(stiffness)."""
    per_unit = physics.force_scale / physics.mass  # acceleration of a unit action
    kp = ORACLE_STIFFNESS / per_unit
    kd = max(0.0, 2.0 * np.sqrt(ORACLE_STIFFNESS) - physics.drag) / per_unit
    return kp, float(kd)


def oracle_action(agent_pos, agent_vel, goal_pos, physics: Physics | None = None) -> np.ndarray:
    """A proportional-derivative controller that steers straight at the goal, for (..., 2) arrays.

    u = kp (goal - pos) - kd vel, scaled down (never rotated) so both components lie in [-1, 1], with the
    gains of `oracle_gains(physics)` (default Physics: kp 0.3, kd 0.56): near the goal the loop is critically
    damped; far away the push saturates and the agent heads straight for the goal.
    """
    kp, kd = oracle_gains(physics or Physics())
    pos, vel, goal = (np.asarray(a, np.float64) for a in (agent_pos, agent_vel, goal_pos))
    u = kp * (goal - pos) - kd * vel
    u = u / np.maximum(1.0, np.abs(u).max(-1, keepdims=True))
    return u.astype(np.float32)


def initial_state(rng: np.random.Generator, n: int, physics: Physics):
    """Agent and goal centres uniform in the box (each at least its radius from the walls), agent at rest.
    Returns pos, vel, goal, each float64 (N, 2)."""
    ra, rg = physics.agent_radius, physics.goal_radius
    pos = rng.uniform(ra, SIZE - ra, size=(n, 2))
    goal = rng.uniform(rg, SIZE - rg, size=(n, 2))
    return pos, np.zeros((n, 2)), goal


def render(agent_pos: np.ndarray, goal_pos: np.ndarray, physics: Physics) -> np.ndarray:
    """uint8 frames (N, 64, 64, 3) of agents at agent_pos (N, 2) and goal rings at goal_pos (N, 2)."""
    n = agent_pos.shape[0]
    canvas = blank(n, BACKGROUND)
    # The ring is the goal's disc with a background-coloured disc over its middle; the agent goes on top.
    centres = np.stack([goal_pos, goal_pos, agent_pos], axis=1)  # (N, 3, 2)
    radii = np.tile(
        np.array([physics.goal_radius, physics.goal_radius - RING_WIDTH, physics.agent_radius], np.float32),
        (n, 1),
    )  # (N, 3)
    colors = np.broadcast_to(np.stack([GOAL_COLOR, BACKGROUND, AGENT_COLOR]), (n, 3, 3))
    draw_discs(canvas, centres, radii, colors)
    return to_uint8(canvas)


def ou_actions(rng: np.random.Generator, n: int, num_frames: int, theta: float, sigma: float) -> np.ndarray:
    """Ornstein-Uhlenbeck forces (N, T, 2): stationary std sigma, correlation exp(-theta) per frame,
    clipped to [-1, 1]."""
    decay = np.exp(-theta)
    kick = sigma * np.sqrt(1.0 - decay**2)  # keeps the variance at sigma^2
    a = np.empty((n, num_frames, ACTION_DIM))
    a[:, 0] = sigma * rng.standard_normal((n, ACTION_DIM))
    for t in range(1, num_frames):
        a[:, t] = decay * a[:, t - 1] + kick * rng.standard_normal((n, ACTION_DIM))
    return np.clip(a, -1.0, 1.0)


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    physics = physics_from(params)
    pos, vel, goal = initial_state(rng, n, physics)
    random_actions = ou_actions(rng, n, num_frames, float(params["ou_theta"]), float(params["ou_sigma"]))
    scripted = rng.random(n) < float(params["scripted_fraction"])  # (N,) sequences steered at the goal
    noise = float(params["scripted_noise"]) * rng.standard_normal((n, num_frames, ACTION_DIM))

    states = np.empty((n, num_frames, len(STATE_NAMES)))
    actions = np.empty((n, num_frames, ACTION_DIM), np.float32)
    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    for t in range(num_frames):
        states[:, t] = np.concatenate([pos, vel, goal], axis=-1)
        frames[:, t] = render(pos, goal, physics)
        steer = np.clip(oracle_action(pos, vel, goal, physics) + noise[:, t], -1.0, 1.0)
        actions[:, t] = np.where(scripted[:, None], steer, random_actions[:, t])
        pos, vel = step(pos, vel, actions[:, t], physics)  # float32 actions, exactly as the env gets them

    colors = np.broadcast_to(np.stack([AGENT_COLOR, GOAL_COLOR]), (n, 2, 3)).copy()  # (N, K=2, 3)
    radius = np.tile(np.array([physics.agent_radius, physics.goal_radius], np.float32), (n, 1))  # (N, 2)
    return Scene(
        frames=frames,
        states=states.astype(np.float32),
        params={
            "object_colors": colors,
            "radius": radius,
            "background": np.tile(BACKGROUND, (n, 1)),
            "scripted": scripted,
        },
        actions=actions,
        rewards=reward(states[..., 0:2], states[..., 4:6]).astype(np.float32),
    )
