"""pendulum: theta'' = -(g/L) sin(theta) - c theta', checked against periods, energy and kinematics."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.integrate import integrate, rk4_step
from physworld.data.render import blank, draw_discs, draw_segments, to_uint8
from physworld.data.scenes import pendulum
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "pendulum.yaml").read_text())["scene"]
N, T = 48, 30


@pytest.fixture(scope="module")
def scene():
    return pendulum.generate(np.random.default_rng(0), N, T, PARAMS)


def run(n, num_frames, seed=0, **overrides):
    return pendulum.generate(np.random.default_rng(seed), n, num_frames, dict(PARAMS, **overrides))


def unpack(scene):
    """float64 theta, omega (N, T) and the params L, g, c as (N, 1)."""
    s = scene.states.astype(np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in scene.params.items()}
    return s[..., 0], s[..., 1], p["length"][:, None], p["gravity"][:, None], p["damping"][:, None]


def energy(scene):
    """(N, T) energy per unit mass: L^2 omega^2 / 2 + g L (1 - cos theta), zero at rest."""
    theta, omega, length, g, _ = unpack(scene)
    return 0.5 * length**2 * omega**2 + g * length * (1 - np.cos(theta))


def measured_period(x):
    """Period of an oscillating series (T,) from its zero crossings, linearly interpolated between frames:
    consecutive crossings are half a period apart."""
    i = np.nonzero(np.sign(x[:-1]) * np.sign(x[1:]) < 0)[0]
    times = i + x[i] / (x[i] - x[i + 1])
    assert len(times) >= 3, "need at least a full period"
    return 2 * (times[-1] - times[0]) / (len(times) - 1)


def exact_period(length, g, amplitude):
    """Period of the nonlinear pendulum: 4 sqrt(L/g) K(sin(A/2)), with the complete elliptic integral
    K(k) = pi / (2 AGM(1, sqrt(1 - k^2)))."""
    a, b = np.ones_like(amplitude), np.cos(amplitude / 2)  # sqrt(1 - sin^2(A/2))
    for _ in range(10):
        a, b = (a + b) / 2, np.sqrt(a * b)
    return 4 * np.sqrt(length / g) * np.pi / (2 * a)


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, len(pendulum.STATE_NAMES)) and scene.states.dtype == np.float32
    assert np.isfinite(scene.states).all()
    assert pendulum.POSITIONS == ((2, 3),) and pendulum.STATE_NAMES[2:4] == ("bob_x", "bob_y")
    shapes = {"object_colors": (N, 1, 3), "pivot": (N, 2), "rod_color": (N, 3), "background": (N, 3)}
    for key in ("length", "gravity", "amplitude", "damping", "bob_radius"):
        lo, hi = PARAMS[key]
        assert (scene.params[key] >= lo).all() and (scene.params[key] <= hi).all(), key
        shapes[key] = (N,)
    for key, shape in shapes.items():
        assert scene.params[key].shape == shape and scene.params[key].dtype == np.float32, key
    # Bright bob on a dark background; the swing is visible but not too fast (px/frame).
    assert scene.frames.max() == 255 and np.median(scene.frames) < 0.1 * 255
    speed = np.hypot(scene.states[..., 4], scene.states[..., 5])
    assert 0.5 < np.median(speed) < 4.0 and speed.max() < 5.0
    # The small-swing period 2 pi sqrt(L/g) is 15-40 frames, so a 30-frame clip shows real swinging.
    period = 2 * np.pi * np.sqrt(scene.params["length"] / scene.params["gravity"])
    assert (period > 15).all() and (period < 40).all()


def test_determinism():
    a, b, c = run(4, 8, seed=5), run(4, 8, seed=5), run(4, 8, seed=6)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.frames.tobytes() != c.frames.tobytes()


def test_pendulum_stays_inside_canvas(scene):
    r = scene.params["bob_radius"][:, None]
    for c in (scene.states[..., 2], scene.states[..., 3]):
        assert (c - r >= 0).all() and (c + r <= 64).all()
    pivot = scene.params["pivot"]
    assert (pivot - pendulum.PIVOT_RADIUS >= 0).all() and (pivot + pendulum.PIVOT_RADIUS <= 64).all()
    # The bob never rises above the pivot (amplitude < pi/2), so the rod never leaves the canvas either.
    assert (scene.states[..., 3] > pivot[:, None, 1]).all()


def test_frames_are_drawn_with_the_shared_primitives(scene):
    """The windowed drawing gives the same bytes as the full-canvas render primitives."""
    p = scene.params
    pivot_radius = np.full((N, 1), pendulum.PIVOT_RADIUS, np.float32)
    for t in (0, T // 2, T - 1):
        canvas = blank(N, p["background"])
        draw_discs(canvas, p["pivot"][:, None], pivot_radius, p["rod_color"][:, None])
        bob = scene.states[:, t, 2:4]
        draw_segments(canvas, p["pivot"], bob, PARAMS["rod_width"], p["rod_color"])
        draw_discs(canvas, bob[:, None], p["bob_radius"][:, None], p["object_colors"])
        assert np.array_equal(to_uint8(canvas), scene.frames[:, t])


def test_bob_is_at_pivot_plus_rod(scene):
    """bob = pivot + L (sin theta, cos theta), velocity = L omega (cos theta, -sin theta); 1e-4 px."""
    theta, omega, length, _, _ = unpack(scene)
    s = scene.states.astype(np.float64)
    pivot = scene.params["pivot"].astype(np.float64)
    np.testing.assert_allclose(s[..., 2], pivot[:, None, 0] + length * np.sin(theta), atol=1e-4)
    np.testing.assert_allclose(s[..., 3], pivot[:, None, 1] + length * np.cos(theta), atol=1e-4)
    np.testing.assert_allclose(s[..., 4], length * omega * np.cos(theta), atol=1e-4)
    np.testing.assert_allclose(s[..., 5], -length * omega * np.sin(theta), atol=1e-4)
    np.testing.assert_allclose(
        np.hypot(s[..., 2] - pivot[:, None, 0], s[..., 3] - pivot[:, None, 1]),
        np.broadcast_to(length, theta.shape),
        atol=1e-4,
    )


def test_initial_energy_matches_the_amplitude(scene):
    """Each sequence starts on a swing of amplitude A: E(0) = g L (1 - cos A), to 1e-5 relative."""
    _, _, length, g, _ = unpack(scene)
    amp = scene.params["amplitude"].astype(np.float64)[:, None]
    np.testing.assert_allclose(energy(scene)[:, :1], g * length * (1 - np.cos(amp)), rtol=1e-5)


def test_small_swing_period_is_2pi_sqrt_l_over_g():
    """Amplitude 0.05 rad, no damping, 120 frames: the period from zero crossings of theta is within 3% of
    2 pi sqrt(L/g) (the finite-amplitude correction A^2/16 is only 0.016%)."""
    s = run(32, 120, amplitude=[0.05, 0.05], damping=[0.0, 0.0])
    theta, _, length, g, _ = unpack(s)
    measured = np.array([measured_period(x) for x in theta])
    expected = 2 * np.pi * np.sqrt(length[:, 0] / g[:, 0])
    np.testing.assert_allclose(measured, expected, rtol=0.03)


def test_large_swing_period_follows_the_nonlinear_law():
    """Amplitudes 1.0-1.4 rad: the period matches the exact elliptic-integral period within 1%, and is
    clearly (more than 5%) longer than the small-swing period -- the sin(theta) is really integrated."""
    s = run(32, 150, amplitude=[1.0, 1.4], damping=[0.0, 0.0])
    theta, _, length, g, _ = unpack(s)
    measured = np.array([measured_period(x) for x in theta])
    amp = s.params["amplitude"].astype(np.float64)
    np.testing.assert_allclose(measured, exact_period(length[:, 0], g[:, 0], amp), rtol=0.01)
    assert (measured > 1.05 * 2 * np.pi * np.sqrt(length[:, 0] / g[:, 0])).all()


def test_energy_is_conserved_without_damping():
    """damping 0: energy stays within 1e-4 relative over 120 frames (the budget is 0.5%); the kinetic
    part alone changes a lot, so the check has teeth."""
    s = run(32, 120, damping=[0.0, 0.0])
    e = energy(s)
    assert (np.abs(e - e[:, :1]) / e[:, :1]).max() < 1e-4
    _, omega, length, _, _ = unpack(s)
    ke = 0.5 * length**2 * omega**2
    assert ((ke.max(1) - ke.min(1)) / e[:, 0] > 0.9).all()


def test_damping_drains_energy_at_the_rate_c_l2_omega2():
    """damping > 0: energy falls at every frame, and the total loss equals the work of the damping torque,
    the integral of c L^2 omega^2 dt (trapezoid rule over frames), within 2%."""
    s = run(32, 60, damping=[0.01, 0.02])
    e = energy(s)
    assert (np.diff(e, axis=1) < 0).all()
    _, omega, length, _, c = unpack(s)
    power = c * length**2 * omega**2  # (N, T)
    work = 0.5 * (power[:, 1:] + power[:, :-1]).sum(1)
    np.testing.assert_allclose(e[:, 0] - e[:, -1], work, rtol=0.02)
    assert ((e[:, 0] - e[:, -1]) / e[:, 0] > 0.3).all()  # a clearly visible decay


def test_rk4_step_is_fourth_order():
    """y' = -y from y = 1 to t = 1: halving the step divides the error by ~16."""

    def error(steps):
        y = np.ones(1)
        for _ in range(steps):
            y = rk4_step(lambda v: -v, y, 1.0 / steps)
        return abs(y[0] - np.exp(-1.0))

    assert 14 < error(8) / error(16) < 18


def test_integrate_records_every_frame():
    """y' = -y: frame 0 is y0, frame t is exp(-t) y0 (to RK4's accuracy), `steps` steps of dt a frame."""
    y0 = np.array([[1.0, -2.0], [0.5, 3.0]])
    out = integrate(lambda y: -y, y0, 1.0 / 10, 10, 5)
    assert out.shape == (2, 5, 2) and out.dtype == np.float64
    np.testing.assert_array_equal(out[:, 0], y0)
    np.testing.assert_allclose(out, y0[:, None] * np.exp(-np.arange(5.0))[None, :, None], rtol=1e-5)
    one_step = integrate(lambda y: -y, y0, 1.0, 1, 5)  # one coarse step a frame: a visibly larger error
    assert (
        np.abs(one_step[:, -1] - y0 * np.exp(-4.0)).max() > 100 * np.abs(out[:, -1] - y0 * np.exp(-4.0)).max()
    )
