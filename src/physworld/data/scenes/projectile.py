"""Projectile: a ball launched from near one bottom corner with a random elevation angle and speed flies
under gravity g (+y, downwards) and quadratic air drag, a = g y_hat - c |v| v, and bounces with restitution
off the floor and the two side walls of a box (the box keeps it in view; ranges keep it below the top).

Physics, in float64 with a fixed number of RK4 sub-steps per frame (time unit: one frame):

- flight integrates dv/dt = (0, g) - c |v| v, dx/dt = v with classical RK4 (exact when c = 0, where the
  path is the textbook parabola);
- a wall contact is detected at the end of a sub-step and timed inside it by the ballistic quadratic with
  the acceleration held constant (exact without drag; drag has no closed-form crossing time); there the
  normal velocity becomes -e * v_n (Newton's restitution law) and the ball flies back for the rest of the
  sub-step. A rebound too weak to leave the floor within a sub-step leaves the ball resting on it, where it
  slides, frictionless, towards a side wall.

The launch speed is drawn through the height a drag-free flight would reach (v_y^2 = 2 g apex), so every
sequence shows a tall arc that stays in view. The launch side (left or right) is random; the right-hand
launch is the mirror image of the left one.
"""

from __future__ import annotations

import numpy as np

from physworld.data.render import SIZE, blank, composite, random_colors, rect_alpha, to_uint8
from physworld.data.scenes.base import Scene, uniform

VERSION = 1
STATE_NAMES = ("ball_x", "ball_y", "ball_vx", "ball_vy")
POSITIONS = ((0, 1),)
FLOOR_GREY = 0.3  # brightness of the floor strip below floor_y


def acceleration(vx, vy, g, c):
    """(ax, ay) of gravity g (+y) plus quadratic drag -c |v| v."""
    speed = np.sqrt(vx * vx + vy * vy)
    return -c * speed * vx, g - c * speed * vy


def rk4_step(x, y, vx, vy, g, c, h):
    """One classical RK4 step of the flight ODE (no walls); all arrays (N,)."""
    a1x, a1y = acceleration(vx, vy, g, c)
    a2x, a2y = acceleration(vx + 0.5 * h * a1x, vy + 0.5 * h * a1y, g, c)
    a3x, a3y = acceleration(vx + 0.5 * h * a2x, vy + 0.5 * h * a2y, g, c)
    a4x, a4y = acceleration(vx + h * a3x, vy + h * a3y, g, c)
    # Position increments: the velocity at each RK stage is the previous stage's velocity estimate.
    x = x + h / 6 * (vx + 2 * (vx + 0.5 * h * a1x) + 2 * (vx + 0.5 * h * a2x) + (vx + h * a3x))
    y = y + h / 6 * (vy + 2 * (vy + 0.5 * h * a1y) + 2 * (vy + 0.5 * h * a2y) + (vy + h * a3y))
    vx = vx + h / 6 * (a1x + 2 * a2x + 2 * a3x + a4x)
    vy = vy + h / 6 * (a1y + 2 * a2y + 2 * a3y + a4y)
    return x, y, vx, vy


def bounce(p, v, a, wall, side, e, h):
    """Restitution bounce off `wall` for balls that ended a sub-step beyond it, moving outwards. `side` is
    +1 where outwards is +p (floor, right wall), -1 otherwise; a is the acceleration along p.

    Treating a as constant over the sub-step, the contact happened tau ago (root of the ballistic
    quadratic, run backwards); there the normal velocity becomes -e * v_contact and the ball flies back in
    for tau -- exact for constant acceleration (c = 0). A rebound too weak to leave the wall within tau
    leaves the ball resting against it."""
    over, out, acc = side * (p - wall), side * v, side * a  # overshoot, outward speed and acceleration
    hit = (over > 0) & (out > 0)
    over, out = np.maximum(over, 0.0), np.maximum(out, 1e-12)
    tau = np.clip(2 * over / (out + np.sqrt(np.maximum(out * out - 2 * acc * over, 0.0))), 0.0, h)
    rebound = -e * (out - acc * tau)
    # The outward position after flying back for tau: <= 0 (inside) unless the rebound is too weak.
    back = rebound * tau + 0.5 * acc * tau * tau
    rests = back > 0
    p = np.where(hit, wall + side * np.where(rests, 0.0, back), p)
    v = np.where(hit, side * np.where(rests, 0.0, rebound + acc * tau), v)
    return p, v


def simulate(x, y, vx, vy, g, c, e, r, floor_y, num_frames, substeps):
    """Integrate the box flight; every argument but the last three is (N,). Returns (N, T, 4) float64 of
    x, y, vx, vy per frame in px and px/frame."""
    h = 1.0 / substeps
    floor_c, right = floor_y - r, SIZE - r  # the centre's limits
    states = np.empty((x.shape[0], num_frames, 4))
    for t in range(num_frames):
        if t > 0:
            for _ in range(substeps):
                x, y, vx, vy = rk4_step(x, y, vx, vy, g, c, h)
                ax, ay = acceleration(vx, vy, g, c)
                y, vy = bounce(y, vy, ay, floor_c, 1.0, e, h)
                x, vx = bounce(x, vx, ax, r, -1.0, e, h)
                x, vx = bounce(x, vx, ax, right, 1.0, e, h)
        states[:, t] = np.stack([x, y, vx, vy], axis=-1)
    return states


def render_discs(empty: np.ndarray, centres: np.ndarray, radii: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Frames of K discs moving over a still background: what render.draw_discs paints on a copy of `empty`
    each frame, converted by render.to_uint8, but computed only in a small square window around each disc
    (the same float32 arithmetic as render.disc_alpha and render.composite on ~20x fewer pixels). Every disc
    must lie inside the canvas.

    empty (N, H, W, 3) float background; centres (N, T, K, 2); radii (N, K); colors (N, K, 3)
    -> uint8 (N, T, H, W, 3).
    """
    n, num_frames, k = centres.shape[:3]
    size = empty.shape[1]
    rmax = float(radii.max())
    p = min(int(np.ceil(2 * rmax + 3)) + 1, size)  # window side: every pixel centre within r + 0.5
    offs = np.arange(p)
    batch = np.arange(n)[:, None, None]
    frames = np.empty((n, num_frames, size, size, 3), np.uint8)
    frames[:] = to_uint8(empty)[:, None]
    canvas = empty.copy()
    for t in range(num_frames):
        windows = []
        for j in range(k):
            c = centres[:, t, j].astype(np.float32)  # (N, 2)
            corner = np.clip(np.floor(c - rmax - 1).astype(np.int64), 0, size - p)  # (N, 2) top-left
            cols, rows = corner[:, 0, None] + offs, corner[:, 1, None] + offs  # (N, P) each
            xs = (cols + 0.5).astype(np.float32)[:, None, :]  # (N, 1, P) pixel centres
            ys = (rows + 0.5).astype(np.float32)[:, :, None]  # (N, P, 1)
            d = np.sqrt((xs - c[:, 0, None, None]) ** 2 + (ys - c[:, 1, None, None]) ** 2)  # (N, P, P)
            alpha = np.clip(radii[:, j, None, None].astype(np.float32) + 0.5 - d, 0.0, 1.0)[..., None]
            idx = (batch, rows[:, :, None], cols[:, None, :])
            region = canvas[idx]  # (N, P, P, 3)
            region *= 1.0 - alpha
            region += alpha * colors[:, j, None, None, :]
            canvas[idx] = region
            windows.append(idx)
        for idx in windows:  # after all discs, so overlapping windows see every disc
            frames[:, t][idx] = to_uint8(canvas[idx])
        for idx in windows:
            canvas[idx] = empty[idx]
    return frames


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    floor_y, substeps = float(params["floor_y"]), int(params["substeps"])
    radius = uniform(rng, params["radius"], n)
    gravity = uniform(rng, params["gravity"], n)
    drag = uniform(rng, params["drag"], n)
    restitution = uniform(rng, params["restitution"], n)
    apex = uniform(rng, params["apex_height"], n)
    angle = np.deg2rad(uniform(rng, params["launch_angle"], n))  # elevation above the horizontal
    # The launch speed that would lift a drag-free ball `apex` px: v_y^2 = 2 g apex.
    speed = (np.sqrt(2 * gravity * apex) / np.sin(angle)).astype(np.float32)
    inset = uniform(rng, params["launch_inset"], n)  # gap between the ball and the near side wall
    height = uniform(rng, params["launch_height"], n)  # gap between the ball and the floor
    from_right = rng.random(n) < 0.5
    colors = random_colors(rng, (n, 1))
    background = uniform(rng, params["background"], n, 3)

    r = radius.astype(np.float64)
    x = r + inset
    x = np.where(from_right, SIZE - x, x)
    y = floor_y - r - height
    vx = speed * np.cos(angle) * np.where(from_right, -1.0, 1.0)
    vy = -speed * np.sin(angle)  # upwards is -y
    states = simulate(
        x, y, vx.astype(np.float64), vy.astype(np.float64), gravity.astype(np.float64),
        drag.astype(np.float64), restitution.astype(np.float64), r, floor_y, num_frames, substeps,
    )  # fmt: skip

    empty = blank(n, background)
    ones = np.ones(n, np.float32)
    floor_strip = rect_alpha(-ones, floor_y * ones, (SIZE + 1) * ones, (SIZE + 1) * ones)  # (N, H, W)
    composite(empty, floor_strip, np.full(3, FLOOR_GREY, np.float32))
    frames = render_discs(empty, states[:, :, None, :2], radius[:, None], colors)

    return Scene(
        frames=frames,
        states=states.astype(np.float32),
        params={
            "object_colors": colors,
            "radius": radius,
            "gravity": gravity,
            "drag": drag,
            "restitution": restitution,
            "apex_height": apex,
            "launch_speed": speed,
            "launch_angle": angle.astype(np.float32),
            "from_right": from_right.astype(np.int64),
            "background": background,
        },
    )
