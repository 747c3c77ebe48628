"""Multi ball: 2 to 4 discs (a random number per sequence) gliding without gravity, bouncing elastically
off the four walls and off each other -- an ideal 2-D gas of a few hard discs.

The physics is `bouncing_balls.simulate` with g = 0: exact straight-line flight with wall hits at the
exact crossing time, and the two-body elastic impulse along the line of centres for every overlapping,
approaching pair after each sub-step. Total kinetic energy is conserved over the whole sequence and total
momentum across every ball-ball collision (walls exchange momentum with the box).

Sequences hold MAX_BALLS ball slots; the states of absent balls are NaN and `params["num_objects"]` says how
many are present (always the first slots).
"""

from __future__ import annotations

import numpy as np

from physworld.data.render import random_colors
from physworld.data.scenes.base import Scene, uniform
from physworld.data.scenes.bouncing_balls import (
    place_in_quadrants,
    random_velocities,
    render,
    simulate,
    state_names,
)

VERSION = 1
MAX_BALLS = 4  # one start quadrant per ball

STATE_NAMES = state_names(MAX_BALLS)
POSITIONS = tuple((4 * k, 4 * k + 1) for k in range(MAX_BALLS))


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    low, high = (int(b) for b in params["num_objects"])
    if not 1 <= low <= high <= MAX_BALLS:
        raise ValueError(f"dataset.scene.num_objects={[low, high]}: accepted 1 <= low <= high <= {MAX_BALLS}")
    k = MAX_BALLS
    num_objects = rng.integers(low, high + 1, size=n)  # (N,) inclusive of high
    present = np.arange(k) < num_objects[:, None]  # (N, K)
    radius = uniform(rng, params["radius"], n, k)
    mass = radius**2  # mass proportional to the disc's area
    colors = random_colors(rng, (n, k))
    background = uniform(rng, params["background"], n, 3)
    pos = place_in_quadrants(rng, radius.astype(np.float64))
    vel = random_velocities(rng, params["speed"], n, k)

    mass64, radius64 = mass.astype(np.float64), radius.astype(np.float64)
    no_gravity = np.zeros(n)
    states = simulate(pos, vel, mass64, radius64, no_gravity, present, num_frames, int(params["substeps"]))
    states[np.broadcast_to(~present[:, None], states.shape[:3])] = np.nan  # (N, T, K, 4): padding
    frames = render(states, radius, colors, present, background)
    # Absent slots get NaN radius and mass, like their states; their colours stay finite so that colour
    # matching in evaluation never meets NaN (it must skip the slots whose positions are NaN).
    absent = ~present
    return Scene(
        frames=frames,
        states=states.reshape(n, num_frames, 4 * k).astype(np.float32),
        params={
            "object_colors": colors,
            "radius": np.where(absent, np.nan, radius).astype(np.float32),
            "mass": np.where(absent, np.nan, mass).astype(np.float32),
            "num_objects": num_objects.astype(np.int64),
            "background": background,
        },
    )
