"""dataset=gym: episodes recorded from a Gymnasium environment line up (a replay of the stored actions from the
stored reset seed gives the stored observations, rewards and frames), give the same bytes twice, train at
debug=tiny, and an environment physworld cannot use is refused in one line."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from physworld.checks import check_config
from physworld.data.cache import ensure_split, load_split, read_manifest
from physworld.data.plan import datasets_for
from physworld.data.sources.episodes import resize_frames
from physworld.data.sources.gym import open_env, to_env_action
from physworld.errors import ConfigError
from tests.conftest import run


def tiny(make_cfg, *overrides) -> dict:
    (d,) = datasets_for(make_cfg("dataset=gym", "debug=tiny", *overrides))
    return d


def test_pendulum_frames_actions_rewards_and_states_line_up(make_cfg, tmp_path):
    d = tiny(make_cfg)
    assert d["env_id"] == "Pendulum-v1" and d["num_frames"] == 8 and d["sizes"]["train"] == 8
    path = ensure_split(tmp_path / "data", d, "train", seed=42, progress=False)
    arrays, manifest = load_split(path), read_manifest(path)
    assert arrays["frames"].shape == (8, 8, 64, 64, 3) and arrays["states"].shape == (8, 8, 3)
    assert manifest["state_names"] == ["cos_angle", "sin_angle", "angular_velocity"]
    source = manifest["source"]
    assert (
        source["env_id"] == "Pendulum-v1" and source["gymnasium"] == gym.__version__ and source["seed"] == 42
    )
    actions = arrays["actions"]
    assert (np.abs(actions[..., 0]) <= 1).all() and (actions[..., 1] == 0).all()  # model range, padded
    assert np.abs(actions[..., 0]).max() > 0.5  # the random policy uses the range
    env = gym.make("Pendulum-v1", render_mode="rgb_array")
    for i, reset_seed in enumerate(source["reset_seeds"]):
        obs, _ = env.reset(seed=reset_seed)
        assert arrays["rewards"][i, 0] == 0
        for t in range(8):
            np.testing.assert_array_equal(arrays["states"][i, t], obs)
            np.testing.assert_array_equal(arrays["frames"][i, t], resize_frames(env.render()[None])[0])
            if t < 7:
                obs, reward, *_ = env.step(to_env_action(actions[i, t], env.action_space))
                assert np.float32(reward) == arrays["rewards"][i, t + 1]
    env.close()
    # The cos/sin of the angle are the observation's: consistent with one angle per frame.
    np.testing.assert_allclose(np.hypot(arrays["states"][..., 0], arrays["states"][..., 1]), 1, atol=1e-5)


def test_same_id_and_seed_give_the_same_bytes(make_cfg, tmp_path):
    d = tiny(make_cfg, "dataset.sizes.train=3")
    a = ensure_split(tmp_path / "a", d, "train", seed=7, progress=False)
    b = ensure_split(tmp_path / "b", d, "train", seed=7, progress=False)
    c = ensure_split(tmp_path / "c", d, "train", seed=8, progress=False)
    for key in ("frames", "states", "actions", "rewards"):
        assert (a / f"{key}.npy").read_bytes() == (b / f"{key}.npy").read_bytes(), key
    assert read_manifest(a)["files"] == read_manifest(b)["files"]
    assert (a / "frames.npy").read_bytes() != (c / "frames.npy").read_bytes()
    val = ensure_split(tmp_path / "a", d, "val", seed=7, progress=False)  # its own episodes
    assert not np.array_equal(load_split(val)["states"][:3, 0], load_split(a)["states"][:, 0])


def test_another_package_s_environment_by_module_and_id(make_cfg, tmp_path):
    d = tiny(make_cfg, "dataset.env_id=tests.gym_envs:PhysworldDot-v0")
    path = ensure_split(tmp_path / "data", d, "train", seed=0, progress=False)
    arrays, manifest = load_split(path), read_manifest(path)
    assert manifest["state_names"] == ["obs_0", "obs_1"] and (arrays["actions"][..., 1] != 0).any()  # 2-D
    assert manifest["source"]["episodes"] == [f"{i:06d}.npz" for i in range(8)]
    assert path.parent.name == "tests.gym_envs_PhysworldDot-v0"  # its own cache folder
    # The recorded episodes are in the episode format: dataset=episodes reads them back.
    (e,) = datasets_for(make_cfg("dataset=episodes", f"dataset.path={path / 'episodes'}", "debug=tiny"))
    again = load_split(ensure_split(tmp_path / "data", e, "val", seed=0, progress=False))
    assert again["frames"].shape[1:] == (8, 64, 64, 3)


@pytest.mark.parametrize(
    ("env_id", "says"),
    [
        ("NoSuchEnv-v0", "doesn't exist"),
        ("CartPole-v1", "its action space is Discrete(2)"),
        ("tests.gym_envs:PhysworldNoRender-v0", "it has no rgb_array rendering"),
        ("no_such_module:Env-v0", "No module named 'no_such_module'"),
    ],
)
def test_an_environment_physworld_cannot_use_is_refused_in_one_line(make_cfg, env_id, says):
    with pytest.raises(ConfigError, match=f"dataset.env_id='{env_id}' is not accepted") as err:
        check_config(make_cfg("dataset=gym", "debug=tiny", f"dataset.env_id={env_id}"), files=False)
    assert says in str(err.value) and "Accepted: a registered Gymnasium id" in str(err.value)
    with pytest.raises(ConfigError, match="not accepted"):
        open_env(env_id)


def test_refusal_from_the_command_line_is_exit_code_2(tmp_path):
    result = run(["train.py", "debug=tiny", "dataset=gym", "dataset.env_id=CartPole-v1"], tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Discrete(2)" in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.npy"))


def test_prediction_trains_on_pendulum_at_tiny(make_cfg):
    from physworld.run import train

    cfg = make_cfg(
        "phase=prediction",
        "dataset=gym",
        "dataset.env_id=Pendulum-v1",
        "debug=tiny",
        "phase.freeze_vqvae=false",
        "phase.recon_weight=1",
        "logger=none",
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and np.isfinite(metrics["test/loss"])


def test_mountain_car_records_its_position_and_velocity(make_cfg, tmp_path):
    d = tiny(make_cfg, "dataset.env_id=MountainCarContinuous-v0", "dataset.sizes.train=2")
    path = ensure_split(tmp_path / "data", d, "train", seed=0, progress=False)
    arrays = load_split(path)
    assert read_manifest(path)["state_names"] == ["position", "velocity"]
    assert arrays["frames"].shape == (2, 8, 64, 64, 3) and arrays["frames"].std() > 10  # the track is drawn
    assert np.abs(np.diff(arrays["states"][..., 0], axis=1)).max() > 0  # the car moves


def test_preview_refuses_recorded_data_in_one_line(tmp_path):
    result = run(["scripts/preview_data.py", "dataset=gym"], tmp_path)
    assert result.returncode == 2 and "recorded data" in result.stderr and "Traceback" not in result.stderr
