"""wave: ring fronts travel at the wave speed c, the discrete energy is conserved without damping and decays
at rate gamma with it, the field stays bounded and symmetric, and the colour map is faithful."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.render import SIZE, pixel_centres, to_uint8
from physworld.data.scenes import wave
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "wave.yaml").read_text())["scene"]
N, T, K = 64, 30, wave.MAX_SOURCES
SUBSTEPS = PARAMS["substeps"]


def make(seed=0, n=N, num_frames=T, **overrides):
    return wave.generate(np.random.default_rng(seed), n, num_frames, {**PARAMS, **overrides})


def single_drop(c, sigma, gamma=0.0, amplitude=1.0, at=(32.0, 32.0), num_frames=T):
    """Height (T, H, W) and energy (T,) of one drop at rest, at `at` (pixels)."""
    src = np.array([[at]], np.float32)  # (1, 1, 2)
    u0 = wave.bumps(src, np.full((1, 1), amplitude, np.float32), np.full((1, 1), sigma, np.float32))
    fields, energy = wave.simulate(u0, np.array([c]), np.array([gamma]), num_frames, SUBSTEPS)
    return fields[0], energy[0]


@pytest.fixture(scope="module")
def scene():
    return make()


def test_shapes_dtypes_and_ranges(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, len(wave.STATE_NAMES)) and scene.states.dtype == np.float32
    assert wave.STATE_NAMES[0] == "energy" and wave.POSITIONS == ()
    energy = scene.states[..., 0]
    assert np.isfinite(energy).all() and (energy > 0).all()
    num = scene.params["num_sources"]
    assert set(num.tolist()) == {1, 2, 3}
    present = np.arange(K) < num[:, None]  # (N, K)
    src = scene.states[..., 1:].reshape(N, T, K, 2)
    assert np.array_equal(np.isnan(src), np.broadcast_to(~present[:, None, :, None], src.shape))
    assert np.array_equal(np.isnan(scene.params["source_amplitude"]), ~present)
    for key in ("speed", "damping"):
        value = scene.params[key]
        assert value.shape == (N,) and (value >= PARAMS[key][0]).all() and (value <= PARAMS[key][1]).all()
    assert scene.params["wave_colors"].shape == (N, 2, 3)
    assert np.abs(np.diff(scene.frames.astype(np.int16), axis=1)).mean() > 1.0  # the surface moves


def test_determinism():
    a, b, c = make(5, 4, 8), make(5, 4, 8), make(6, 4, 8)
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()


def test_sources_inside_the_tank_and_fixed(scene):
    src = scene.states[..., 1:].reshape(N, T, K, 2)
    finite = src[np.isfinite(src)]
    margin = PARAMS["source_margin"]
    assert (finite >= margin).all() and (finite <= SIZE - margin).all()
    np.testing.assert_array_equal(src, np.broadcast_to(src[:, :1], src.shape))  # drops do not move


@pytest.mark.parametrize("c", [0.8, 1.5])
def test_ring_front_travels_at_wave_speed(c):
    """The radius of the crest ring (peak of the azimuthally averaged height, in half-pixel bins) grows
    linearly at c: the fitted slope over the frames where the ring is 6-26 px out is c within 10%."""
    fields, _ = single_drop(c, sigma=2.0)
    xs, ys = pixel_centres()
    bins = np.rint(2 * np.hypot(xs[0] - 32, ys[0] - 32)).astype(np.int64).ravel()  # half-pixel radii
    counts = np.maximum(np.bincount(bins), 1)
    frames = [t for t in range(T) if 6 <= c * t <= 26]  # clear of the bump and of the walls
    radius = [np.argmax(np.bincount(bins, fields[t].ravel()) / counts) / 2 for t in frames]
    slope = np.polyfit(frames, radius, 1)[0]
    assert abs(slope / c - 1) < 0.10


def test_energy_is_conserved_without_damping():
    scene = make(1, damping=[0.0, 0.0], num_frames=60)
    energy = scene.states[..., 0].astype(np.float64)
    assert np.abs(energy / energy[:, :1] - 1).max() < 1e-4  # within 2% would do; the leapfrog keeps ~1e-6


def test_energy_of_a_drop_matches_the_continuum():
    """A Gaussian bump of height A holds potential energy c^2/2 * integral |grad u|^2 = pi c^2 A^2 / 2
    (independent of its width); the grid gets it within 3% for a 3 px wide bump."""
    c, a = 1.2, 0.8
    _, energy = single_drop(c, sigma=3.0, amplitude=a, at=(31.5, 31.5))
    assert abs(energy[0] / (np.pi * c * c * a * a / 2) - 1) < 0.03


def test_damping_decays_energy_at_rate_gamma():
    """dE/dt = -gamma sum(u_t^2), i.e. -gamma E on average over kinetic and potential energy: the energy
    never grows and its mean decay rate over the sequence is gamma within 5%."""
    scene = make(2, damping=[0.02, 0.06])
    energy = scene.states[..., 0].astype(np.float64)
    assert (np.diff(energy, axis=1) < 0).all()
    rate = -np.log(energy[:, -1] / energy[:, 0]) / (T - 1)
    assert np.abs(rate / scene.params["damping"] - 1).max() < 0.05


def test_field_is_bounded_and_symmetric():
    """A centred drop stays mirror-symmetric in both axes and the diagonal (the stencil and the walls are),
    and the height never exceeds the initial peak -- also after reflections off the walls."""
    fields, _ = single_drop(1.5, sigma=2.0, num_frames=60)
    peak = np.abs(fields[0]).max()
    assert np.abs(fields).max() <= peak + 1e-6
    assert np.abs(fields[-1]).max() < 0.5 * peak  # the ring has spread out
    for flipped in (fields[:, ::-1], fields[:, :, ::-1], fields.transpose(0, 2, 1)):
        np.testing.assert_allclose(flipped, fields, atol=1e-5)


def test_stable_at_the_cfl_limit_and_rejected_beyond():
    c = 0.7 * SUBSTEPS  # just under c dt = 1/sqrt(2)
    fields, energy = single_drop(c, sigma=1.5, num_frames=60)
    assert np.abs(fields).max() <= 1.0 and np.abs(energy / energy[0] - 1).max() < 1e-3
    with pytest.raises(ValueError, match="CFL"):
        single_drop(0.75 * SUBSTEPS, sigma=1.5)
    with pytest.raises(ValueError, match="speed"):  # a config that could break it fails at once
        make(n=2, num_frames=2, speed=[1.0, 0.75 * SUBSTEPS])


def test_colour_map_is_faithful(scene):
    """The table lookup agrees with the direct formula, background * (1 - |v|) + colour * |v| with
    v = tanh(gain * u), to within one 8-bit level, and the surface at rest is exactly the background."""
    rng = np.random.default_rng(3)
    n = 8
    fields = rng.normal(0.0, 0.4, (n, 2, 16, 16)).astype(np.float32)
    fields[:, 0] = 0.0
    bg, crest, trough = rng.random((n, 3)) * 0.1, rng.random((n, 3)), rng.random((n, 3))
    frames = wave.colour_map(fields, bg, crest, trough, PARAMS["gain"])
    v = np.tanh(PARAMS["gain"] * fields)[..., None]
    bg5, crest5, trough5 = (x[:, None, None, None, :] for x in (bg, crest, trough))
    direct = to_uint8(bg5 * (1 - np.abs(v)) + np.where(v > 0, crest5, trough5) * np.abs(v))
    assert np.abs(frames.astype(np.int16) - direct).max() <= 1
    np.testing.assert_array_equal(frames[:, 0], np.broadcast_to(to_uint8(bg)[:, None, None], (n, 16, 16, 3)))
