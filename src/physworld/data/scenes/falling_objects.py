"""Falling objects: 2 to 4 discs and squares, released at different heights from rest or with a small
vertical velocity, fall with constant acceleration g (+y, downwards), land on a floor with a small
coefficient of restitution, and come to rest.

Physics, in float64 with a fixed number of sub-steps per frame (time unit: one frame):

- free fall is the exact ballistic step y += v h + g h^2 / 2, v += g h;
- the floor is reached at the exact crossing time inside the sub-step (root of the ballistic quadratic);
  there the velocity becomes -e * v_impact (Newton's restitution law) and flight goes on for the rest of
  the sub-step. A rebound slower than `rest_speed` ends the bouncing: the object stays on the floor with
  zero velocity (the floor's normal force then balances gravity), which stands in for the infinitely many
  ever-shorter bounces of an ideal restitution model.

Each object falls in its own vertical lane (the canvas is split into four lanes), so objects never touch
each other; they only move vertically. Sequences hold MAX_OBJECTS slots; absent objects have NaN states
and `params["num_objects"]` says how many are present (always the first slots).
"""

from __future__ import annotations

import numpy as np

from physworld.data.render import (
    SIZE,
    blank,
    composite,
    disc_alpha,
    draw_windowed,
    random_colors,
    rect_alpha,
    to_uint8,
)
from physworld.data.scenes.base import Scene, uniform

VERSION = 1
MAX_OBJECTS = 4  # one lane per object
LANE = SIZE / MAX_OBJECTS  # lane width, pixels
FLOOR_GREY = 0.3  # brightness of the floor strip below floor_y


def state_names(num_objects: int) -> tuple[str, ...]:
    return tuple(f"obj{k}_{q}" for k in range(num_objects) for q in ("x", "y", "vx", "vy"))


STATE_NAMES = state_names(MAX_OBJECTS)
POSITIONS = tuple((4 * k, 4 * k + 1) for k in range(MAX_OBJECTS))


def fall(y, v, resting, g, e, h, floor, rest_speed):
    """Advance the vertical motion by time h: free fall at g onto the floor (the centre's lowest position),
    bouncing with restitution e at the exact contact time. All arrays broadcast; returns (y, v, resting)."""
    g_free = np.where(resting, 0.0, g)  # the floor holds resting objects up
    y_end = y + v * h + 0.5 * g_free * h**2
    hit = ~resting & (y_end >= floor)
    # Contact time: root of y + v t + g t^2 / 2 = floor, in cancellation-free forms for either sign of v.
    d = np.maximum(floor - y, 0.0)
    s = np.sqrt(v * v + 2 * g * d)
    tau = np.where(v > 0, 2 * d / np.maximum(v + s, 1e-300), (s - v) / g)
    tau = np.clip(np.where(hit, tau, h), 0.0, h)
    rebound = -e * (v + g * tau)
    stops = hit & (-rebound < rest_speed)
    resting = resting | stops
    # One bounce per sub-step is enough: a rebound of at least rest_speed stays up for 2 * rest_speed / g,
    # far longer than a sub-step.
    left = np.where(hit & ~stops, h - tau, 0.0)
    y = np.where(hit, floor + rebound * left + 0.5 * g * left**2, y_end)
    v = np.where(hit, rebound + g * left, v + g_free * h)
    v = np.where(resting, 0.0, v)
    y = np.where(resting, floor, np.minimum(y, floor))
    return y, v, resting


def draw_objects(canvas, centres, half, is_box, colors, visible) -> None:
    """Discs and boxes, each in a window around it (render.draw_windowed).

    canvas (N, H, W, 3); centres (N, K, 2); half (N, K) radius or half-side; is_box, visible (N, K) bool.
    """
    for k in range(centres.shape[1]):
        c = centres[:, k].astype(np.float32)  # (N, 2)
        h = np.nan_to_num(half[:, k]).astype(np.float32)  # (N,) absent objects have NaN sizes
        pad = (h + 0.5)[:, None]

        def coverage(offset, size, c=c, h=h, k=k):
            # Box edges in canvas coordinates first, then shifted: a whole-pixel shift is exact in float32,
            # so the window gets exactly the full-canvas coverage.
            lo, hi = c - h[:, None] - offset, c + h[:, None] - offset  # (N, 2) each
            box = rect_alpha(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1], size)
            disc = disc_alpha(c - offset, h, size)
            return np.where(is_box[:, k, None, None], box, disc) * visible[:, k, None, None]

        draw_windowed(canvas, c - pad, c + pad, coverage, colors[:, k])


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    low, high = (int(b) for b in params["num_objects"])
    if not 1 <= low <= high <= MAX_OBJECTS:
        raise ValueError(
            f"dataset.scene.num_objects={[low, high]}: accepted 1 <= low <= high <= {MAX_OBJECTS}"
        )
    k = MAX_OBJECTS
    floor_y, rest_speed = float(params["floor_y"]), float(params["rest_speed"])
    num_objects = rng.integers(low, high + 1, size=n)  # (N,) inclusive of high
    present = np.arange(k) < num_objects[:, None]  # (N, K)
    half = uniform(rng, params["size"], n, k)  # radius of a disc, half-side of a square
    is_box = rng.random((n, k)) < float(params["box_prob"])
    gravity = uniform(rng, params["gravity"], n)
    restitution = uniform(rng, params["restitution"], n)
    colors = random_colors(rng, (n, k))
    background = uniform(rng, params["background"], n, 3)

    # Distinct lanes, each object anywhere in its lane with a pixel to spare on both sides.
    lane = np.argsort(rng.random((n, MAX_OBJECTS)), axis=1)[:, :k]  # (N, K)
    x = lane * LANE + half + 1 + rng.random((n, k)) * (LANE - 2 * half - 2)
    y = uniform(rng, params["start_top"], n, k) + half  # centre from the top edge's height
    v = uniform(rng, params["start_vy"], n, k).astype(np.float64)
    y, x, h64 = y.astype(np.float64), x.astype(np.float64), half.astype(np.float64)

    substeps = int(params["substeps"])
    h = 1.0 / substeps
    g, e = gravity.astype(np.float64)[:, None], restitution.astype(np.float64)[:, None]
    floor = floor_y - h64  # (N, K) the centre's height when the object stands on the floor
    resting = np.zeros((n, k), bool)
    states = np.empty((n, num_frames, k, 4))
    for t in range(num_frames):
        if t > 0:
            for _ in range(substeps):
                y, v, resting = fall(y, v, resting, g, e, h, floor, rest_speed)
        states[:, t] = np.stack([x, y, np.zeros_like(x), v], axis=-1)
    states[np.broadcast_to(~present[:, None], states.shape[:3])] = np.nan  # (N, T, K, 4): padding

    empty = blank(n, background)
    ones = np.ones(n, np.float32)
    floor_strip = rect_alpha(-ones, floor_y * ones, (SIZE + 1) * ones, (SIZE + 1) * ones)  # (N, H, W)
    composite(empty, floor_strip, np.full(3, FLOOR_GREY, np.float32))
    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    centres = np.nan_to_num(states[..., :2], nan=SIZE / 2)  # absent objects are invisible anyway
    for t in range(num_frames):
        canvas = empty.copy()
        draw_objects(canvas, centres[:, t], half, is_box, colors, present)
        frames[:, t] = to_uint8(canvas)

    absent = ~present
    return Scene(
        frames=frames,
        states=states.reshape(n, num_frames, 4 * k).astype(np.float32),
        params={
            "object_colors": colors,  # finite for absent slots too; their states are NaN
            "size": np.where(absent, np.nan, half).astype(np.float32),
            "is_box": np.where(absent, 0, is_box).astype(np.int64),
            "gravity": gravity,
            "restitution": restitution,
            "num_objects": num_objects.astype(np.int64),
            "background": background,
        },
    )
