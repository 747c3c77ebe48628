"""bouncing_balls: two balls under gravity, elastic walls and ball-ball collisions, checked on physics."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import blank, draw_discs, to_uint8
from physworld.data.scenes import bouncing_balls
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "bouncing_balls.yaml").read_text())["scene"]
N, T, K = 48, 30, bouncing_balls.NUM_BALLS


@pytest.fixture(scope="module")
def scene():
    return bouncing_balls.generate(np.random.default_rng(0), N, T, PARAMS)


def unpack(scene):
    """float64 (N, T, K) arrays x, y, vx, vy and the per-sequence params."""
    s = scene.states.astype(np.float64).reshape(N, T, K, 4)
    p = {key: np.asarray(v, np.float64) for key, v in scene.params.items()}
    return s[..., 0], s[..., 1], s[..., 2], s[..., 3], p


def total_energy(scene):
    """(N, T) kinetic + potential energy, potential measured from each ball's lowest possible centre."""
    x, y, vx, vy, p = unpack(scene)
    m, r, g = p["mass"][:, None], p["radius"][:, None], p["gravity"][:, None, None]
    return (0.5 * m * (vx**2 + vy**2) + m * g * (64 - r - y)).sum(-1)


def far_from_walls(scene, extra=1.0):
    """(N, T-1, K) True where ball k cannot reach a wall between frames t and t+1 (a frame moves a ball
    by at most |v(t)| + |v(t+1)| in each axis)."""
    x, y, vx, vy, p = unpack(scene)
    r = p["radius"][:, None]
    reach = np.maximum(np.abs(vx[:, :-1]), np.abs(vx[:, 1:])) + np.maximum(
        np.abs(vy[:, :-1]), np.abs(vy[:, 1:])
    )
    gap = np.minimum.reduce([x - r, 64 - r - x, y - r, 64 - r - y])[:, :-1]
    return gap > reach + extra


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, len(bouncing_balls.STATE_NAMES)) and scene.states.dtype == np.float32
    assert np.isfinite(scene.states).all()
    assert bouncing_balls.POSITIONS == ((0, 1), (4, 5))
    assert (
        scene.params["object_colors"].shape == (N, K, 3) and scene.params["object_colors"].dtype == np.float32
    )
    for key, shape in {"radius": (N, K), "mass": (N, K), "gravity": (N,), "background": (N, 3)}.items():
        assert scene.params[key].shape == shape and scene.params[key].dtype == np.float32, key
    lo, hi = PARAMS["gravity"]
    assert (scene.params["gravity"] >= lo).all() and (scene.params["gravity"] <= hi).all()
    np.testing.assert_allclose(scene.params["mass"], scene.params["radius"] ** 2, rtol=1e-6)
    # Bright balls on a dark background; motion is visible but not too fast (px/frame).
    assert scene.frames.max() == 255 and np.median(scene.frames) < 0.1 * 255
    speed = np.hypot(scene.states[..., 2::4], scene.states[..., 3::4])
    assert 0.5 < np.median(speed) < 4.0 and speed.max() < 10.0


def test_determinism():
    a = bouncing_balls.generate(np.random.default_rng(5), 4, 8, PARAMS)
    b = bouncing_balls.generate(np.random.default_rng(5), 4, 8, PARAMS)
    c = bouncing_balls.generate(np.random.default_rng(6), 4, 8, PARAMS)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.frames.tobytes() != c.frames.tobytes()


def test_balls_stay_inside_canvas(scene):
    x, y, _, _, p = unpack(scene)
    r = p["radius"][:, None]
    for c in (x, y):
        assert (c - r >= -1e-4).all() and (c + r <= 64 + 1e-4).all()


def test_frames_are_drawn_with_the_shared_primitives(scene):
    # The fast windowed renderer must give the same bytes as render.draw_discs on the full canvas.
    for t in (0, T // 2, T - 1):
        canvas = blank(N, scene.params["background"])
        centres = scene.states[:, t].reshape(N, K, 4)[..., :2]
        draw_discs(canvas, centres, scene.params["radius"], scene.params["object_colors"])
        assert np.array_equal(to_uint8(canvas), scene.frames[:, t])


def test_free_flight_accelerates_at_g(scene):
    """Away from walls and from the other ball, every frame is an exact ballistic step."""
    x, y, vx, vy, p = unpack(scene)
    g = p["gravity"][:, None, None]
    dist = np.hypot(x[..., 0] - x[..., 1], y[..., 0] - y[..., 1])  # (N, T)
    closing_room = dist[:, :-1] - p["radius"].sum(-1)[:, None]
    rel_speed = np.hypot(vx[..., 0] - vx[..., 1], vy[..., 0] - vy[..., 1])
    apart = closing_room > np.maximum(rel_speed[:, :-1], rel_speed[:, 1:]) + 1.0  # (N, T-1)
    free = far_from_walls(scene) & apart[..., None]  # (N, T-1, K)
    assert free.mean() > 0.5
    # Tolerance 1e-4 px/frame (float32 states); vy gains exactly g per frame, vx is unchanged.
    np.testing.assert_allclose(np.diff(vy, axis=1)[free], np.broadcast_to(g, free.shape)[free], atol=1e-4)
    np.testing.assert_allclose(np.diff(vx, axis=1)[free], 0.0, atol=1e-4)
    # Position: y(t+1) - y(t) = vy(t) + g / 2, within 1e-3 px.
    step = np.diff(y, axis=1) - vy[:, :-1] - np.broadcast_to(g / 2, free.shape)
    np.testing.assert_allclose(step[free], 0.0, atol=1e-3)


def test_ball_collisions_conserve_momentum_and_energy(scene):
    """Frames where the balls collided (velocity not ballistic) with neither ball near a wall: total
    momentum changes only by the gravity impulse M g per frame, and KE + PE is unchanged."""
    x, y, vx, vy, p = unpack(scene)
    m, g = p["mass"], p["gravity"]
    kicked = np.hypot(np.diff(vx, axis=1), np.diff(vy, axis=1) - g[:, None, None]) > 1e-3  # (N, T-1, K)
    events = kicked.any(-1) & far_from_walls(scene).all(-1)  # (N, T-1)
    assert events.sum() >= 3, "expected a few ball-ball collisions away from the walls"
    px = (m[:, None] * vx).sum(-1)  # (N, T)
    py = (m[:, None] * vy).sum(-1)
    scale = (m[:, None] * np.hypot(vx, vy)).sum(-1)[:, :-1]  # momentum scale for a relative tolerance
    dpx, dpy = np.diff(px, axis=1), np.diff(py, axis=1) - m.sum(-1)[:, None] * g[:, None]
    assert (np.abs(dpx[events]) < 1e-5 * scale[events] + 1e-4).all()
    assert (np.abs(dpy[events]) < 1e-5 * scale[events] + 1e-4).all()
    energy = total_energy(scene)
    np.testing.assert_allclose(energy[:, 1:][events], energy[:, :-1][events], rtol=1e-5)


def test_collide_matches_textbook_elastic_collision():
    """Head-on and oblique two-body collisions against the closed-form elastic result."""
    m1, m2, u1, u2 = 9.0, 25.0, 2.0, -1.0
    pos = np.array([[[10.0, 20.0], [17.5, 20.0]]])  # overlapping (radii 3 + 5 > 7.5), approaching
    vel = np.array([[[u1, 0.0], [u2, 0.0]]])
    mass, radius, present = np.array([[m1, m2]]), np.array([[3.0, 5.0]]), np.ones((1, 2), bool)
    bouncing_balls.collide(pos, vel, mass, radius, present)
    v1 = ((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2)
    v2 = ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)
    np.testing.assert_allclose(vel[0], [[v1, 0.0], [v2, 0.0]], atol=1e-12)
    # Oblique: only the velocity component along the line of centres is exchanged.
    pos = np.array([[[10.0, 10.0], [15.0, 14.0]]])
    vel0 = np.array([[[1.5, 0.5], [-0.5, -1.0]]])
    vel = vel0.copy()
    bouncing_balls.collide(pos, vel, mass, radius, present)
    n = (pos[0, 1] - pos[0, 0]) / np.linalg.norm(pos[0, 1] - pos[0, 0])
    tangent = np.array([-n[1], n[0]])
    np.testing.assert_allclose(vel[0] @ tangent, vel0[0] @ tangent, atol=1e-12)
    np.testing.assert_allclose(mass[0] @ vel[0], mass[0] @ vel0[0], atol=1e-12)
    ke, ke0 = ((0.5 * mass[0] * (v**2).sum(-1)).sum() for v in (vel[0], vel0[0]))
    np.testing.assert_allclose(ke, ke0, rtol=1e-12)
    # Balls moving apart, or an absent partner, get no impulse.
    vel = -vel0.copy()
    bouncing_balls.collide(pos, vel, mass, radius, present)
    np.testing.assert_array_equal(vel, -vel0)
    vel = vel0.copy()
    bouncing_balls.collide(pos, vel, mass, radius, np.array([[True, False]]))
    np.testing.assert_array_equal(vel, vel0)


def test_simulated_head_on_collision_without_gravity():
    """A constructed case through the integrator: unequal balls meet head-on away from the walls."""
    pos = np.array([[[20.0, 32.0], [44.0, 32.0]]])
    vel = np.array([[[1.0, 0.0], [-0.5, 0.0]]])
    mass, radius = np.array([[16.0, 36.0]]), np.array([[4.0, 6.0]])
    states = bouncing_balls.simulate(pos, vel, mass, radius, np.zeros(1), np.ones((1, 2), bool), 14, 10)
    v = states[0, :, :, 2:]  # (T, K, 2)
    m1, m2, u1, u2 = 16.0, 36.0, 1.0, -0.5
    assert np.allclose(v[0], [[u1, 0], [u2, 0]]) and not np.allclose(v[-1], v[0])
    expected = [((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2), ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)]
    np.testing.assert_allclose(v[-1, :, 0], expected, atol=1e-12)
    np.testing.assert_allclose((mass[0, :, None] * v).sum(1), [[m1 * u1 + m2 * u2, 0.0]] * 14, atol=1e-12)


def test_total_mechanical_energy_is_conserved(scene):
    """Elastic everywhere and wall hits timed exactly: KE + PE holds to 1e-5 relative over 30 frames."""
    energy = total_energy(scene)
    rel = np.abs(energy - energy[:, :1]) / energy[:, :1]
    assert rel.max() < 1e-5
    # ... while kinetic energy alone does change (gravity does work), so the check has teeth.
    _, _, vx, vy, p = unpack(scene)
    ke = (0.5 * p["mass"][:, None] * (vx**2 + vy**2)).sum(-1)
    assert (np.abs(ke - ke[:, :1]) / energy[:, :1]).max() > 0.05


def test_wall_bounce_under_gravity_is_exact():
    """A ball dropped onto the floor returns to its release height (a mirrored overshoot would not)."""
    pos, vel = np.array([[[32.0, 10.0]]]), np.zeros((1, 1, 2))
    mass, radius, g = np.ones((1, 1)), np.array([[5.0]]), np.array([0.15])
    states = bouncing_balls.simulate(pos, vel, mass, radius, g, np.ones((1, 1), bool), 80, 3)
    y, vy = states[0, :, 0, 1], states[0, :, 0, 3]
    assert y.max() <= 59.0 + 1e-9 and (vy < 0).any()  # it hit the floor (centre at 64 - r) and rose
    energy = 0.5 * vy**2 + g[0] * (59.0 - y)
    np.testing.assert_allclose(energy, energy[0], rtol=1e-9)
