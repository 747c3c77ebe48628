"""Pendulum: a rigid rod from a fixed pivot near the top centre, with a bob at its end, swinging under
gravity with optional linear damping.

Physics (time unit: one frame; theta from the downward vertical, positive towards +x):

    theta'' = -(g / L) sin(theta) - c theta'

the full nonlinear equation of a point mass on a massless rod (the swing period grows with amplitude),
integrated in float64 with classical RK4 (data/integrate.py) and a fixed number of sub-steps per frame.
With c = 0 the energy E = L^2 omega^2 / 2 + g L (1 - cos theta) (per unit mass) is conserved; with c > 0
it falls at the rate dE/dt = -c L^2 omega^2.

Each sequence starts with a given swing amplitude A at a random phase: theta0 uniform in [-A, A] and
omega0 of either sign with the speed that the energy of an A swing leaves there,
omega0^2 = 2 (g / L) (cos theta0 - cos A).

The bob is at pivot + L (sin theta, cos theta) (y points down); `bob_kinematics` also places the bobs of
double_pendulum.
"""

from __future__ import annotations

import numpy as np

from physworld.data.integrate import integrate
from physworld.data.render import SIZE, blank, draw_discs, draw_segments, random_colors, to_uint8
from physworld.data.scenes.base import Scene, uniform

VERSION = 1
PIVOT_RADIUS = 1.5  # radius of the pivot's disc, pixels (drawn in the rod's colour)

STATE_NAMES = ("theta", "omega", "bob_x", "bob_y", "bob_vx", "bob_vy")
POSITIONS = ((2, 3),)


def simulate(theta, omega, g_over_l, damping, num_frames: int, substeps: int) -> np.ndarray:
    """Integrate theta'' = -(g/L) sin(theta) - c theta'; all inputs (N,) float64.

    Returns float64 (N, T, 2): (theta, omega) at every frame, in rad and rad/frame.
    """

    def deriv(y):  # y (N, 2) = (theta, omega)
        th, om = y[:, 0], y[:, 1]
        return np.stack([om, -g_over_l * np.sin(th) - damping * om], axis=-1)

    y = np.stack([theta, omega], axis=-1).astype(np.float64)  # (N, 2)
    return integrate(deriv, y, 1.0 / substeps, substeps, num_frames)


def bob_kinematics(pivot, length, theta, omega) -> np.ndarray:
    """(x, y, vx, vy) (..., 4) of a bob at pivot + L (sin theta, cos theta); pivot (..., 2), rest (...)."""
    s, c = np.sin(theta), np.cos(theta)
    return np.stack(
        [pivot[..., 0] + length * s, pivot[..., 1] + length * c, length * c * omega, -length * s * omega],
        axis=-1,
    )


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    if float(params["amplitude"][1]) >= np.pi / 2:
        raise ValueError(
            f"dataset.scene.amplitude={params['amplitude']}: accepted below pi/2 rad (the bob stays below the pivot)"
        )
    length = uniform(rng, params["length"], n)
    gravity = uniform(rng, params["gravity"], n)
    amplitude = uniform(rng, params["amplitude"], n)
    damping = uniform(rng, params["damping"], n)
    radius = uniform(rng, params["bob_radius"], n)
    pivot = np.stack([uniform(rng, params["pivot_x"], n), uniform(rng, params["pivot_y"], n)], axis=-1)
    colors = random_colors(rng, (n, 1))
    rod_color = np.repeat(uniform(rng, params["rod_grey"], n, 1), 3, axis=1)  # (N, 3) grey
    background = uniform(rng, params["background"], n, 3)
    phase = rng.uniform(-1.0, 1.0, size=n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)

    # Random phase of a swing of amplitude A: the energy of the A swing fixes |omega| at theta0.
    g_over_l = (gravity / length).astype(np.float64)
    amp = amplitude.astype(np.float64)
    theta0 = amp * phase
    omega0 = sign * np.sqrt(np.maximum(2 * g_over_l * (np.cos(theta0) - np.cos(amp)), 0.0))
    angles = simulate(
        theta0, omega0, g_over_l, damping.astype(np.float64), num_frames, int(params["substeps"])
    )
    bob = bob_kinematics(pivot[:, None].astype(np.float64), length[:, None], angles[..., 0], angles[..., 1])
    states = np.concatenate([angles, bob], axis=-1).astype(np.float32)  # (N, T, 6)

    width = float(params["rod_width"])
    empty = blank(n, background)
    pivot_radius = np.full((n, 1), PIVOT_RADIUS, np.float32)
    draw_discs(empty, pivot[:, None], pivot_radius, rod_color[:, None])  # the pivot never moves
    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    for t in range(num_frames):
        canvas = empty.copy()
        centre = states[:, t, 2:4]  # (N, 2)
        draw_segments(canvas, pivot, centre, width, rod_color)
        draw_discs(canvas, centre[:, None], radius[:, None], colors)
        frames[:, t] = to_uint8(canvas)

    return Scene(
        frames=frames,
        states=states,
        params={
            "object_colors": colors,
            "length": length,
            "gravity": gravity,
            "amplitude": amplitude,
            "damping": damping,
            "bob_radius": radius,
            "pivot": pivot,
            "rod_color": rod_color,
            "background": background,
        },
    )
