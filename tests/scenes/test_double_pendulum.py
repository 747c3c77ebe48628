"""double_pendulum: the exact coupled equations, checked against a Lagrangian mass-matrix solve, energy
conservation, normal modes, the single-pendulum limit and sensitivity to initial conditions."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import blank, draw_discs, draw_segments, to_uint8
from physworld.data.scenes import double_pendulum
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "double_pendulum.yaml").read_text())["scene"]
N, T = 48, 30
PIVOT = np.array(double_pendulum.PIVOT)


@pytest.fixture(scope="module")
def scene():
    return double_pendulum.generate(np.random.default_rng(0), N, T, PARAMS)


def physical(scene):
    """float64 (N, 1) L1, L2, m1, m2, g."""
    return [
        scene.params[k].astype(np.float64)[:, None]
        for k in ("length1", "length2", "mass1", "mass2", "gravity")
    ]


def energy(th1, w1, th2, w2, l1, l2, m1, m2, g):
    """Total energy from the textbook formula: kinetic energy of both point masses plus -m g y, with y the
    depth below the pivot."""
    ke = 0.5 * m1 * l1**2 * w1**2 + 0.5 * m2 * (
        l1**2 * w1**2 + l2**2 * w2**2 + 2 * l1 * l2 * w1 * w2 * np.cos(th1 - th2)
    )
    pe = -(m1 + m2) * g * l1 * np.cos(th1) - m2 * g * l2 * np.cos(th2)
    return ke + pe


def relative_energy_drift(states, params):
    """max |E(t) - E(0)| / (E(0) - E_rest) per sequence, E_rest = the energy hanging still."""
    s = states.astype(np.float64)
    l1, l2, m1, m2, g = params
    e = energy(s[..., 0], s[..., 1], s[..., 2], s[..., 3], *params)
    rest = -(m1 + m2) * g * l1 - m2 * g * l2
    return np.abs(e - e[:, :1]).max(1) / (e[:, 0] - rest[:, 0])


def zero_crossings(x):
    i = np.nonzero(np.sign(x[:-1]) * np.sign(x[1:]) < 0)[0]
    return i + x[i] / (x[i] - x[i + 1])


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, 12) and scene.states.dtype == np.float32
    assert len(double_pendulum.STATE_NAMES) == 12 and np.isfinite(scene.states).all()
    assert double_pendulum.POSITIONS == ((4, 5), (8, 9))
    shapes = {"object_colors": (N, 2, 3), "bob_radius": (N, 2), "rod_color": (N, 3), "background": (N, 3)}
    for key in ("length1", "length2", "mass1", "mass2", "gravity"):
        lo, hi = PARAMS[key]
        assert (scene.params[key] >= lo).all() and (scene.params[key] <= hi).all(), key
        shapes[key] = (N,)
    for key, shape in shapes.items():
        assert scene.params[key].shape == shape and scene.params[key].dtype == np.float32, key
    mass = np.stack([scene.params["mass1"], scene.params["mass2"]], -1)
    np.testing.assert_allclose(scene.params["bob_radius"], PARAMS["bob_radius"] * mass ** (1 / 3), rtol=1e-6)
    # Initial angles: magnitudes from the config, either sign.
    for col, key in ((0, "theta1"), (2, "theta2")):
        mag = np.abs(scene.states[:, 0, col])
        assert (mag >= PARAMS[key][0] - 1e-6).all() and (mag <= PARAMS[key][1] + 1e-6).all()
    assert (scene.states[:, 0, 0] < 0).any() and (scene.states[:, 0, 0] > 0).any()
    # Bright bobs on a dark background; visible motion, with fast whips kept under 10 px/frame.
    assert scene.frames.max() == 255 and np.median(scene.frames) < 0.1 * 255
    speed = np.hypot(scene.states[..., [6, 10]], scene.states[..., [7, 11]])
    assert 0.5 < np.median(speed) < 4.0 and speed.max() < 10.0


def test_determinism():
    run = [double_pendulum.generate(np.random.default_rng(s), 4, 8, PARAMS) for s in (5, 5, 6)]
    a, b, c = run
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.frames.tobytes() != c.frames.tobytes()


def test_bobs_stay_inside_canvas(scene):
    for k, (xc, yc) in enumerate(double_pendulum.POSITIONS):
        r = scene.params["bob_radius"][:, None, k]
        for c in (scene.states[..., xc], scene.states[..., yc]):
            assert (c - r >= 0).all() and (c + r <= 64).all()


def test_frames_are_drawn_with_the_shared_primitives(scene):
    """The windowed drawing gives the same bytes as the full-canvas render primitives."""
    p = scene.params
    pivot = np.broadcast_to(PIVOT.astype(np.float32), (N, 2))
    for t in (0, T // 2, T - 1):
        canvas = blank(N, p["background"])
        c1, c2 = scene.states[:, t, 4:6], scene.states[:, t, 8:10]
        draw_segments(canvas, pivot, c1, PARAMS["rod_width"], p["rod_color"])
        draw_segments(canvas, c1, c2, PARAMS["rod_width"], p["rod_color"])
        pivot_radius = np.full((N, 1), double_pendulum.PIVOT_RADIUS, np.float32)
        draw_discs(canvas, pivot[:, None], pivot_radius, p["rod_color"][:, None])
        draw_discs(canvas, np.stack([c1, c2], 1), p["bob_radius"], p["object_colors"])
        assert np.array_equal(to_uint8(canvas), scene.frames[:, t])


def test_bob_positions_and_velocities_follow_the_angles(scene):
    """bob1 = pivot + L1 (sin th1, cos th1), bob2 = bob1 + L2 (sin th2, cos th2), and their time
    derivatives; 1e-4 px (px/frame)."""
    s = scene.states.astype(np.float64)
    l1, l2, _, _, _ = physical(scene)
    th1, w1, th2, w2 = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
    x1, y1 = PIVOT[0] + l1 * np.sin(th1), PIVOT[1] + l1 * np.cos(th1)
    vx1, vy1 = l1 * w1 * np.cos(th1), -l1 * w1 * np.sin(th1)
    expected = [
        x1,
        y1,
        vx1,
        vy1,
        x1 + l2 * np.sin(th2),
        y1 + l2 * np.cos(th2),
        vx1 + l2 * w2 * np.cos(th2),
        vy1 - l2 * w2 * np.sin(th2),
    ]
    for col, want in zip(range(4, 12), expected):
        np.testing.assert_allclose(s[..., col], want, atol=1e-4, err_msg=double_pendulum.STATE_NAMES[col])


def test_accelerations_match_a_lagrangian_mass_matrix_solve():
    """At random states (angles anywhere, fast spins included) the closed-form accelerations equal the
    solution of M(q) q'' = f(q, q') from the Lagrangian, to 1e-9 relative."""
    rng = np.random.default_rng(1)
    n = 200
    th1, th2 = rng.uniform(-np.pi, np.pi, (2, n))
    w1, w2 = rng.uniform(-1.0, 1.0, (2, n))
    l1, l2 = rng.uniform(5.0, 20.0, (2, n))
    m1, m2 = rng.uniform(0.1, 3.0, (2, n))
    g = rng.uniform(0.1, 1.0, n)
    a1, a2 = double_pendulum.accelerations(th1, w1, th2, w2, l1, l2, m1, m2, g)
    d = th1 - th2
    mass = np.empty((n, 2, 2))
    mass[:, 0, 0] = (m1 + m2) * l1**2
    mass[:, 0, 1] = mass[:, 1, 0] = m2 * l1 * l2 * np.cos(d)
    mass[:, 1, 1] = m2 * l2**2
    force = np.stack(
        [
            -m2 * l1 * l2 * np.sin(d) * w2**2 - (m1 + m2) * g * l1 * np.sin(th1),
            m2 * l1 * l2 * np.sin(d) * w1**2 - m2 * g * l2 * np.sin(th2),
        ],
        axis=-1,
    )
    want = np.linalg.solve(mass, force[..., None])[..., 0]  # (n, 2)
    got = np.stack([a1, a2], -1)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def test_energy_is_conserved(scene):
    """The budget is 1% of the energy above rest; RK4 with 20 sub-steps holds it far tighter (1e-4), over
    the dataset's 30 frames and over 120 frames of high-energy (tumbling) motion."""
    assert relative_energy_drift(scene.states, physical(scene)).max() < 1e-4
    wild = dict(PARAMS, theta1=[2.0, 2.4], theta2=[2.0, 2.6])
    long = double_pendulum.generate(np.random.default_rng(2), 16, 120, wild)
    assert relative_energy_drift(long.states, physical(long)).max() < 1e-4
    # ... and energy really moves between the two bobs and between kinetic and potential forms.
    s, (l1, _, m1, m2, g) = long.states.astype(np.float64), physical(long)
    ke1 = 0.5 * m1 * l1**2 * s[..., 1] ** 2
    assert (np.ptp(ke1, axis=1) > 0.2 * (m1 + m2)[:, 0] * g[:, 0] * l1[:, 0]).all()


def test_slow_normal_mode():
    """Equal masses and rods, small amplitude, started in the slow normal mode th2 = sqrt(2) th1: the motion
    stays in that mode and its period is 2 pi / sqrt((2 - sqrt(2)) g / L), within 1%."""
    n, l, g = 4, np.array([10.0, 11.0, 12.0, 13.0]), np.array([0.3, 0.5, 0.4, 0.35])
    th1 = np.full(n, 0.01)
    y0 = np.stack([th1, np.zeros(n), np.sqrt(2) * th1, np.zeros(n)], -1)
    out = double_pendulum.simulate(y0, l, l, np.ones(n), np.ones(n), g, 160, 20)
    expected = 2 * np.pi / np.sqrt((2 - np.sqrt(2)) * g / l)
    for i in range(n):
        times = zero_crossings(out[i, :, 0])
        np.testing.assert_allclose(2 * (times[-1] - times[0]) / (len(times) - 1), expected[i], rtol=0.01)
    big = np.abs(out[..., 0]) > 0.005
    np.testing.assert_allclose(out[..., 2][big] / out[..., 0][big], np.sqrt(2), rtol=0.01)


def test_light_lower_bob_leaves_a_simple_pendulum():
    """m2 -> 0: the upper rod swings as a simple pendulum, th1'' = -(g/L1) sin th1, whatever the lower bob
    does -- compared with an independent velocity-Verlet integration of that equation (10x finer step),
    to 1e-4 rad over 60 frames."""
    n = 3
    l1, l2, g = np.array([10.0, 12.0, 13.0]), np.array([12.0, 9.0, 10.0]), np.array([0.4, 0.3, 0.5])
    y0 = np.array([[1.2, 0.0, -2.0, 0.1], [-0.7, 0.05, 0.5, 0.0], [2.0, 0.0, 2.5, -0.1]])
    out = double_pendulum.simulate(y0, l1, l2, np.ones(n), np.full(n, 1e-12), g, 60, 20)
    assert np.ptp(out[..., 2] - out[..., 0], axis=1).min() > 0.5  # the lower rod really swings on its own
    th, w, h = y0[:, 0].copy(), y0[:, 1].copy(), 1 / 200
    for step in range(1, 59 * 200 + 1):
        w -= 0.5 * h * g / l1 * np.sin(th)
        th += h * w
        w -= 0.5 * h * g / l1 * np.sin(th)
        if step % 200 == 0:
            np.testing.assert_allclose(out[:, step // 200, 0], th, atol=1e-4)


def test_chaos_high_energy_diverges_low_energy_does_not():
    """Two runs 1e-6 rad apart in th1: from high-energy starts (both rods near horizontal or above) the
    angles separate by orders of magnitude within 150 frames; near the bottom they stay close."""
    rng = np.random.default_rng(3)
    n = 16
    l1, l2 = rng.uniform(*PARAMS["length1"], n), rng.uniform(*PARAMS["length2"], n)
    m1, m2 = rng.uniform(*PARAMS["mass1"], n), rng.uniform(*PARAMS["mass2"], n)
    g = rng.uniform(*PARAMS["gravity"], n)

    def growth(lo, hi):
        y0 = np.zeros((n, 4))
        y0[:, 0], y0[:, 2] = rng.uniform(lo, hi, (2, n))
        nudged = y0 + np.array([1e-6, 0.0, 0.0, 0.0])
        both = double_pendulum.simulate(
            np.concatenate([y0, nudged]), *(np.tile(a, 2) for a in (l1, l2, m1, m2, g)), 150, 20
        )
        a, b = both[:n, -1], both[n:, -1]
        return np.abs(a[:, [0, 2]] - b[:, [0, 2]]).max(-1) / 1e-6

    high, low = growth(2.2, 2.6), growth(0.05, 0.1)
    assert np.median(high) > 1e4 and (high > 1e2).all()
    assert (low < 10).all()
