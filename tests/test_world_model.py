"""The Python API on tiny goal_reach models: `physworld.load_world_model` (encode, decode, rollout, imagine),
`physworld.datasets.load`, the README's example block and the two scripts in examples/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import physworld
from physworld.data.cache import ensure_split, load_split
from physworld.errors import CheckpointError, ConfigError
from physworld.evaluation.loading import load_phase
from physworld.run import train
from tests.conftest import ROOT, compose_config
from tests.test_safe_loading import malicious_checkpoint

TINY_DATA = ["--num-sequences", "8", "--num-frames", "8"]  # debug=tiny's data caps, so its data is reused


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny reconstruction and prediction checkpoints on goal_reach, and their data folder."""
    tmp = tmp_path_factory.mktemp("api")
    common = [
        "debug=tiny",
        "dataset=goal_reach",
        "logger=none",
        "test=false",
        f"paths.data_dir={tmp / 'data'}",
    ]
    train(compose_config(tmp / "rec", common))
    recon = tmp / "rec" / "run" / "checkpoints" / "last.ckpt"
    train(compose_config(tmp / "pred", [*common, "phase=prediction", f"phase.init_from={recon}"]))
    pred = tmp / "pred" / "run" / "checkpoints" / "last.ckpt"
    return {"reconstruction": recon, "prediction": pred, "data": tmp / "data"}


@pytest.fixture(scope="module")
def data(tiny):
    return physworld.datasets.load("goal_reach", "test", tiny["data"], num_sequences=8, num_frames=8)


def test_datasets_load_returns_the_cached_arrays_training_uses(tiny, data, tmp_path):
    assert data.frames.shape == (8, 8, 64, 64, 3) and data.frames.dtype == np.uint8
    assert (
        data.actions.shape == (8, 8, 2) and data.rewards.shape == (8, 8) and data.states.shape[:2] == (8, 8)
    )
    # the very split the tiny training run generated (same folder, same spec: not regenerated)
    stored = load_split(tiny["data"] / "goal_reach" / "test")
    assert np.array_equal(data.frames, stored["frames"]) and np.array_equal(data.rewards, stored["rewards"])
    passive = physworld.datasets.load("pendulum", "val", tmp_path, num_sequences=2, num_frames=3)
    assert passive.frames.shape == (2, 3, 64, 64, 3) and passive.rewards is None
    assert not passive.actions.any()  # passive scenes store zero actions
    with pytest.raises(ConfigError, match=r"dataset name 'nope' is not accepted: one of \[.*'pendulum'"):
        physworld.datasets.load("nope", "train", tmp_path)
    with pytest.raises(
        ConfigError, match=r"split='training' is not accepted: one of \['train', 'val', 'test'\]"
    ):
        physworld.datasets.load("pendulum", "training", tmp_path)


def test_datasets_load_generates_the_same_bytes_as_training(tmp_path):
    from physworld.datasets import data_seed, spec

    made = physworld.datasets.load("pendulum", "test", tmp_path / "a", num_sequences=2, num_frames=4)
    direct = load_split(
        ensure_split(tmp_path / "b", spec("pendulum", 2, 4), "test", data_seed(), progress=False)
    )
    assert np.array_equal(made.frames, direct["frames"]) and np.array_equal(made.states, direct["states"])
    assert data_seed() == compose_config(tmp_path, []).data.seed


def test_encode_decode_take_uint8_and_float_frames(tiny, data):
    wm = physworld.load_world_model(tiny["prediction"], device="cpu")
    enc = wm.encode(data.frames[:2])  # uint8 (2, 8, 64, 64, 3)
    assert enc.latents.shape == (2, 8, 16, 8, 8) and enc.tokens.shape == (2, 8, 1, 8, 8)
    floats = torch.from_numpy(np.array(data.frames[:2])).permute(0, 1, 4, 2, 3).float() / 255
    assert torch.equal(wm.encode(floats).tokens, enc.tokens)
    assert torch.equal(
        wm.encode(data.frames[:2], batch_size=3).tokens, enc.tokens
    )  # chunking changes nothing
    frames = wm.decode(enc.tokens)
    assert frames.shape == (2, 8, 3, 64, 64) and 0 <= frames.min() and frames.max() <= 1
    torch.testing.assert_close(frames, wm.decode(enc.latents))
    with pytest.raises(
        ValueError, match=r"frames of shape \(2, 64, 64, 4\) .* accepted uint8 \(\.\.\., H, W, 3\)"
    ):
        wm.encode(np.zeros((2, 64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match=r"codes of shape \(2, 3, 8, 8\): accepted \(\.\.\., 1, h, w\)"):
        wm.decode(torch.zeros(2, 3, 8, 8, dtype=torch.long))


def test_rollout_is_the_evaluation_rollout(tiny, data):
    wm = physworld.load_world_model(tiny["prediction"], device="cpu")
    phase, _ = load_phase(tiny["prediction"])
    frames = torch.from_numpy(np.array(data.frames[:4])).permute(0, 1, 4, 2, 3).float() / 255
    actions = torch.from_numpy(np.array(data.actions[:4]))
    expected = phase.rollout(frames, actions, context_frames=2, horizon=5)
    pred = wm.rollout(data.frames[:4, :2], data.actions[:4], horizon=5)
    assert pred.frames.shape == (4, 5, 3, 64, 64)
    torch.testing.assert_close(pred.frames, expected["pred_frames"].clamp(0, 1))
    assert torch.equal(pred.tokens, expected["pred_indices"])
    one = wm.rollout(data.frames[1, :2], data.actions[1], horizon=5)  # one sequence, no batch axis
    torch.testing.assert_close(one.frames, pred.frames[1])
    with pytest.raises(ValueError, match=r"actions of shape \(4, 3, 2\): accepted \(4, >= 6, 2\)"):
        wm.rollout(data.frames[:4, :2], data.actions[:4, :3], horizon=5)


def test_imagine_follows_the_dynamics_and_passes_gradients_to_the_policy(tiny, data):
    wm = physworld.load_world_model(tiny["prediction"], device="cpu")
    still = wm.imagine(lambda z, h: torch.zeros(z.shape[0], 2), data.frames[:3, :1], horizon=4)
    rolled = wm.rollout(data.frames[:3, :1], np.zeros((3, 4, 2), np.float32), horizon=4)
    torch.testing.assert_close(still.latents, rolled.latents)  # zero actions: the same open-loop prediction
    assert still.frames.shape == (3, 4, 3, 64, 64) and still.actions.shape == (3, 4, 2)

    policy = torch.nn.Linear(wm.latent_channels + wm.hidden_channels, wm.action_dim)
    act = lambda z, h: torch.tanh(policy(torch.cat([z, h], 1).mean((2, 3))))  # noqa: E731
    dream = wm.imagine(act, data.frames[:3, :2], horizon=3, start_actions=data.actions[:3], decode=False)
    assert dream.frames is None
    dream.latents.square().mean().backward()
    assert policy.weight.grad is not None and policy.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in wm.dynamics.parameters())  # the world model stays frozen


def test_load_errors_are_one_line(tiny, tmp_path):
    recon = physworld.load_world_model(tiny["reconstruction"], device="cpu")
    assert recon.dynamics is None
    with pytest.raises(
        ValueError, match="rollout needs a world model with dynamics: this one is a reconstruction"
    ):
        recon.rollout(np.zeros((1, 2, 64, 64, 3), np.uint8), horizon=2)
    with pytest.raises(CheckpointError, match=r"path='.*nope.ckpt': no such checkpoint file"):
        physworld.load_world_model(tmp_path / "nope.ckpt")
    evil, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(
        CheckpointError, match=r"path='.*' holds io.open, which no physworld checkpoint holds"
    ):
        physworld.load_world_model(evil)
    assert not marker.exists()
    ckpt = torch.load(tiny["prediction"], weights_only=True)
    ckpt["hyper_parameters"]["model"]["vq"]["num_codes"] = 64
    torch.save(ckpt, tmp_path / "resized.ckpt")
    with pytest.raises(CheckpointError, match=r"resized.ckpt': its weights do not fit its model config"):
        physworld.load_world_model(tmp_path / "resized.ckpt")


def run_python(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHYSWORLD_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_readme_example_runs(tiny, tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    placeholder = '"outputs/train/runs/<run>/checkpoints/best.ckpt"'
    assert placeholder in code
    code = code.replace(placeholder, repr(str(tiny["prediction"])))
    code += (
        "assert codes.shape == (4, 30, 1, 8, 8) and frames.shape == (4, 30, 3, 64, 64)\n"
        "assert pred.frames.shape == (4, 10, 3, 64, 64) and dream.frames.shape == (4, 10, 3, 64, 64)\n"
    )
    result = run_python(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(4, 10, 3, 64, 64)" in result.stdout


def test_the_examples_run_on_a_tiny_model(tiny, tmp_path):
    model, data_dir = str(tiny["prediction"]), ["--data-dir", str(tiny["data"]), *TINY_DATA]
    plot = run_python(
        [
            str(ROOT / "examples" / "rollout_and_plot.py"),
            model,
            *data_dir,
            "--horizon",
            "5",
            "--out",
            "r.png",
        ],
        tmp_path,
    )
    assert plot.returncode == 0, plot.stderr[-2000:]
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"frame MSE per step: t2: \d\.\d+, .* t6: \d\.\d+$", plot.stdout, re.M)
    policy = run_python(
        [
            str(ROOT / "examples" / "train_policy.py"),
            model,
            *data_dir,
            *("--reward-steps", "5", "--actor-steps", "2", "--episodes", "2", "--episode-steps", "5"),
        ],
        tmp_path,
    )
    assert policy.returncode == 0, policy.stderr[-2000:]
    assert re.search(r"real return over 2 episodes: policy -?\d+\.\d+, random -?\d+\.\d+", policy.stdout)
