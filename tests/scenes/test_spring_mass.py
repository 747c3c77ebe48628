"""spring_mass: y'' = g - (k/m)(y - anchor_y - rest) - c y', checked against frequency, equilibrium and
energy."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import blank, composite, draw_segments, rect_alpha, to_uint8
from physworld.data.scenes import spring_mass
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "spring_mass.yaml").read_text())["scene"]
N, T = 48, 30


@pytest.fixture(scope="module")
def scene():
    return spring_mass.generate(np.random.default_rng(0), N, T, PARAMS)


def run(n, num_frames, seed=0, **overrides):
    return spring_mass.generate(np.random.default_rng(seed), n, num_frames, dict(PARAMS, **overrides))


def physics(scene):
    """float64 y, vy (N, T) and k, m, g, c, rest_y = anchor_y + rest (N, 1)."""
    s = scene.states.astype(np.float64)
    p = {key: np.asarray(v, np.float64)[:, None] for key, v in scene.params.items() if np.ndim(v) == 1}
    return (
        s[..., 1],
        s[..., 3],
        p["stiffness"],
        p["mass"],
        p["gravity"],
        p["damping"],
        p["anchor_y"] + p["rest_length"],
    )


def equilibrium(scene):
    """(N, 1) y_eq = anchor_y + rest + m g / k: where spring force and weight balance."""
    _, _, k, m, g, _, rest_y = physics(scene)
    return rest_y + m * g / k


def energy(scene):
    """(N, T) kinetic + spring + gravitational energy (potential -m g y, since y points down)."""
    y, v, k, m, g, _, rest_y = physics(scene)
    return 0.5 * m * v**2 + 0.5 * k * (y - rest_y) ** 2 - m * g * y


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, 4) and scene.states.dtype == np.float32
    assert spring_mass.STATE_NAMES == ("mass_x", "mass_y", "mass_vx", "mass_vy")
    assert spring_mass.POSITIONS == ((0, 1),) and np.isfinite(scene.states).all()
    shapes = {"object_colors": (N, 1, 3), "spring_color": (N, 3), "background": (N, 3), "box_half": (N,)}
    for key in ("stiffness", "mass", "gravity", "rest_length", "amplitude", "damping", "anchor_x"):
        lo, hi = PARAMS[key]
        assert (scene.params[key] >= lo).all() and (scene.params[key] <= hi).all(), key
        shapes[key] = (N,)
    for key, shape in shapes.items():
        assert scene.params[key].shape == shape and scene.params[key].dtype == np.float32, key
    np.testing.assert_allclose(
        scene.params["box_half"], PARAMS["box_size"] / 2 * scene.params["mass"] ** (1 / 3), rtol=1e-6
    )
    # Purely vertical motion straight below the anchor.
    np.testing.assert_array_equal(
        scene.states[..., 0], np.broadcast_to(scene.params["anchor_x"][:, None], (N, T))
    )
    assert (scene.states[..., 2] == 0).all()
    # A bright box on a dark background; visible motion, not too fast (px/frame).
    assert scene.frames.max() == 255 and np.median(scene.frames) < 0.1 * 255
    speed = np.abs(scene.states[..., 3])
    assert 0.5 < np.median(speed) < 4.0 and speed.max() < 5.0
    period = 2 * np.pi * np.sqrt(scene.params["mass"] / scene.params["stiffness"])
    assert (period > 14).all() and (period < 40).all()


def test_determinism():
    a, b, c = run(4, 8, seed=5), run(4, 8, seed=5), run(4, 8, seed=6)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.frames.tobytes() != c.frames.tobytes()


def test_mass_stays_inside_canvas_and_below_the_anchor(scene):
    half = scene.params["box_half"][:, None]
    x, y = scene.states[..., 0], scene.states[..., 1]
    assert (x - half >= 0).all() and (x + half <= 64).all()
    assert (y - half >= 0).all() and (y + half <= 64).all()
    # The spring never collapses: at least 4 px between the anchor and the top of the box.
    assert (y - half - PARAMS["anchor_y"] > 4).all()
    edge = np.abs(scene.params["anchor_x"]) + PARAMS["spring_width"] / 2 + PARAMS["wire_width"] / 2
    assert (edge < 64).all() and (scene.params["anchor_x"] - PARAMS["spring_width"] / 2 > 0).all()


def test_frames_are_drawn_with_the_shared_primitives(scene):
    """The windowed drawing gives the same bytes as the full-canvas render primitives."""
    p = scene.params
    ones, half = np.ones(N, np.float32), p["box_half"]
    ax, ay = p["anchor_x"], PARAMS["anchor_y"] * ones
    anchor = np.stack([ax, ay], -1)
    for t in (0, T // 2, T - 1):
        canvas = blank(N, p["background"])
        ceiling = rect_alpha(
            ax - spring_mass.CEILING_HALF_WIDTH, -ones, ax + spring_mass.CEILING_HALF_WIDTH, ay
        )
        composite(canvas, ceiling, p["spring_color"])
        x, y = scene.states[:, t, 0], scene.states[:, t, 1]
        points = spring_mass.spring_points(anchor, y - half, PARAMS["coils"], PARAMS["spring_width"])
        for j in range(points.shape[1] - 1):
            draw_segments(canvas, points[:, j], points[:, j + 1], PARAMS["wire_width"], p["spring_color"])
        composite(canvas, rect_alpha(x - half, y - half, x + half, y + half), p["object_colors"][:, 0])
        assert np.array_equal(to_uint8(canvas), scene.frames[:, t])


def test_spring_is_a_zigzag_from_anchor_to_box():
    anchor = np.array([[30.0, 3.0]], np.float32)
    points = spring_mass.spring_points(anchor, np.array([23.0], np.float32), 4, 6.0)[0]  # (10, 2)
    np.testing.assert_array_equal(points[0], [30.0, 3.0])
    np.testing.assert_array_equal(points[-1], [30.0, 23.0])
    assert (np.diff(points[:, 1]) > 0).all()  # moving down all the way
    np.testing.assert_array_equal(points[1:-1, 0], [27.0, 33.0] * 4)  # alternating 3 px each side


def test_oscillation_frequency_is_sqrt_k_over_m():
    """Damping 0, 120 frames: the period from zero crossings of y - y_eq (interpolated between frames,
    half a period apart) is within 3% of 2 pi sqrt(m/k)."""
    s = run(32, 120, damping=[0.0, 0.0])
    y, _, k, m, _, _, _ = physics(s)
    u = y - equilibrium(s)
    expected = 2 * np.pi * np.sqrt(m[:, 0] / k[:, 0])
    for i in range(len(u)):
        j = np.nonzero(np.sign(u[i, :-1]) * np.sign(u[i, 1:]) < 0)[0]
        times = j + u[i, j] / (u[i, j] - u[i, j + 1])
        assert len(times) >= 5
        np.testing.assert_allclose(2 * (times[-1] - times[0]) / (len(times) - 1), expected[i], rtol=0.03)


def test_positions_obey_hookes_law_about_the_shifted_equilibrium():
    """Damping 0: for harmonic motion about y_eq, the second difference of positions between frames is
    exactly linear in y: y(t+1) - 2 y(t) + y(t-1) = -2 (1 - cos w) (y(t) - y_eq). A straight-line fit
    recovers y_eq = anchor_y + rest + m g / k to 1e-3 px and w = sqrt(k/m) to 1e-4 relative."""
    s = run(32, 60, damping=[0.0, 0.0])
    y, _, k, m, _, _, rest_y = physics(s)
    second = y[:, 2:] - 2 * y[:, 1:-1] + y[:, :-2]
    for i in range(len(y)):
        slope, intercept = np.polyfit(y[i, 1:-1], second[i], 1)
        np.testing.assert_allclose(-intercept / slope, equilibrium(s)[i, 0], atol=1e-3)
        np.testing.assert_allclose(np.arccos(1 + slope / 2), np.sqrt(k[i, 0] / m[i, 0]), rtol=1e-4)
    # Gravity really moves the equilibrium: the static stretch m g / k is far above the 1e-3 px tolerance.
    assert (equilibrium(s) - rest_y > 0.2).all()


def test_mass_at_rest_in_equilibrium_stays_there():
    """Amplitude 0: the mass starts at y_eq with no velocity and does not move (1e-4 px)."""
    s = run(8, 40, amplitude=[0.0, 0.0])
    y, v = physics(s)[:2]
    np.testing.assert_allclose(y, np.broadcast_to(equilibrium(s), y.shape), atol=1e-4)
    np.testing.assert_allclose(v, 0.0, atol=1e-6)


def test_initial_amplitude(scene):
    """Each sequence starts on an oscillation of amplitude A: (y - y_eq)^2 + (v / w)^2 = A^2 at frame 0."""
    y, v, k, m, _, _, _ = physics(scene)
    radius = np.hypot(y[:, 0] - equilibrium(scene)[:, 0], v[:, 0] / np.sqrt(k[:, 0] / m[:, 0]))
    np.testing.assert_allclose(radius, scene.params["amplitude"], rtol=1e-5)


def test_energy_is_conserved_without_damping():
    """Damping 0, 120 frames: the total energy changes by less than 1e-4 of the oscillation energy
    k A^2 / 2 (the budget is 0.5%), while energy flows between its kinetic and spring forms."""
    s = run(32, 120, damping=[0.0, 0.0])
    e = energy(s)
    y, v, k, m, _, _, _ = physics(s)
    scale = 0.5 * k[:, 0] * s.params["amplitude"].astype(np.float64) ** 2
    assert (np.abs(e - e[:, :1]).max(1) / scale).max() < 1e-4
    ke = 0.5 * m * v**2
    assert (np.ptp(ke, axis=1) / scale > 0.95).all()


def test_damping_drains_energy_at_the_rate_b_v2():
    """Damping > 0: energy falls at every frame, and the total loss equals the work of the damping force,
    the integral of c m v^2 dt (trapezoid rule over frames), within 2%."""
    s = run(32, 60, damping=[0.01, 0.02])
    e = energy(s)
    assert (np.diff(e, axis=1) < 0).all()
    _, v, _, m, _, c, _ = physics(s)
    power = c * m * v**2  # (N, T)
    work = 0.5 * (power[:, 1:] + power[:, :-1]).sum(1)
    np.testing.assert_allclose(e[:, 0] - e[:, -1], work, rtol=0.02)
