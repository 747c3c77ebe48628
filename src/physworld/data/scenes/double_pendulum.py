"""Double pendulum: two point masses m1, m2 on massless rigid rods L1, L2, the first hung from a pivot at
the canvas centre, the second from the first bob -- the textbook chaotic system.

Physics (time unit: one frame; each angle from the downward vertical, positive towards +x; y points down):
the exact equations of motion from the Lagrangian, solved for the angular accelerations (d = th1 - th2,
D = 2 m1 + m2 - m2 cos 2d = 2 (m1 + m2 sin^2 d) > 0):

    th1'' = [-g (2 m1 + m2) sin th1 - m2 g sin(th1 - 2 th2)
             - 2 sin d m2 (w2^2 L2 + w1^2 L1 cos d)] / (L1 D)
    th2'' = [2 sin d (w1^2 L1 (m1 + m2) + g (m1 + m2) cos th1 + w2^2 L2 m2 cos d)] / (L2 D)

integrated in float64 with classical RK4 (data/integrate.py) and a fixed number of sub-steps per frame.
The total energy

    E = m1 L1^2 w1^2 / 2 + m2 (L1^2 w1^2 + L2^2 w2^2 + 2 L1 L2 w1 w2 cos d) / 2
        - (m1 + m2) g L1 cos th1 - m2 g L2 cos th2

is conserved (no damping). Angles are continuous (not wrapped), so a bob that loops over the top keeps
counting turns. Bob radii grow as mass^(1/3) (equal density), so the mass ratio is visible.
"""

from __future__ import annotations

import numpy as np

from physworld.data.integrate import integrate
from physworld.data.render import SIZE, blank, draw_discs, draw_segments, random_colors, to_uint8
from physworld.data.scenes.base import Scene, uniform
from physworld.data.scenes.pendulum import bob_kinematics

VERSION = 1
PIVOT = (SIZE / 2, SIZE / 2)  # the pivot sits at the canvas centre: the arms may point any way
PIVOT_RADIUS = 1.5  # pixels, drawn in the rod colour

STATE_NAMES = (
    "theta1",
    "omega1",
    "theta2",
    "omega2",
    "bob1_x",
    "bob1_y",
    "bob1_vx",
    "bob1_vy",
    "bob2_x",
    "bob2_y",
    "bob2_vx",
    "bob2_vy",
)
POSITIONS = ((4, 5), (8, 9))


def accelerations(th1, w1, th2, w2, l1, l2, m1, m2, g):
    """(th1'', th2'') of the double pendulum; all arguments broadcast together."""
    d = th1 - th2
    den = 2 * m1 + m2 - m2 * np.cos(2 * d)
    a1 = (
        -g * (2 * m1 + m2) * np.sin(th1)
        - m2 * g * np.sin(th1 - 2 * th2)
        - 2 * np.sin(d) * m2 * (w2**2 * l2 + w1**2 * l1 * np.cos(d))
    ) / (l1 * den)
    a2 = (
        2 * np.sin(d) * (w1**2 * l1 * (m1 + m2) + g * (m1 + m2) * np.cos(th1) + w2**2 * l2 * m2 * np.cos(d))
    ) / (l2 * den)
    return a1, a2


def simulate(y0, l1, l2, m1, m2, g, num_frames: int, substeps: int) -> np.ndarray:
    """Integrate from y0 (N, 4) = (th1, w1, th2, w2); the parameters are (N,) float64.

    Returns float64 (N, T, 4): (th1, w1, th2, w2) at every frame, in rad and rad/frame.
    """

    def deriv(y):  # y (N, 4)
        a1, a2 = accelerations(y[:, 0], y[:, 1], y[:, 2], y[:, 3], l1, l2, m1, m2, g)
        return np.stack([y[:, 1], a1, y[:, 3], a2], axis=-1)

    return integrate(deriv, y0, 1.0 / substeps, substeps, num_frames)


def signed(rng, bounds, n) -> np.ndarray:
    """(N,) float64 magnitudes uniform in bounds, each with a random sign."""
    return uniform(rng, bounds, n).astype(np.float64) * np.where(rng.random(n) < 0.5, -1.0, 1.0)


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    l1, l2 = uniform(rng, params["length1"], n), uniform(rng, params["length2"], n)
    m1, m2 = uniform(rng, params["mass1"], n), uniform(rng, params["mass2"], n)
    gravity = uniform(rng, params["gravity"], n)
    radius = (float(params["bob_radius"]) * np.stack([m1, m2], axis=-1) ** (1 / 3)).astype(np.float32)
    colors = random_colors(rng, (n, 2))
    rod_color = np.repeat(uniform(rng, params["rod_grey"], n, 1), 3, axis=1)  # (N, 3) grey
    background = uniform(rng, params["background"], n, 3)
    th1, th2 = signed(rng, params["theta1"], n), signed(rng, params["theta2"], n)
    w1, w2 = (uniform(rng, params["omega"], n).astype(np.float64) for _ in range(2))

    f64 = [a.astype(np.float64) for a in (l1, l2, m1, m2, gravity)]
    angles = simulate(np.stack([th1, w1, th2, w2], -1), *f64, num_frames, int(params["substeps"]))
    pivot = np.array(PIVOT)
    bob1 = bob_kinematics(pivot, f64[0][:, None], angles[..., 0], angles[..., 1])  # (N, T, 4)
    arm2 = bob_kinematics(np.zeros(2), f64[1][:, None], angles[..., 2], angles[..., 3])  # relative to bob1
    states = np.concatenate([angles, bob1, bob1 + arm2], axis=-1).astype(np.float32)  # (N, T, 12)

    width = float(params["rod_width"])
    pivot32 = np.broadcast_to(pivot.astype(np.float32), (n, 2))
    empty = blank(n, background)
    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    for t in range(num_frames):
        canvas = empty.copy()
        c1, c2 = states[:, t, 4:6], states[:, t, 8:10]  # (N, 2) each
        draw_segments(canvas, pivot32, c1, width, rod_color)
        draw_segments(canvas, c1, c2, width, rod_color)
        draw_discs(
            canvas, pivot32[:, None], np.full(n, PIVOT_RADIUS, np.float32)[:, None], rod_color[:, None]
        )
        draw_discs(canvas, np.stack([c1, c2], axis=1), radius, colors)  # (N, 2, 2) bobs, upper first
        frames[:, t] = to_uint8(canvas)

    return Scene(
        frames=frames,
        states=states,
        params={
            "object_colors": colors,
            "length1": l1,
            "length2": l2,
            "mass1": m1,
            "mass2": m2,
            "gravity": gravity,
            "bob_radius": radius,
            "rod_color": rod_color,
            "background": background,
        },
    )
