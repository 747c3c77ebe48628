"""Bouncing balls under gravity: two discs fall with constant acceleration g (+y, downwards) and bounce
elastically off the four walls and off each other.

Physics, integrated in float64 with a fixed number of sub-steps per frame (time unit: one frame):

- free flight is the exact ballistic step x += v h + a h^2 / 2, v += a h (exact for constant acceleration,
  so no integrator drift);
- a wall is hit at the exact crossing time inside the sub-step (root of the ballistic quadratic), where the
  normal velocity is reversed and flight goes on for the rest of the sub-step -- so wall bounces conserve
  kinetic plus potential energy exactly (a naive "mirror the overshoot" bounce gains 2 m g * overshoot);
- after each sub-step, every overlapping and approaching pair gets the exact two-body elastic impulse along
  the line of centres, J = 2 m_i m_j / (m_i + m_j) * (v_j - v_i) . n, which conserves momentum and kinetic
  energy exactly. Positions are not pushed apart (that would change the potential energy); with small
  sub-steps the overlap is a fraction of a pixel. Gravity acts equally on both balls, so it does not
  change their relative motion.

Masses are proportional to the disc area (m = r^2), so balls of different sizes have different masses.
`simulate` also drives `multi_ball` (no gravity, a variable number of balls).
"""

from __future__ import annotations

import numpy as np

from physworld.data.render import SIZE, blank, draw_discs, random_colors, to_uint8
from physworld.data.scenes.base import Scene, uniform

VERSION = 1
NUM_BALLS = 2
MAX_BOUNCES = 4  # wall hits resolved exactly per sub-step and axis; more only for a ball skimming a wall


def state_names(num_balls: int) -> tuple[str, ...]:
    return tuple(f"ball{k}_{q}" for k in range(num_balls) for q in ("x", "y", "vx", "vy"))


STATE_NAMES = state_names(NUM_BALLS)
POSITIONS = tuple((4 * k, 4 * k + 1) for k in range(NUM_BALLS))


def fly(p, v, a, h, lo, hi):
    """Advance the 1-D motion p'' = a (a >= 0) by time h inside [lo, hi], with elastic reflection at the
    exact time a wall is reached. All arrays broadcast together; returns the new (p, v)."""
    left = np.broadcast_to(np.float64(h), np.broadcast(p, v, a, lo, hi).shape).copy()  # time still to fly
    safe_a = np.where(a > 0, a, 1.0)
    for _ in range(MAX_BOUNCES):
        p_end = p + v * left + 0.5 * a * left**2
        # The lower wall is also crossed when the parabola dips below lo and comes back within the step.
        t_apex = np.clip(-v / safe_a, 0.0, left)
        p_min = np.minimum(p_end, np.where(a > 0, p + v * t_apex + 0.5 * a * t_apex**2, p_end))
        hit_hi = p_end > hi
        hit_lo = (p_min < lo) & ~hit_hi
        hit = hit_hi | hit_lo
        if not hit.any():
            break
        # Crossing times from the roots of p + v t + a t^2 / 2 = wall, in cancellation-free forms.
        d_hi = np.maximum(hi - p, 0.0)
        s_hi = np.sqrt(np.maximum(v * v + 2 * a * d_hi, 0.0))
        tau_hi = np.where(v > 0, 2 * d_hi / np.maximum(v + s_hi, 1e-300), (s_hi - v) / safe_a)
        d_lo = np.maximum(p - lo, 0.0)
        s_lo = np.sqrt(np.maximum(v * v - 2 * a * d_lo, 0.0))
        tau_lo = 2 * d_lo / np.maximum(s_lo - v, 1e-300)
        tau = np.clip(np.where(hit_hi, tau_hi, np.where(hit_lo, tau_lo, left)), 0.0, left)
        p = np.where(hit_hi, hi, np.where(hit_lo, lo, p + v * tau + 0.5 * a * tau**2))
        v = v + a * tau
        v = np.where(hit, -v, v)
        left = left - tau
    # Anything not yet flown (only after MAX_BOUNCES hits in one sub-step) finishes clamped to the box.
    p = np.clip(p + v * left + 0.5 * a * left**2, lo, hi)
    v = v + a * left
    return p, v


def collide(pos, vel, mass, radius, present) -> None:
    """Elastic impulses, in place, for every overlapping pair that is still approaching.

    pos, vel (N, K, 2); mass, radius (N, K); present (N, K) bool (absent balls never collide).
    """
    k = pos.shape[1]
    for i in range(k):
        for j in range(i + 1, k):
            d = pos[:, j] - pos[:, i]  # (N, 2) from i to j
            dist = np.sqrt((d * d).sum(-1))
            n = d / np.maximum(dist, 1e-12)[:, None]
            closing = ((vel[:, j] - vel[:, i]) * n).sum(-1)  # < 0 while approaching
            hit = (dist < radius[:, i] + radius[:, j]) & (closing < 0) & present[:, i] & present[:, j]
            mi, mj = mass[:, i], mass[:, j]
            impulse = np.where(hit, 2 * mi * mj / (mi + mj) * closing, 0.0)[:, None] * n  # (N, 2)
            vel[:, i] += impulse / mi[:, None]
            vel[:, j] -= impulse / mj[:, None]


def place_in_quadrants(rng, radius) -> np.ndarray:
    """Centres (N, K, 2) for K <= 4 balls, each in its own random quadrant of the canvas and at least its
    radius from the quadrant's edges, so no two balls overlap and none touches a wall at the start."""
    n, k = radius.shape
    quadrant = np.argsort(rng.random((n, 4)), axis=1)[:, :k]  # (N, K) distinct quadrants
    corner = np.stack([quadrant % 2, quadrant // 2], axis=-1) * (SIZE / 2)  # (N, K, 2)
    frac = rng.random((n, k, 2))
    r = radius[..., None]
    return corner + r + frac * (SIZE / 2 - 2 * r)


def random_velocities(rng, speed_range, n, k) -> np.ndarray:
    """(N, K, 2) velocities with uniform speed in the range and a uniform direction."""
    speed = uniform(rng, speed_range, n, k).astype(np.float64)
    angle = rng.uniform(0.0, 2 * np.pi, size=(n, k))
    return np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=-1)


def simulate(pos, vel, mass, radius, gravity, present, num_frames, substeps) -> np.ndarray:
    """Integrate the balls and return float64 states (N, T, K, 4) as (x, y, vx, vy) at every frame.

    pos, vel (N, K, 2); mass, radius (N, K); gravity (N,) in px/frame^2 along +y; present (N, K) bool.
    """
    n, k = radius.shape
    h = 1.0 / substeps
    accel = np.zeros((n, k, 2))
    accel[..., 1] = gravity[:, None]
    lo = radius[..., None]  # walls for the centre: [r, SIZE - r] on both axes, (N, K, 1)
    hi = SIZE - lo
    pos, vel = pos.copy(), vel.copy()
    states = np.empty((n, num_frames, k, 4))
    for t in range(num_frames):
        if t > 0:
            for _ in range(substeps):
                pos, vel = fly(pos, vel, accel, h, lo, hi)
                collide(pos, vel, mass, radius, present)
        states[:, t] = np.concatenate([pos, vel], axis=-1)
    return states


def render(states, radius, colors, present, background) -> np.ndarray:
    """uint8 frames (N, T, 64, 64, 3) from states (N, T, K, 4); absent balls (NaN states) are not drawn."""
    n, num_frames = states.shape[:2]
    centres = np.nan_to_num(states[..., :2], nan=SIZE / 2)  # (N, T, K, 2); absent balls are invisible anyway
    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    empty = blank(n, background)  # filled once: per-sequence colours make blank() slow, copies are cheap
    for t in range(num_frames):
        canvas = empty.copy()
        draw_discs(canvas, centres[:, t], radius, colors, present)
        frames[:, t] = to_uint8(canvas)
    return frames


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    k = NUM_BALLS
    radius = uniform(rng, params["radius"], n, k)
    mass = radius**2  # mass proportional to the disc's area
    gravity = uniform(rng, params["gravity"], n)
    colors = random_colors(rng, (n, k))
    background = uniform(rng, params["background"], n, 3)
    pos = place_in_quadrants(rng, radius.astype(np.float64))
    vel = random_velocities(rng, params["speed"], n, k)
    present = np.ones((n, k), bool)

    mass64, radius64, gravity64 = (a.astype(np.float64) for a in (mass, radius, gravity))
    states = simulate(pos, vel, mass64, radius64, gravity64, present, num_frames, int(params["substeps"]))
    frames = render(states, radius, colors, present, background)
    return Scene(
        frames=frames,
        states=states.reshape(n, num_frames, 4 * k).astype(np.float32),
        params={
            "object_colors": colors,
            "radius": radius,
            "mass": mass,
            "gravity": gravity,
            "background": background,
        },
    )
