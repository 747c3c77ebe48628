"""Spring-mass: a box hanging from the ceiling on a vertical spring, bouncing up and down under gravity,
with optional linear damping.

Physics (time unit: one frame; y points down, so gravity is +y): Hooke's law plus gravity,

    y'' = g - (k / m) (y - anchor_y - rest) - c y'

for the mass centre y, with spring constant k, mass m, natural length `rest` (anchor to mass centre) and
damping rate c = b / m. Gravity only shifts the equilibrium down by the static stretch m g / k, to
y_eq = anchor_y + rest + m g / k; about it the motion is harmonic with angular frequency sqrt(k / m)
(rad/frame), slowly decaying when c > 0. Integrated in float64 with classical RK4 (data/integrate.py) and a
fixed number of sub-steps per frame; with c = 0 the energy m v^2 / 2 + k (y - anchor_y - rest)^2 / 2 - m g y
is conserved.

Each sequence starts at a random phase of an oscillation of amplitude A about the equilibrium. The mass
moves only vertically, below its anchor. The spring is drawn as a zig-zag of line segments and the mass
as a square whose side grows as m^(1/3) (equal density), so heavier masses look bigger.
"""

from __future__ import annotations

import numpy as np

from physworld.data.integrate import integrate
from physworld.data.render import (
    SIZE,
    blank,
    composite,
    draw_segments,
    draw_windowed,
    random_colors,
    rect_alpha,
    to_uint8,
)
from physworld.data.scenes.base import Scene, uniform

VERSION = 1
CEILING_HALF_WIDTH = 8.0  # the ceiling bar spans anchor_x +- this, pixels

STATE_NAMES = ("mass_x", "mass_y", "mass_vx", "mass_vy")
POSITIONS = ((0, 1),)


def simulate(y, v, stiffness, mass, gravity, damping, rest_y, num_frames: int, substeps: int) -> np.ndarray:
    """Integrate y'' = g - (k/m)(y - rest_y) - c y'; all inputs (N,) float64, rest_y = anchor_y + rest.

    Returns float64 (N, T, 2): (y, vy) at every frame, in px and px/frame.
    """
    k_over_m = stiffness / mass

    def deriv(s):  # s (N, 2) = (y, vy)
        return np.stack([s[:, 1], gravity - k_over_m * (s[:, 0] - rest_y) - damping * s[:, 1]], axis=-1)

    s = np.stack([y, v], axis=-1).astype(np.float64)  # (N, 2)
    return integrate(deriv, s, 1.0 / substeps, substeps, num_frames)


def spring_points(anchor: np.ndarray, bottom_y: np.ndarray, coils: int, width: float) -> np.ndarray:
    """Corners of the zig-zag from the anchor (N, 2) straight down to (anchor_x, bottom_y (N,)): the anchor,
    2 * coils corners alternately width / 2 left and right of the axis, then the bottom end.

    Returns float32 (N, 2 * coils + 2, 2).
    """
    n_zig = 2 * coils
    frac = np.concatenate([[0.0], (np.arange(n_zig) + 0.5) / n_zig, [1.0]])  # (P,) along the spring
    side = np.concatenate([[0.0], np.where(np.arange(n_zig) % 2 == 0, -0.5, 0.5), [0.0]]) * width
    ys = anchor[:, 1, None] + frac * (bottom_y - anchor[:, 1])[:, None]  # (N, P)
    xs = anchor[:, 0, None] + side  # (N, P)
    return np.stack([xs, ys], axis=-1).astype(np.float32)


def draw_box(canvas, centre, half, color) -> None:
    """render.rect_alpha composited in a window: a square of half-side half (N,) at centre (N, 2) float32."""
    lo, hi = centre - half[:, None], centre + half[:, None]

    def coverage(off, size):
        return rect_alpha(
            lo[:, 0] - off[:, 0], lo[:, 1] - off[:, 1], hi[:, 0] - off[:, 0], hi[:, 1] - off[:, 1], size
        )

    draw_windowed(canvas, lo - 0.5, hi + 0.5, coverage, color)


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    stiffness = uniform(rng, params["stiffness"], n)
    mass = uniform(rng, params["mass"], n)
    gravity = uniform(rng, params["gravity"], n)
    rest = uniform(rng, params["rest_length"], n)
    amplitude = uniform(rng, params["amplitude"], n)
    damping = uniform(rng, params["damping"], n)
    anchor_x = uniform(rng, params["anchor_x"], n)
    colors = random_colors(rng, (n, 1))
    spring_color = np.repeat(uniform(rng, params["spring_grey"], n, 1), 3, axis=1)  # (N, 3) grey
    background = uniform(rng, params["background"], n, 3)
    phase = rng.uniform(0.0, 2 * np.pi, size=n)

    anchor_y = float(params["anchor_y"])
    k, m, g, c = (a.astype(np.float64) for a in (stiffness, mass, gravity, damping))
    rest_y = anchor_y + rest.astype(np.float64)  # where the mass centre would sit without gravity
    equilibrium = rest_y + m * g / k
    omega = np.sqrt(k / m)  # rad/frame
    y0 = equilibrium + amplitude * np.cos(phase)
    v0 = -amplitude * omega * np.sin(phase)
    motion = simulate(y0, v0, k, m, g, c, rest_y, num_frames, int(params["substeps"]))  # (N, T, 2)
    states = np.zeros((n, num_frames, 4), np.float32)
    states[..., 0] = anchor_x[:, None]
    states[..., 1], states[..., 3] = motion[..., 0], motion[..., 1]

    half = (0.5 * float(params["box_size"]) * mass ** (1 / 3)).astype(np.float32)  # (N,) box half-side
    anchor = np.stack([anchor_x, np.full(n, anchor_y, np.float32)], axis=-1)  # (N, 2)
    coils, spring_width = int(params["coils"]), float(params["spring_width"])
    wire = float(params["wire_width"])
    empty = blank(n, background)
    ceiling = rect_alpha(
        anchor_x - CEILING_HALF_WIDTH,
        np.full(n, -1.0, np.float32),
        anchor_x + CEILING_HALF_WIDTH,
        np.full(n, anchor_y, np.float32),
    )
    composite(empty, ceiling, spring_color)
    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    for t in range(num_frames):
        canvas = empty.copy()
        centre = states[:, t, :2]  # (N, 2)
        points = spring_points(anchor, centre[:, 1] - half, coils, spring_width)  # (N, P, 2)
        for j in range(points.shape[1] - 1):
            draw_segments(canvas, points[:, j], points[:, j + 1], wire, spring_color)
        draw_box(canvas, centre, half, colors[:, 0])
        frames[:, t] = to_uint8(canvas)

    return Scene(
        frames=frames,
        states=states,
        params={
            "object_colors": colors,
            "stiffness": stiffness,
            "mass": mass,
            "gravity": gravity,
            "rest_length": rest,
            "amplitude": amplitude,
            "damping": damping,
            "anchor_x": anchor_x,
            "anchor_y": anchor[:, 1].copy(),  # the same for every sequence (a config value)
            "box_half": half,
            "spring_color": spring_color,
            "background": background,
        },
    )
