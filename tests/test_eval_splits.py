"""The evaluation-only splits: ood_test (scene ranges disjoint from training's, its own seed) and long_test (more
frames), generated beside train/val/test without changing their bytes or manifests."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from omegaconf import OmegaConf

from physworld.data.cache import ensure_split, load_params, load_split, read_manifest
from physworld.data.plan import check_dataset
from physworld.datasets import data_seed, spec
from physworld.errors import ConfigError, DataError

PHYSICS = (
    "pendulum",
    "bouncing_balls",
    "double_pendulum",
    "falling_objects",
    "multi_ball",
    "orbital",
    "projectile",
    "spring_mass",
    "wave",
)

# params.npz keys stored in other units than the config's ranges: the conversion of a stored value to config units
STORED_UNITS = {("projectile", "launch_angle"): np.degrees}


def tiny(name: str, frames: int = 3) -> dict:
    return spec(name, num_sequences=3, num_frames=frames)


def is_range(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)


@pytest.mark.parametrize("name", PHYSICS)
def test_ood_split_samples_outside_the_training_ranges(tmp_path, name):
    dataset = tiny(name)
    path = ensure_split(tmp_path, dataset, "ood_test", data_seed(), progress=False)
    manifest_spec = read_manifest(path)["spec"]
    ood, training = manifest_spec["ood"], dataset["scene"]
    assert manifest_spec["split"] == "ood_test" and manifest_spec["scene_params"] == {**training, **ood}
    disjoint = [
        key
        for key, (low, high) in ood.items()
        if is_range(training[key]) and (high < training[key][0] or low > training[key][1])
    ]
    assert disjoint, f"{name}: no ood range lies outside its training range"
    params = load_params(path)
    checked = [key for key in disjoint if key in params]
    assert checked, f"{name}: none of {disjoint} is stored in params.npz to check"
    for key in checked:
        values = np.asarray(params[key], np.float64)
        values = values[np.isfinite(values)]  # absent objects are NaN
        values = STORED_UNITS.get((name, key), lambda v: v)(values)
        (low, high), (train_low, train_high) = ood[key], training[key]
        assert values.size and ((values < train_low) | (values > train_high)).all(), (key, values)
        assert ((values >= low - 1e-6) & (values <= high + 1e-6)).all(), (key, values)


def test_existing_splits_unchanged_by_eval_split_keys(tmp_path):
    with_keys = tiny("pendulum")
    plain = copy.deepcopy(with_keys)
    for key in ("ood", "long_num_frames"):
        plain.pop(key)
    for split in ("ood_test", "long_test"):
        plain["sizes"].pop(split)
    assert with_keys != plain
    for split in ("train", "val", "test"):
        a = read_manifest(ensure_split(tmp_path / "plain", plain, split, data_seed(), progress=False))
        b = read_manifest(ensure_split(tmp_path / "keys", with_keys, split, data_seed(), progress=False))
        assert "ood" not in a["spec"] and a["spec"]["scene_params"] == plain["scene"]
        a.pop("generated_in_s"), b.pop("generated_in_s")
        assert a == b  # spec and every file's sha256
    # Generating the eval splits afterwards leaves the stored ones as they were.
    before = {s: read_manifest(tmp_path / "keys" / "pendulum" / s) for s in ("train", "val", "test")}
    ensure_split(tmp_path / "keys", with_keys, "ood_test", data_seed(), progress=False)
    ensure_split(tmp_path / "keys", with_keys, "long_test", data_seed(), progress=False)
    assert before == {s: read_manifest(tmp_path / "keys" / "pendulum" / s) for s in ("train", "val", "test")}


def test_eval_splits_have_their_own_streams(tmp_path):
    dataset = tiny("pendulum")
    dataset["ood"] = {"gravity": dataset["scene"]["gravity"]}  # the training range: only the seed differs
    dataset["sizes"]["ood_test"] = dataset["sizes"]["test"]
    dataset["long_num_frames"] = dataset["num_frames"]
    test = load_split(ensure_split(tmp_path, dataset, "test", data_seed(), progress=False))["frames"]
    for split in ("ood_test", "long_test"):
        other = load_split(ensure_split(tmp_path, dataset, split, data_seed(), progress=False))["frames"]
        assert other.shape == test.shape and not np.array_equal(other, test), split


def test_long_split_has_long_num_frames(tmp_path):
    dataset = tiny("pendulum")
    dataset["long_num_frames"] = 9
    arrays = load_split(ensure_split(tmp_path, dataset, "long_test", data_seed(), progress=False))
    assert arrays["frames"].shape[:2] == (3, 9) and arrays["states"].shape[1] == 9


@pytest.mark.parametrize("name", ["moving_mnist", "goal_reach"])
def test_no_ood_split_for_non_physics_scenes(tmp_path, name):
    with pytest.raises(
        DataError, match=f"{name}: split='ood_test' is not accepted: the dataset has no `ood:`"
    ):
        ensure_split(tmp_path, tiny(name), "ood_test", data_seed(), progress=False)


def test_bad_ood_key_and_split_name(tmp_path):
    dataset = tiny("pendulum")
    dataset["ood"] = {"lenght": [30.0, 32.0]}
    with pytest.raises(DataError, match="ood.lenght is not a scene parameter"):
        ensure_split(tmp_path, dataset, "ood_test", data_seed(), progress=False)
    with pytest.raises(DataError, match="split='tset' is not accepted"):
        ensure_split(tmp_path, dataset, "tset", data_seed(), progress=False)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ood", 5, "ood=5 is not accepted: null or a mapping of scene ranges"),
        ("long_num_frames", 0, "long_num_frames=0 is not accepted: null or a positive integer"),
    ],
)
def test_check_dataset_names_bad_eval_split_keys(key, value, message):
    dataset = OmegaConf.create(tiny("pendulum"))
    check_dataset(dataset)  # the config as shipped passes
    dataset[key] = value
    with pytest.raises(ConfigError, match=message):
        check_dataset(dataset)
