"""Orbital: two bodies under Newtonian gravity, a = G m_other d / |d|^3, orbiting their common centre of mass
(kept still near the canvas centre) on circular or elliptical Kepler orbits.

Physics, in float64 with a fixed number of velocity-Verlet (kick-drift-kick leapfrog) sub-steps per frame
(time unit: one frame). The leapfrog is symplectic and time-reversible, so energy does not drift (it
oscillates by ~1e-5 here), and with a central force it conserves momentum and angular momentum exactly.
No softening: the eccentricity is capped so the closest approach keeps the discs a pixel apart, so the
force stays finite and the bodies never touch.

Masses are in units of the total mass (m1 + m2 = 1, m1 >= m2), so G is G (m1 + m2), in px^3 / frame^2.
Each sequence draws the relative orbit's semi-major axis a, eccentricity e and period P; G then follows
from Kepler's third law, P = 2 pi sqrt(a^3 / (G (m1 + m2))), so every sequence sweeps a visible fraction
of its orbit. The orbit starts at a random phase and orientation, turning either way.
Disc radii scale as mass^(1/3) (equal densities).
"""

from __future__ import annotations

import numpy as np

from physworld.data.render import SIZE, blank, random_colors
from physworld.data.scenes.base import Scene, uniform
from physworld.data.scenes.projectile import render_discs

VERSION = 1
# body0 is the heavier body (drawn first), body1 the lighter; px and px/frame.
STATE_NAMES = tuple(f"body{k}_{q}" for k in range(2) for q in ("x", "y", "vx", "vy"))
POSITIONS = ((0, 1), (4, 5))
MIN_RADIUS = 1.5  # pixels: the lightest bodies stay visible
GAP = 1.0  # pixels between the discs at the closest approach


def accelerations(p1, p2, gm1, gm2):
    """(a1, a2), each (N, 2): mutual gravity of bodies at p1, p2 (N, 2); gm1, gm2 (N, 1) are G m1, G m2."""
    d = p2 - p1
    inv_r3 = np.sum(d * d, axis=-1, keepdims=True) ** -1.5
    return gm2 * d * inv_r3, -gm1 * d * inv_r3


def simulate(p1, p2, v1, v2, gm1, gm2, num_frames, substeps):
    """Velocity-Verlet integration; positions and velocities (N, 2) in px and px/frame, gm1, gm2 (N, 1).
    Returns (N, T, 8) float64: body0 x, y, vx, vy, then body1."""
    h = 1.0 / substeps
    states = np.empty((p1.shape[0], num_frames, 8))
    a1, a2 = accelerations(p1, p2, gm1, gm2)
    for t in range(num_frames):
        if t > 0:
            for _ in range(substeps):
                v1, v2 = v1 + 0.5 * h * a1, v2 + 0.5 * h * a2
                p1, p2 = p1 + h * v1, p2 + h * v2
                a1, a2 = accelerations(p1, p2, gm1, gm2)
                v1, v2 = v1 + 0.5 * h * a1, v2 + 0.5 * h * a2
        states[:, t] = np.concatenate([p1, v1, p2, v2], axis=-1)
    return states


def kepler_state(a, e, nu, gm):
    """Relative position and velocity (N, 2) on the Kepler ellipse (semi-major axis a, eccentricity e,
    periapsis along +x) at true anomaly nu, turning counter-clockwise in (x, y); all inputs (N,)."""
    p = a * (1 - e * e)  # semi-latus rectum
    r = p / (1 + e * np.cos(nu))
    pos = np.stack([r * np.cos(nu), r * np.sin(nu)], axis=-1)
    vel = np.sqrt(gm / p)[:, None] * np.stack([-np.sin(nu), e + np.cos(nu)], axis=-1)
    return pos, vel


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    if not 0 < float(params["mass_ratio"][0]) <= float(params["mass_ratio"][1]) <= 1:
        raise ValueError(f"dataset.scene.mass_ratio={params['mass_ratio']}: accepted 0 < low <= high <= 1")
    q = uniform(rng, params["mass_ratio"], n).astype(np.float64)  # m2 / m1
    a = uniform(rng, params["semi_major_axis"], n).astype(np.float64)
    e = uniform(rng, params["eccentricity"], n).astype(np.float64)
    period = uniform(rng, params["period"], n).astype(np.float64)
    r1 = uniform(rng, params["radius"], n).astype(np.float64)  # radius of the heavier body
    nu = uniform(rng, [0.0, 2 * np.pi], n).astype(np.float64)  # starting true anomaly
    omega = uniform(rng, [0.0, 2 * np.pi], n).astype(np.float64)  # direction of periapsis
    turn = np.where(rng.random(n) < 0.5, 1.0, -1.0)  # +1 counter-clockwise in (x, y), -1 clockwise
    com = SIZE / 2 + uniform(rng, params["com_offset"], n, 2).astype(np.float64)  # (N, 2)
    colors = random_colors(rng, (n, 2))
    background = uniform(rng, params["background"], n, 3)

    m1, m2 = 1 / (1 + q), q / (1 + q)
    r2 = np.maximum(r1 * q ** (1 / 3), MIN_RADIUS)
    e = np.minimum(e, 1 - (r1 + r2 + GAP) / a)  # periapsis a (1 - e) keeps the discs GAP apart
    gm = 4 * np.pi**2 * a**3 / period**2  # Kepler's third law

    pos, vel = kepler_state(a, e, nu, gm)  # (N, 2) each, relative: body1 - body0
    pos[:, 1] *= turn  # the mirror image turns the other way
    vel[:, 1] *= turn
    rot = np.stack([np.cos(omega), -np.sin(omega), np.sin(omega), np.cos(omega)], -1).reshape(n, 2, 2)
    pos, vel = np.einsum("nij,nj->ni", rot, pos), np.einsum("nij,nj->ni", rot, vel)
    # Each body sits on its own ellipse about the centre of mass, which stays at rest.
    states = simulate(
        com - m2[:, None] * pos, com + m1[:, None] * pos, -m2[:, None] * vel, m1[:, None] * vel,
        (gm * m1)[:, None], (gm * m2)[:, None], num_frames, int(params["substeps"]),
    )  # fmt: skip

    radii = np.stack([r1, r2], -1).astype(np.float32)  # (N, 2)
    centres = states.reshape(n, num_frames, 2, 4)[..., :2]  # (N, T, 2, 2)
    frames = render_discs(blank(n, background), centres, radii, colors)

    return Scene(
        frames=frames,
        states=states.astype(np.float32),
        params={
            "object_colors": colors,
            "radius": radii,
            "mass": np.stack([m1, m2], -1).astype(np.float32),
            "gravity_constant": gm.astype(np.float32),
            "semi_major_axis": a.astype(np.float32),
            "eccentricity": e.astype(np.float32),
            "period": period.astype(np.float32),
            "direction": turn.astype(np.float32),
            "centre_of_mass": com.astype(np.float32),
            "background": background,
        },
    )
