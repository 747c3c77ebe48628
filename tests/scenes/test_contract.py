"""Every registered scene follows the generator contract of physworld.data.scenes.base, and every dataset
config names a registered scene with the seed's default sizes."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from physworld.data.scenes import SCENES
from physworld.paths import CONFIG_DIR

# The seed's "Datasets included" table: train sequences and frames per sequence.
SEED_SIZES = {
    "moving_mnist": (10000, 20),
    "bouncing_balls": (5000, 30),
    "pendulum": (5000, 30),
    "spring_mass": (5000, 30),
    "multi_ball": (3000, 30),
    "projectile": (3000, 30),
    "double_pendulum": (2000, 30),
    "falling_objects": (3000, 30),
    "wave": (2000, 30),
    "orbital": (2000, 30),
    "goal_reach": (2000, 30),  # the agent environment's dataset (not in the seed's table of passive ones)
}


def scene_config(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / "dataset" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", sorted(SCENES))
def test_contract(name):
    module, cfg = SCENES[name], scene_config(name)
    assert cfg["name"] == name
    assert SEED_SIZES[name] == (cfg["sizes"]["train"], cfg["num_frames"])
    scene = module.generate(np.random.default_rng(0), 6, 8, cfg["scene"])
    assert scene.frames.shape == (6, 8, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.dtype == np.float32 and scene.states.shape[:2] == (6, 8)
    assert scene.states.shape[2] <= len(module.STATE_NAMES)
    assert scene.frames.std() > 1.0  # something is drawn
    assert np.abs(np.diff(scene.frames.astype(np.int16), axis=1)).mean() > 0.01  # and something moves
    for key, value in scene.params.items():
        assert np.asarray(value).shape[0] == 6, key
    for x_col, y_col in module.POSITIONS:
        xy = scene.states[..., [x_col, y_col]]
        xy = xy[np.isfinite(xy).all(-1)]
        assert ((xy >= 0) & (xy <= 64)).all(), name
    if module.POSITIONS:
        assert scene.params["object_colors"].shape[-1] == 3


@pytest.mark.parametrize("name", sorted(SCENES))
def test_deterministic(name):
    module, cfg = SCENES[name], scene_config(name)
    a = module.generate(np.random.default_rng(5), 3, 4, cfg["scene"])
    b = module.generate(np.random.default_rng(5), 3, 4, cfg["scene"])
    c = module.generate(np.random.default_rng(6), 3, 4, cfg["scene"])
    assert a.frames.tobytes() == b.frames.tobytes() and np.array_equal(a.states, b.states, equal_nan=True)
    assert a.frames.tobytes() != c.frames.tobytes()


def test_every_dataset_config_is_a_scene_a_source_or_a_mixture():
    # Recorded data (data/sources/) joins the one-name rule: dataset=gym is configs/dataset/gym.yaml is
    # SOURCES["gym"] is data/sources/gym.py, with the functions the cache calls. A mixture (dataset=all,
    # balls_pendulum) lists its members, each of them a scene.
    from physworld.data.sources import SOURCES

    names = {p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml")}
    mixtures = {  # their defaults list: <member>@members.<member>
        n for n in names if "@members." in (CONFIG_DIR / "dataset" / f"{n}.yaml").read_text()
    }
    assert "all" in mixtures and "balls_pendulum" in mixtures
    assert names == set(SCENES) | set(SOURCES) | mixtures
    assert not set(SCENES) & set(SOURCES)
    for name, module in SOURCES.items():
        assert scene_config(name)["name"] == name and module.__name__.endswith(f".{name}")
        for function in ("spec_for", "cache_name", "check", "build"):
            assert callable(getattr(module, function)), (name, function)
