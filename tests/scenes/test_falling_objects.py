"""falling_objects: free fall at g, a restitution bounce, then rest on the floor, checked against physics."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import blank, composite, disc_alpha, rect_alpha, to_uint8
from physworld.data.scenes import falling_objects
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "falling_objects.yaml").read_text())["scene"]
N, T, K = 64, 30, falling_objects.MAX_OBJECTS
FLOOR = PARAMS["floor_y"]
GREY = falling_objects.FLOOR_GREY


@pytest.fixture(scope="module")
def scene():
    return falling_objects.generate(np.random.default_rng(0), N, T, PARAMS)


def objects(scene):
    """One row per present object: x, y, vy (B, T) in float64 and its size, g, e (B,)."""
    s = scene.states.astype(np.float64).reshape(N, T, K, 4).transpose(0, 2, 1, 3)  # (N, K, T, 4)
    present = np.arange(K) < scene.params["num_objects"][:, None]
    seq = np.broadcast_to(np.arange(N)[:, None], (N, K))[present]
    return {
        "x": s[..., 0][present],
        "y": s[..., 1][present],
        "vx": s[..., 2][present],
        "vy": s[..., 3][present],
        "size": scene.params["size"].astype(np.float64)[present],
        "g": scene.params["gravity"].astype(np.float64)[seq],
        "e": scene.params["restitution"].astype(np.float64)[seq],
    }


def first_contact(o):
    """(B,) index t* of the last frame before the object can touch the floor: free flight from t* would
    reach the floor within one frame. Frames 0..t* are pure free fall."""
    reaches = o["y"][:, :-1] + o["vy"][:, :-1] + o["g"][:, None] / 2 >= FLOOR - o["size"][:, None] - 1e-6
    assert reaches.any(1).all(), "every object should reach the floor"
    return reaches.argmax(1)


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, len(falling_objects.STATE_NAMES)) and scene.states.dtype == np.float32
    assert falling_objects.POSITIONS[1] == (4, 5)
    assert (
        scene.params["object_colors"].shape == (N, K, 3) and scene.params["object_colors"].dtype == np.float32
    )
    for key, shape in {"size": (N, K), "is_box": (N, K), "gravity": (N,), "restitution": (N,)}.items():
        assert scene.params[key].shape == shape, key
    num = scene.params["num_objects"]
    assert num.min() >= 2 and num.max() <= 4 and set(num.tolist()) == {2, 3, 4}
    present = np.arange(K) < num[:, None]
    nan = np.isnan(scene.states.reshape(N, T, K, 4))
    assert np.array_equal(nan, np.broadcast_to(~present[:, None, :, None], nan.shape))
    assert np.array_equal(np.isnan(scene.params["size"]), ~present)
    box = scene.params["is_box"][present]
    assert 0.2 < box.mean() < 0.8  # both discs and squares occur
    assert scene.frames.max() == 255


def test_determinism():
    a = falling_objects.generate(np.random.default_rng(5), 4, 8, PARAMS)
    b = falling_objects.generate(np.random.default_rng(5), 4, 8, PARAMS)
    c = falling_objects.generate(np.random.default_rng(6), 4, 8, PARAMS)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()


def test_objects_in_frame_and_in_separate_lanes(scene):
    o = objects(scene)
    s = o["size"][:, None]
    assert (o["x"] - s >= 0).all() and (o["x"] + s <= 64).all()
    assert (o["y"] - s >= 0).all() and (o["y"] + s <= FLOOR + 1e-4).all()  # never below the floor
    # Purely vertical motion, and any two objects of a sequence are horizontally clear of each other.
    assert (o["vx"] == 0).all() and (o["x"] == o["x"][:, :1]).all()
    st = scene.states.reshape(N, T, K, 4)
    x, size = st[:, 0, :, 0], scene.params["size"]
    for i in range(K):
        for j in range(i + 1, K):
            gap = np.abs(x[:, i] - x[:, j]) - size[:, i] - size[:, j]
            assert (gap[~np.isnan(gap)] > 0).all()


def test_frames_are_drawn_with_the_shared_primitives(scene):
    # The windowed renderer gives the same bytes as render.disc_alpha / rect_alpha / composite; rows below
    # the floor line are pure floor grey.
    st, p = scene.states.reshape(N, T, K, 4), scene.params
    present = np.arange(K) < p["num_objects"][:, None]
    ones = np.ones(N, np.float32)
    for t in (0, T - 1):
        canvas = blank(N, p["background"])
        composite(canvas, rect_alpha(-ones, FLOOR * ones, 65 * ones, 65 * ones), np.full(3, GREY, np.float32))
        for k in range(K):
            c, r = np.nan_to_num(st[:, t, k, :2], nan=32.0), np.nan_to_num(p["size"][:, k], nan=1.0)
            box = rect_alpha(c[:, 0] - r, c[:, 1] - r, c[:, 0] + r, c[:, 1] + r)
            alpha = np.where(p["is_box"][:, k, None, None] == 1, box, disc_alpha(c, r))
            composite(canvas, alpha * present[:, k, None, None], p["object_colors"][:, k])
        assert np.array_equal(to_uint8(canvas), scene.frames[:, t])
    assert (scene.frames[:, :, int(FLOOR) :] == int(GREY * 255 + 0.5)).all()


def test_free_fall_is_a_parabola_with_the_configured_g(scene):
    """Before the first floor contact: per-frame acceleration (second difference of y, and the change in
    vy) within 2% of g, and a least-squares fit y0 + v0 t + a t^2 / 2 gives a within 2% of g."""
    o = objects(scene)
    tc = first_contact(o)
    assert (tc >= 3).all()
    for b in range(len(tc)):
        y, vy, g = o["y"][b, : tc[b] + 1], o["vy"][b, : tc[b] + 1], o["g"][b]
        np.testing.assert_allclose(np.diff(y, 2), g, rtol=0.02)
        np.testing.assert_allclose(np.diff(vy), g, rtol=0.02)
        # The stored velocity is the true one: y(t+1) - y(t) = vy(t) + g / 2 to 1e-3 px.
        np.testing.assert_allclose(np.diff(y), vy[:-1] + g / 2, atol=1e-3)
        t = np.arange(len(y))
        a2, v0, y0 = np.polyfit(t, y, 2)
        assert abs(2 * a2 - g) < 0.02 * g and abs(v0 - vy[0]) < 0.02 and abs(y0 - y[0]) < 0.02


def test_rebound_height_follows_restitution(scene):
    """The highest point after the first contact is e^2 times the drop height (energy before the fall:
    v0^2 / 2g above the start), up to the g/8 a half-frame sampling of the apex can miss."""
    o = objects(scene)
    tc = first_contact(o)
    rest = FLOOR - o["size"]  # centre height on the floor
    drop = rest - o["y"][:, 0] + o["vy"][:, 0] ** 2 / (2 * o["g"])
    impact = np.sqrt(2 * o["g"] * drop)
    bounces = o["e"] * impact >= PARAMS["rest_speed"]
    expected = np.where(bounces, o["e"] ** 2 * drop, 0.0)
    after = np.where(np.arange(T)[None, :] > tc[:, None], o["y"], np.inf)  # frames after the contact
    measured = rest - after.min(1)
    assert bounces.sum() >= 5 and (~bounces).sum() >= 5
    assert (measured <= expected + 1e-3).all()
    assert (measured >= expected - o["g"] / 8 - 1e-3).all()


def test_objects_come_to_rest_on_the_floor(scene):
    """Once an object has come to rest it stays on the floor (within 0.5 px) with zero velocity, and with
    the configured ranges every object is at rest by the last frame."""
    o = objects(scene)
    on_floor = np.abs(o["y"] + o["size"][:, None] - FLOOR) < 0.5
    still = np.abs(o["vy"]) < 1e-6
    at_rest = on_floor & still
    assert at_rest[:, -1].all()
    settled = np.argmax(at_rest, axis=1)  # first frame at rest
    later = np.arange(T)[None, :] >= settled[:, None]
    assert at_rest[later].all()
    assert (settled > 0).all() and (~at_rest[:, 0]).all()  # everything starts in the air
    # An object at rest sits exactly on the floor (the 0.5 px bound is loose).
    np.testing.assert_allclose((o["y"] + o["size"][:, None])[later], FLOOR, atol=1e-4)
