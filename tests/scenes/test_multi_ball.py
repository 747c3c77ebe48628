"""multi_ball: 2-4 elastic balls without gravity, NaN padding, checked against conservation laws."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import blank, draw_discs, to_uint8
from physworld.data.scenes import multi_ball
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "multi_ball.yaml").read_text())["scene"]
N, T, K = 64, 30, multi_ball.MAX_BALLS


@pytest.fixture(scope="module")
def scene():
    return multi_ball.generate(np.random.default_rng(0), N, T, PARAMS)


def unpack(scene):
    """float64 (N, T, K) x, y, vx, vy (NaN for absent balls), mass and radius (N, K), present (N, K)."""
    s = scene.states.astype(np.float64).reshape(N, T, K, 4)
    present = np.arange(K) < scene.params["num_objects"][:, None]
    mass = np.nan_to_num(scene.params["mass"].astype(np.float64))  # absent balls weigh nothing
    return (
        s[..., 0],
        s[..., 1],
        s[..., 2],
        s[..., 3],
        mass,
        scene.params["radius"].astype(np.float64),
        present,
    )


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, len(multi_ball.STATE_NAMES)) and scene.states.dtype == np.float32
    assert len(multi_ball.STATE_NAMES) == 4 * K and multi_ball.POSITIONS[3] == (12, 13)
    assert (
        scene.params["object_colors"].shape == (N, K, 3) and np.isfinite(scene.params["object_colors"]).all()
    )
    assert scene.params["num_objects"].shape == (N,) and scene.params["num_objects"].dtype == np.int64
    assert scene.params["radius"].dtype == np.float32 and scene.params["mass"].shape == (N, K)
    assert scene.frames.max() == 255 and np.median(scene.frames) < 0.1 * 255
    speed = np.hypot(scene.states[..., 2::4], scene.states[..., 3::4])
    assert 0.5 < np.nanmedian(speed) < 4.0 and np.nanmax(speed) < 10.0


def test_num_objects_and_nan_padding(scene):
    num = scene.params["num_objects"]
    assert num.min() >= 2 and num.max() <= 4 and set(num.tolist()) == {2, 3, 4}
    present = np.arange(K) < num[:, None]  # (N, K)
    absent_states = np.isnan(scene.states.reshape(N, T, K, 4))
    assert np.array_equal(absent_states, np.broadcast_to(~present[:, None, :, None], absent_states.shape))
    assert np.array_equal(np.isnan(scene.params["radius"]), ~present)
    assert np.array_equal(np.isnan(scene.params["mass"]), ~present)


def test_determinism():
    a = multi_ball.generate(np.random.default_rng(5), 4, 8, PARAMS)
    b = multi_ball.generate(np.random.default_rng(5), 4, 8, PARAMS)
    c = multi_ball.generate(np.random.default_rng(6), 4, 8, PARAMS)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()


def test_balls_stay_inside_canvas(scene):
    x, y, _, _, _, r, present = unpack(scene)
    for c in (x, y):
        c, rr = c.transpose(0, 2, 1)[present], r[present][:, None]  # (balls, T)
        assert (c - rr >= -1e-4).all() and (c + rr <= 64 + 1e-4).all()


def test_frames_are_drawn_with_the_shared_primitives(scene):
    # Same bytes as render.draw_discs, and absent balls are not drawn.
    _, _, _, _, _, _, present = unpack(scene)
    radius = np.nan_to_num(scene.params["radius"], nan=1.0)
    for t in (0, T - 1):
        canvas = blank(N, scene.params["background"])
        centres = np.nan_to_num(scene.states[:, t].reshape(N, K, 4)[..., :2], nan=32.0)
        draw_discs(canvas, centres, radius, scene.params["object_colors"], visible=present)
        assert np.array_equal(to_uint8(canvas), scene.frames[:, t])


def test_kinetic_energy_is_conserved_over_the_sequence(scene):
    """No gravity and elastic everywhere: total KE is constant, to 1e-5 relative (float32 states)."""
    _, _, vx, vy, m, _, _ = unpack(scene)
    ke = np.nansum(0.5 * m[:, None] * (vx**2 + vy**2), axis=-1)  # (N, T)
    assert (np.abs(ke - ke[:, :1]) / ke[:, :1]).max() < 1e-5


def test_momentum_is_conserved_across_ball_collisions(scene):
    """Frames with a ball-ball collision and no ball able to reach a wall: total momentum is unchanged."""
    x, y, vx, vy, m, r, present = unpack(scene)
    reach = np.fmax(np.abs(vx[:, :-1]), np.abs(vx[:, 1:])) + np.fmax(np.abs(vy[:, :-1]), np.abs(vy[:, 1:]))
    gap = np.fmin(np.fmin(x - r[:, None], 64 - r[:, None] - x), np.fmin(y - r[:, None], 64 - r[:, None] - y))
    near_wall = (gap[:, :-1] <= reach + 1.0) & present[:, None]  # (N, T-1, K)
    kicked = np.nan_to_num(np.hypot(np.diff(vx, axis=1), np.diff(vy, axis=1))) > 1e-3
    events = kicked.any(-1) & ~near_wall.any(-1)  # (N, T-1)
    assert events.sum() >= 5, "expected several ball-ball collisions away from the walls"
    for v in (vx, vy):
        p = np.nansum(m[:, None] * v, axis=-1)  # (N, T)
        scale = np.nansum(m[:, None] * np.hypot(vx, vy), axis=-1)[:, :-1]
        assert (np.abs(np.diff(p, axis=1))[events] < 1e-5 * scale[events] + 1e-4).all()
    # Free flight elsewhere: a ball away from walls that was not kicked moved by exactly its velocity.
    free = ~kicked & ~near_wall & present[:, None]
    assert free.mean() > 0.3
    np.testing.assert_allclose((np.diff(x, axis=1) - vx[:, :-1])[free], 0.0, atol=1e-3)
    np.testing.assert_allclose((np.diff(y, axis=1) - vy[:, :-1])[free], 0.0, atol=1e-3)


def test_bad_num_objects_fails_with_the_key():
    with pytest.raises(ValueError, match="num_objects"):
        multi_ball.generate(np.random.default_rng(0), 2, 3, {**PARAMS, "num_objects": [2, 5]})
