"""projectile: a drag-free flight is an exact parabola with acceleration g, drag decelerates as -c |v| v and
shortens the flight, walls bounce with restitution e, and the ball stays in view."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import SIZE, blank, composite, draw_discs, rect_alpha, to_uint8
from physworld.data.scenes import projectile
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "projectile.yaml").read_text())["scene"]
N, T = 64, 30


def make(seed=0, n=N, num_frames=T, **overrides):
    return projectile.generate(np.random.default_rng(seed), n, num_frames, {**PARAMS, **overrides})


@pytest.fixture(scope="module")
def scene():
    return make()


def free_frames(states):
    """(N,) number of leading frames before the first wall contact. Gravity and drag never flip the sign of
    vx, nor turn a falling ball (vy > 0) upwards, so the first such flip marks the first bounce."""
    vx, vy = states[..., 2].astype(np.float64), states[..., 3].astype(np.float64)
    flip = (np.sign(vx[:, 1:]) != np.sign(vx[:, :1])) | ((vy[:, :-1] > 0) & (vy[:, 1:] < 0))  # (N, T-1)
    return np.where(flip.any(1), flip.argmax(1) + 1, states.shape[1])


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, 4) and scene.states.dtype == np.float32
    assert np.isfinite(scene.states).all()
    assert scene.params["object_colors"].shape == (N, 1, 3)
    for key in ("radius", "gravity", "drag", "restitution", "launch_speed", "launch_angle", "apex_height"):
        value = scene.params[key]
        assert value.shape == (N,) and value.dtype == np.float32, key
        low, high = PARAMS[key] if key in PARAMS else (-np.inf, np.inf)
        if key == "launch_angle":
            low, high = np.deg2rad(PARAMS[key])
        assert (value >= low - 1e-6).all() and (value <= high + 1e-6).all(), key
    assert 0.2 < scene.params["from_right"].mean() < 0.8  # both launch sides occur
    speed = np.hypot(scene.states[..., 2], scene.states[..., 3])
    assert speed.max() < 5.0 and np.median(speed) > 1.0  # visible motion, never a blur


def test_launch_matches_params(scene):
    s0, p = scene.states[:, 0].astype(np.float64), scene.params
    np.testing.assert_allclose(np.hypot(s0[:, 2], s0[:, 3]), p["launch_speed"], rtol=1e-5)
    np.testing.assert_allclose(np.arctan2(-s0[:, 3], np.abs(s0[:, 2])), p["launch_angle"], atol=1e-5)
    np.testing.assert_array_equal(s0[:, 2] < 0, p["from_right"].astype(bool))  # flies towards the far side
    # The speed gives a drag-free apex of `apex_height`: vy^2 = 2 g h.
    np.testing.assert_allclose(s0[:, 3] ** 2, 2 * p["gravity"] * p["apex_height"], rtol=1e-5)


def test_determinism():
    a, b, c = make(5, 4, 8), make(5, 4, 8), make(6, 4, 8)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()


def test_ball_stays_in_view(scene):
    x, y = scene.states[..., 0], scene.states[..., 1]
    r = scene.params["radius"][:, None]
    assert (x - r >= -1e-4).all() and (x + r <= SIZE + 1e-4).all()
    assert (y - r >= 2.0).all()  # the ranges keep the top of the flight below the top edge
    assert (y + r <= PARAMS["floor_y"] + 1e-4).all()  # never sinks into the floor


def test_drag_free_flight_is_a_parabola_with_acceleration_g():
    scene = make(1, drag=[0.0, 0.0])
    free = free_frames(scene.states)
    fitted = 0
    for q in np.flatnonzero(free >= 8):  # sequences with at least 8 frames before the first bounce
        t = np.arange(free[q], dtype=np.float64)
        x, y = (
            scene.states[q, : free[q], 0].astype(np.float64),
            scene.states[q, : free[q], 1].astype(np.float64),
        )
        cx, cy = np.polyfit(t, x, 1), np.polyfit(t, y, 2)
        assert np.abs(np.polyval(cx, t) - x).max() < 1e-3  # uniform horizontal motion, px
        assert np.abs(np.polyval(cy, t) - y).max() < 1e-3  # uniformly accelerated vertical motion, px
        assert abs(2 * cy[0] / scene.params["gravity"][q] - 1) < 0.005  # the fitted acceleration is g
        fitted += 1
    assert fitted >= N // 2


def test_drag_deceleration_is_quadratic_in_speed():
    """Central differences of the saved velocities give the acceleration; minus gravity it must be
    -c |v| v with the sequence's own c (least-squares c within 2%, direction antiparallel to v)."""
    scene = make(2, drag=[0.01, 0.02])
    s = scene.states.astype(np.float64)
    free = free_frames(scene.states)
    checked = 0
    for q in np.flatnonzero(free >= 6):
        v = s[q, : free[q], 2:4]  # (F, 2) px/frame
        accel = (v[2:] - v[:-2]) / 2  # (F-2, 2) at frames 1..F-2
        accel[:, 1] -= scene.params["gravity"][q]
        model = np.linalg.norm(v[1:-1], axis=1, keepdims=True) * v[1:-1]  # |v| v
        c_hat = -(accel * model).sum() / (model * model).sum()
        assert abs(c_hat / scene.params["drag"][q] - 1) < 0.02
        cos = (accel * model).sum(1) / np.linalg.norm(accel, axis=1) / np.linalg.norm(model, axis=1)
        assert (cos < -0.999).all()
        checked += 1
    assert checked >= N // 2


def test_drag_lowers_and_shortens_the_flight():
    """The same launches (same seed) with and without drag: drag lowers the apex and shortens the
    horizontal distance covered at every frame before either flight first touches a wall."""
    still, dragged = make(3, drag=[0.0, 0.0]), make(3, drag=[0.015, 0.015])
    np.testing.assert_array_equal(still.states[:, 0], dragged.states[:, 0])  # identical launches
    free = np.minimum(free_frames(still.states), free_frames(dragged.states))
    assert (free >= 5).all()
    for q in range(N):
        a, b = still.states[q, : free[q]].astype(np.float64), dragged.states[q, : free[q]].astype(np.float64)
        assert (np.abs(b[1:, 0] - b[0, 0]) < np.abs(a[1:, 0] - a[0, 0])).all()
        assert b[:, 1].min() > a[:, 1].min()  # a lower apex (y points down)


def test_floor_bounce_has_restitution_e():
    """Drag-free, the vertical speed at the floor follows from energy, v^2 + 2 g (floor - y): the rebound
    speed over the impact speed must be e (to 1e-4: without drag the contact time is exact)."""
    scene = make(4, drag=[0.0, 0.0], num_frames=60)
    s, g, e = scene.states.astype(np.float64), scene.params["gravity"], scene.params["restitution"]
    floor_c = PARAMS["floor_y"] - scene.params["radius"][:, None]
    vy, height = s[..., 3], floor_c - s[..., 1]  # height of the centre above its floor position
    bounce = (vy[:, :-1] > 0) & (vy[:, 1:] < 0)  # (N, T-1): floor contact between t and t + 1
    checked = 0
    for q, t in zip(*np.nonzero(bounce)):
        impact = np.sqrt(vy[q, t] ** 2 + 2 * g[q] * height[q, t])
        rebound = np.sqrt(vy[q, t + 1] ** 2 + 2 * g[q] * height[q, t + 1])
        if impact > 1.0:  # a clear bounce, not the ball settling on the floor
            assert abs(rebound / impact / e[q] - 1) < 1e-4
            checked += 1
    assert checked >= N // 2


def test_frames_match_the_shared_primitives(scene):
    """render_discs (windowed, for speed) paints exactly what render.draw_discs paints on the full canvas."""
    ones = np.ones(N, np.float32)
    empty = blank(N, scene.params["background"])
    floor = PARAMS["floor_y"]
    composite(empty, rect_alpha(-ones, floor * ones, 65 * ones, 65 * ones), np.full(3, projectile.FLOOR_GREY))
    for t in (0, 11, T - 1):
        canvas = empty.copy()
        draw_discs(
            canvas,
            scene.states[:, t, None, :2],
            scene.params["radius"][:, None],
            scene.params["object_colors"],
        )
        np.testing.assert_array_equal(scene.frames[:, t], to_uint8(canvas))
