"""dataset=episodes: a folder of recorded episodes (.npz) becomes cache splits; episodes of any length and frame
size train at debug=tiny; every bad input is one line, exit code 2, and leaves no cache behind; nothing in a file
runs code."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from physworld.data import cache
from physworld.data.cache import ensure_split, load_params, load_split, read_manifest
from physworld.data.plan import datasets_for
from physworld.data.sources import episodes
from physworld.data.sources.episodes import save_episode
from physworld.errors import DataError
from tests.conftest import run


def write_folder(folder: Path, lengths, size=(48, 40), seed=0, **keys) -> Path:
    """Episodes of the given lengths at frame size (H, W), with 1-D actions, states and rewards."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, t in enumerate(lengths):
        arrays = {
            "frames": rng.integers(0, 256, (t, *size, 3), dtype=np.uint8),
            "actions": rng.uniform(-1, 1, (t, 1)),
            "rewards": rng.normal(size=t),
            "states": rng.normal(size=(t, 2)),
            "state_names": ["theta", "omega"],
            **keys,
        }
        save_episode(folder / f"{i:03d}.npz", **{k: v for k, v in arrays.items() if v is not None})
    return folder


def spec(path: Path, num_frames=8, **extra) -> dict:
    return {
        "name": "episodes",
        "path": str(path),
        "num_frames": num_frames,
        "sizes": {"train": None, "val": None, "test": None},
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        **extra,
    }


def leftovers(data_dir: Path) -> list[Path]:
    """Anything a build left in the data dir: split files or hidden temporary folders."""
    if not data_dir.exists():
        return []
    return [p for p in data_dir.rglob("*") if p.name.endswith(".npy") or ".tmp-" in p.name]


def test_sequences_are_cut_every_num_frames_and_end_at_the_last_frame():
    assert episodes._starts(20, 8) == [0, 8, 12]
    assert episodes._starts(16, 8) == [0, 8]
    assert episodes._starts(8, 8) == [0]
    assert episodes._starts(7, 8) == []


def test_unequal_episodes_of_another_size_become_a_split(tmp_path):
    lengths = [5, 8, 9, 12, 16, 20, 11, 10, 13, 9]
    folder = write_folder(tmp_path / "eps", lengths, size=(48, 40))
    d = spec(folder)
    paths = {
        split: ensure_split(tmp_path / "data", d, split, seed=3, progress=False) for split in cache.SPLITS
    }
    seen = []
    for path in paths.values():
        arrays, params, manifest = load_split(path), load_params(path), read_manifest(path)
        n = arrays["frames"].shape[0]
        assert arrays["frames"].shape == (n, 8, 64, 64, 3) and arrays["frames"].dtype == np.uint8
        assert arrays["actions"].shape == (n, 8, 2) and (arrays["actions"][..., 1] == 0).all()  # padded
        assert arrays["states"].shape == (n, 8, 2) and arrays["rewards"].shape == (n, 8)
        assert manifest["state_names"] == ["theta", "omega"]
        assert manifest["source"]["frame_sizes"] == [[48, 40]]
        names = manifest["source"]["episodes"]
        seen += names
        # Each sequence is its episode's frames start..start+8, in order: check states and actions against the file.
        for row in range(n):
            ep = np.load(folder / names[params["episode"][row]])
            window = slice(params["start"][row], params["start"][row] + 8)
            np.testing.assert_array_equal(arrays["states"][row], ep["states"][window].astype(np.float32))
            np.testing.assert_array_equal(
                arrays["actions"][row, :, 0], ep["actions"][window, 0].astype(np.float32)
            )
        assert manifest["source"]["too_short"] == [name for name in names if lengths[int(name[:3])] < 8]
    assert sorted(seen) == sorted(p.name for p in folder.glob("*.npz"))  # whole episodes, each in one split
    assert len(read_manifest(paths["val"])["source"]["episodes"]) == 2  # 0.2 of 10


def test_sub_folders_are_the_splits_and_a_changed_folder_rebuilds(tmp_path):
    root = tmp_path / "eps"
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        write_folder(root / split, [10] * n, seed=n)
    d = spec(root)
    path = ensure_split(tmp_path / "data", d, "train", seed=0, progress=False)
    assert load_split(path)["frames"].shape[0] == 3 * 2
    write_folder(root / "train", [10] * 4, seed=9)  # a fourth episode (and the first three rewritten)
    assert (
        load_split(ensure_split(tmp_path / "data", d, "train", seed=0, progress=False))["frames"].shape[0]
        == 8
    )


def test_tiny_caps_the_sequences(make_cfg, tmp_path):
    folder = write_folder(tmp_path / "eps", [30] * 10)
    (d,) = datasets_for(make_cfg("dataset=episodes", f"dataset.path={folder}", "debug=tiny"))
    assert d["num_frames"] == 8 and d["sizes"] == {"train": 8, "val": 8, "test": 8}
    path = ensure_split(tmp_path / "data", d, "train", seed=0, progress=False)
    assert load_split(path)["frames"].shape[:2] == (8, 8)


class Touch:
    """Unpickling it would create a file: a stand-in for code that a pickled object runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def bad_folders(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (the folder, what the error line says) for every bad input."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    out = {}

    def folder(name: str, **arrays) -> Path:
        f = root / name
        f.mkdir(parents=True)
        for i in range(3):
            np.savez(f / f"{i}.npz", **(arrays if i == 1 and arrays else {"frames": frames}))
        return f

    out["missing_frames"] = (folder("missing_frames", pixels=frames), "no `frames` array")
    out["wrong_dtype"] = (folder("wrong_dtype", frames=frames.astype(np.float32)), "frames of dtype float32")
    out["wrong_rank"] = (folder("wrong_rank", frames=frames[..., 0]), "frames of shape (10, 16, 16)")
    out["lengths"] = (
        folder("lengths", frames=frames, actions=np.zeros((9, 1))),
        "actions has 9 rows for 10 frames",
    )
    empty = root / "empty"
    empty.mkdir()
    out["empty"] = (empty, "an empty folder")
    not_npz = folder("not_npz")
    (not_npz / "3.npz").write_text("these are not arrays")
    out["not_npz"] = (not_npz, "not an .npz archive")
    other = folder("other_file")
    (other / "notes.txt").write_text("hello")
    out["other_file"] = (other, "not an episode: accepted .npz files")
    pickled = folder("pickled")
    np.savez(pickled / "1.npz", frames=frames, states=np.array([Touch(root / "ran")] * 10, dtype=object))
    out["pickled"] = (pickled, "pickled Python objects")
    return out


CASES = [
    "missing_frames",
    "wrong_dtype",
    "wrong_rank",
    "lengths",
    "empty",
    "not_npz",
    "other_file",
    "pickled",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_naming_the_file_and_builds_nothing(tmp_path, case):
    folder, says = bad_folders(tmp_path / "eps")[case]
    with pytest.raises(DataError, match=re.escape(says)) as err:
        ensure_split(tmp_path / "data", spec(folder), "train", seed=0, progress=False)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)
    assert leftovers(tmp_path / "data") == []
    assert not (tmp_path / "eps" / "ran").exists()  # the pickled object was never loaded


def test_actions_outside_the_model_s_range_are_refused_when_read(tmp_path):
    folder = write_folder(tmp_path / "eps", [10] * 3, actions=np.full((10, 1), 2.0))
    with pytest.raises(DataError, match=r"actions reach 2.0: accepted finite values in \[-1, 1\]"):
        ensure_split(tmp_path / "data", spec(folder), "train", seed=0, progress=False)
    assert leftovers(tmp_path / "data") == []


def test_bad_input_from_the_command_line_is_exit_code_2(tmp_path):
    cases = bad_folders(tmp_path / "eps")
    for case in ("wrong_dtype", "pickled"):
        folder, says = cases[case]
        result = run(["train.py", "debug=tiny", "dataset=episodes", f"dataset.path={folder}"], tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(lines) == 1 and lines[0].startswith("physworld: error:") and says in lines[0], lines
        assert "Traceback" not in result.stderr
    assert leftovers(tmp_path / "data") == [] and not (tmp_path / "eps" / "ran").exists()
    result = run(["train.py", "debug=tiny", "dataset=episodes"], tmp_path)
    assert result.returncode == 2 and "dataset.path is missing" in result.stderr


def test_a_build_that_fails_midway_leaves_the_old_split(tmp_path):
    folder = write_folder(tmp_path / "eps", [10] * 5)
    d = spec(folder, val_fraction=0.2, test_fraction=0.2)
    path = ensure_split(tmp_path / "data", d, "train", seed=0, progress=False)
    before = load_split(path)["frames"].copy()
    # A file whose headers are right but whose frame data is cut short: found only when it is read, after the
    # split's first sequences are written.
    last = sorted(read_manifest(path)["source"]["episodes"])[-1]
    with np.load(folder / last) as npz:
        arrays = dict(npz)
    with zipfile.ZipFile(folder / last, "w") as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w") as f:
                if key == "frames":
                    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(value))
                    f.write(b"\0" * 100)
                else:
                    np.lib.format.write_array(f, value)
    with pytest.raises(DataError, match=last):
        ensure_split(tmp_path / "data", d, "train", seed=0, progress=False)
    np.testing.assert_array_equal(load_split(path)["frames"], before)  # the old split, whole
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]


def test_episodes_of_unequal_length_and_another_size_train_at_tiny(make_cfg, tmp_path):
    from physworld.run import train

    folder = write_folder(tmp_path / "eps", [9, 12, 17, 10, 14, 8, 11, 20], size=(96, 72))
    cfg = make_cfg(
        "phase=prediction",
        "dataset=episodes",
        f"dataset.path={folder}",
        "debug=tiny",
        "phase.freeze_vqvae=false",
        "phase.recon_weight=1",
        "logger=none",
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and np.isfinite(metrics["test/loss"])
