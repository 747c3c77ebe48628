"""orbital: energy and angular momentum are conserved, the centre of mass stays put, circular orbits keep
their radius, and the period and shape of every orbit follow Kepler's laws."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import SIZE, blank, draw_discs, to_uint8
from physworld.data.scenes import orbital
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "orbital.yaml").read_text())["scene"]
N, T = 64, 30


def make(seed=0, n=N, num_frames=T, **overrides):
    return orbital.generate(np.random.default_rng(seed), n, num_frames, {**PARAMS, **overrides})


@pytest.fixture(scope="module")
def scene():
    return make()


@pytest.fixture(scope="module")
def long_scene():
    """Over two periods of the slowest orbit: 200 frames."""
    return make(1, num_frames=200)


def bodies(scene):
    """Positions and velocities (N, T, 2, 2) -- body, then x/y -- in float64."""
    s = scene.states.astype(np.float64).reshape(*scene.states.shape[:2], 2, 4)
    return s[..., :2], s[..., 2:]


def energy_and_momentum(scene):
    """Total energy and angular momentum about the centre of mass, each (N, T)."""
    pos, vel = bodies(scene)
    m, g = scene.params["mass"].astype(np.float64), scene.params["gravity_constant"].astype(np.float64)
    d = np.linalg.norm(pos[:, :, 1] - pos[:, :, 0], axis=-1)
    kinetic = 0.5 * (m[:, None, :] * (vel**2).sum(-1)).sum(-1)
    energy = kinetic - (g * m[:, 0] * m[:, 1])[:, None] / d
    rel = pos - scene.params["centre_of_mass"][:, None, None, :]
    ang = (m[:, None, :] * (rel[..., 0] * vel[..., 1] - rel[..., 1] * vel[..., 0])).sum(-1)
    return energy, ang


def relative(scene):
    """Separation vector body1 - body0 (N, T, 2)."""
    pos, _ = bodies(scene)
    return pos[:, :, 1] - pos[:, :, 0]


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, 8) and scene.states.dtype == np.float32
    assert np.isfinite(scene.states).all()
    p = scene.params
    assert p["object_colors"].shape == (N, 2, 3) and p["radius"].shape == (N, 2) and p["mass"].shape == (N, 2)
    np.testing.assert_allclose(p["mass"].sum(1), 1.0, rtol=1e-6)
    assert (p["mass"][:, 0] >= p["mass"][:, 1]).all()
    ratio = p["mass"][:, 1] / p["mass"][:, 0]
    assert ratio.min() >= PARAMS["mass_ratio"][0] - 1e-6 and ratio.max() <= PARAMS["mass_ratio"][1] + 1e-6
    assert (p["radius"][:, 1] <= p["radius"][:, 0] + 1e-6).all() and p["radius"].min() >= orbital.MIN_RADIUS
    assert (p["eccentricity"] >= 0).all() and (p["eccentricity"] <= PARAMS["eccentricity"][1] + 1e-6).all()
    assert set(np.unique(p["direction"])) == {-1.0, 1.0}  # both senses of rotation occur


def test_determinism():
    a, b, c = make(5, 4, 8), make(5, 4, 8), make(6, 4, 8)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()


def test_bodies_stay_in_view_and_apart(long_scene):
    pos, _ = bodies(long_scene)
    r = long_scene.params["radius"][:, None, :, None]  # (N, 1, 2, 1)
    assert (pos - r >= 0).all() and (pos + r <= SIZE).all()
    gap = np.linalg.norm(relative(long_scene), axis=-1) - long_scene.params["radius"].sum(1)[:, None]
    assert gap.min() >= orbital.GAP - 1e-3  # the discs never touch


def test_visible_motion(scene):
    """Every sequence sweeps a good fraction of its orbit in 30 frames (at least 1 rad even around
    apoapsis, typically 1/3 to 1/2 turn) at a speed one can follow (under 4 px/frame)."""
    d = relative(scene)
    angle = np.unwrap(np.arctan2(d[..., 1], d[..., 0]), axis=1)  # (N, T)
    turned = np.abs(angle[:, -1] - angle[:, 0])
    assert turned.min() > 1.0 and np.median(turned) > 2.0
    _, vel = bodies(scene)
    assert np.linalg.norm(vel, axis=-1).max() < 4.0


def test_energy_and_angular_momentum_are_conserved(long_scene):
    energy, ang = energy_and_momentum(long_scene)
    assert (energy < 0).all()  # bound orbits
    assert np.abs(energy / energy[:, :1] - 1).max() < 1e-3  # within 0.1%; the leapfrog keeps ~1e-4
    assert np.abs(ang / ang[:, :1] - 1).max() < 1e-4  # exact for a central force, up to float32 rounding
    np.testing.assert_array_equal(np.sign(ang[:, 0]), long_scene.params["direction"])


def test_centre_of_mass_stays_put(long_scene):
    pos, _ = bodies(long_scene)
    com = (long_scene.params["mass"][:, None, :, None] * pos).sum(2)  # (N, T, 2)
    assert np.abs(com - long_scene.params["centre_of_mass"][:, None]).max() < 1e-3  # pixels


def test_circular_orbit_keeps_its_radius():
    scene = make(2, num_frames=120, eccentricity=[0.0, 0.0])
    d = np.linalg.norm(relative(scene), axis=-1)  # (N, T)
    assert np.abs(d / scene.params["semi_major_axis"][:, None] - 1).max() < 0.01
    pos, _ = bodies(scene)
    for k in range(2):  # each body circles the centre of mass at m_other / M of the distance
        rk = np.linalg.norm(pos[:, :, k] - scene.params["centre_of_mass"][:, None], axis=-1)
        expected = scene.params["mass"][:, 1 - k, None] * scene.params["semi_major_axis"][:, None]
        assert np.abs(rk - expected).max() < 0.01 * scene.params["semi_major_axis"].max()


def test_kepler_third_law(long_scene):
    """The period measured from the trajectory (time for the separation to turn 2 pi, linearly
    interpolated) matches 2 pi sqrt(a^3 / (G M)), with a measured by vis-viva from the initial state,
    a = -G m1 m2 / (2 E), within 2%."""
    d = relative(long_scene)
    angle = np.abs(np.unwrap(np.arctan2(d[..., 1], d[..., 0]), axis=1) - np.arctan2(d[:, :1, 1], d[:, :1, 0]))
    energy, _ = energy_and_momentum(long_scene)
    m, g = (
        long_scene.params["mass"].astype(np.float64),
        long_scene.params["gravity_constant"].astype(np.float64),
    )
    a = -g * m[:, 0] * m[:, 1] / (2 * energy[:, 0])
    np.testing.assert_allclose(a, long_scene.params["semi_major_axis"], rtol=1e-3)
    t = np.arange(angle.shape[1])
    measured = np.array([np.interp(2 * np.pi, row, t) for row in angle])  # unwrapped angle is monotonic
    assert (np.diff(angle, axis=1) > 0).all()
    kepler = 2 * np.pi * np.sqrt(a**3 / g)
    assert np.abs(measured / kepler - 1).max() < 0.02
    assert np.abs(measured / long_scene.params["period"] - 1).max() < 0.005  # the period that was drawn


def test_orbit_shape_matches_eccentricity(long_scene):
    """Closest and farthest separations over a full period: e = (r_max - r_min) / (r_max + r_min) and
    a = (r_max + r_min) / 2."""
    r = np.linalg.norm(relative(long_scene), axis=-1)
    r_min, r_max = r.min(1), r.max(1)
    p = long_scene.params
    # Frames sample the orbit every frame, so extremes are found to within ~0.05 px.
    assert np.abs((r_max - r_min) / (r_max + r_min) - p["eccentricity"]).max() < 0.01
    assert np.abs((r_max + r_min) / 2 / p["semi_major_axis"] - 1).max() < 0.01


def test_frames_match_the_shared_primitives(scene):
    """The windowed disc renderer paints what render.draw_discs paints on the full canvas, the lighter
    body on top."""
    centres = scene.states.reshape(N, T, 2, 4)[..., :2]
    for t in (0, 17, T - 1):
        canvas = blank(N, scene.params["background"])
        draw_discs(canvas, centres[:, t], scene.params["radius"], scene.params["object_colors"])
        np.testing.assert_array_equal(scene.frames[:, t], to_uint8(canvas))
