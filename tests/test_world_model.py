"""The Python API on tiny goal_reach models: `physworld.load_world_model` (encode, decode, rollout, imagine),
`physworld.datasets.load`, the example block of docs/guide.md (Python API) and the two scripts in examples/; and
the export (scripts/export.py): loading an export gives the checkpoint's rollouts, its model card copies the run's
files, the command line fails with one line, and logger=wandb logs the folder as an artifact."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import physworld
from physworld.data.cache import ensure_split, load_split
from physworld.errors import CheckpointError, ConfigError
from physworld.phases.checkpoints import load_phase
from physworld.run import train
from tests.conftest import ROOT, compose_config, malicious_checkpoint

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
    # the prediction run is tested and keeps its config where Hydra would: the model card reads both
    cfg = compose_config(tmp / "pred", [*common, "test=true", "phase=prediction", f"phase.init_from={recon}"])
    train(cfg)
    (tmp / "pred" / "run" / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp / "pred" / "run" / ".hydra" / "config.yaml")
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
        ConfigError,
        match=r"split='training' is not accepted: one of \['train', 'val', 'test', 'ood_test', 'long_test'\]",
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
    ckpt["model_spec"]["vq"]["num_codes"] = 64  # the networks are built from the spec the checkpoint saved
    torch.save(ckpt, tmp_path / "resized.ckpt")
    with pytest.raises(CheckpointError, match=r"resized.ckpt': its weights do not fit its model spec"):
        physworld.load_world_model(tmp_path / "resized.ckpt")
    del ckpt["model_spec"]  # as saved before specs were: the spec of its saved model config
    ckpt["hyper_parameters"]["model"]["vq"]["num_codes"] = 64
    torch.save(ckpt, tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match=r"old.ckpt': its weights do not fit its model spec"):
        physworld.load_world_model(tmp_path / "old.ckpt")


def run_python(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHYSWORLD_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_guides_python_api_example_runs(tiny, tmp_path):
    guide = (ROOT / "docs" / "guide.md").read_text()
    section = guide.split("## Python API", 1)[1]
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


# -- export --------------------------------------------------------------------------------------------------


def test_export_then_load_gives_identical_rollouts(tiny, data, tmp_path):
    from safetensors.torch import load_file

    from physworld.export import export_world_model

    out = export_world_model(tiny["prediction"], tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    ckpt = torch.load(tiny["prediction"], weights_only=True)
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == ckpt["hyper_parameters"]["model"] and config["networks"] == [
        "vqvae",
        "dynamics",
    ]
    tensors = load_file(out / "model.safetensors")
    assert set(tensors) == {k for k in ckpt["state_dict"] if k.startswith(("vqvae.", "dynamics."))}

    original = physworld.load_world_model(tiny["prediction"], device="cpu")
    exported = physworld.load_world_model(out, device="cpu")
    a = original.rollout(data.frames[:4, :2], data.actions[:4], horizon=6)
    b = exported.rollout(data.frames[:4, :2], data.actions[:4], horizon=6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(original.encode(data.frames).tokens, exported.encode(data.frames).tokens)
    steer = lambda z, h: torch.tanh(z.mean((1, 2, 3)))[:, None].expand(-1, 2)  # noqa: E731  a state-dependent policy
    dream_a = original.imagine(steer, data.frames[:3, :2], 5, start_actions=data.actions[:3])
    dream_b = exported.imagine(steer, data.frames[:3, :2], 5, start_actions=data.actions[:3])
    assert torch.equal(dream_a.frames, dream_b.frames) and torch.equal(dream_a.actions, dream_b.actions)


def test_model_card_copies_the_runs_files(tiny, tmp_path):
    from physworld.export import COLUMNS, export_world_model
    from physworld.metrics.rollout import PREFIXES
    from physworld.report.document import fmt

    out = export_world_model(tiny["prediction"], tmp_path / "export")
    card = (out / "MODEL_CARD.md").read_text()
    run = tiny["prediction"].parent.parent
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = json.loads((tiny["data"] / "goal_reach" / "test" / "manifest.json").read_text())
    version, sha = manifest["spec"]["version"], manifest["files"]["frames"]["sha256"]
    row = f"| goal_reach | test | 8 | 8 | {version} | 42 | `{sha}` |"
    assert row in card
    assert (run / ".hydra" / "config.yaml").read_text().rstrip() in card  # the training config, verbatim
    # every cell of every rollout table is metrics.json's value of that horizon and column
    label_to_prefix = {label: PREFIXES[column] for column, label in COLUMNS.items()}
    checked = 0
    for metric, table in re.findall(r"^### `(\w+)`\n\n(\|.*?)(?:\n\n|\Z)", card, re.S | re.M):
        lines = [
            line.strip("|").split(" | ") for line in table.strip().splitlines() if not line.startswith("|---")
        ]
        header = [c.strip() for c in lines[0]]
        assert header[:2] == ["horizon", "model"]
        for cells in lines[1:]:
            cells = [c.strip() for c in cells]
            for label, cell in zip(header[1:], cells[1:]):
                key = f"test/{label_to_prefix[label]}_{metric}/{cells[0]}"
                assert cell == fmt(metrics.get(key)), key
                checked += cell != "-"
    assert checked >= 30 and "| t05 |" in card
    assert f"| `test/loss` | {fmt(metrics['test/loss'])} |" in card


def test_export_folder_errors_are_one_line(tiny, tmp_path):
    from physworld.export import export_world_model

    (tmp_path / "empty").mkdir()
    with pytest.raises(
        CheckpointError, match=r"path='.*empty' is a folder without config.json, model.safetensors"
    ):
        physworld.load_world_model(tmp_path / "empty")
    out = export_world_model(tiny["prediction"], tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError, match=r"has format_version=99: accepted 1"):
        physworld.load_world_model(out)
    (out / "config.json").write_text(json.dumps(config))
    (out / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=r"model.safetensors' is corrupt: its sha256 does not match"):
        physworld.load_world_model(out)
    del config["weights_sha256"]  # as an export written before the hash was stored: read, then refused
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model.safetensors is not readable"):
        physworld.load_world_model(out)


def export_cli(args: list[str], tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), *args, f"paths.log_dir={tmp_path / 'logs'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_export_command_line_and_its_one_line_errors(tiny, tmp_path):
    ok = export_cli([f"ckpt_path={tiny['prediction']}", f"out={tmp_path / 'out'}"], tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"exported: {tmp_path / 'out'}" in ok.stdout and (tmp_path / "out" / "model.safetensors").is_file()
    evil, marker = malicious_checkpoint(tmp_path)
    file = tmp_path / "a_file"
    file.write_text("")
    for args, line in (
        (
            [f"out={tmp_path / 'x'}"],
            "ckpt_path=None is not accepted: pass ckpt_path=<run>/checkpoints/best.ckpt",
        ),
        ([f"ckpt_path={tiny['prediction']}"], "out=None is not accepted: pass out=exports/<name>"),
        (
            [f"ckpt_path={evil}", f"out={tmp_path / 'x'}"],
            f"ckpt_path='{evil}' holds io.open, which no physworld checkpoint holds: refused without loading it "
            "(accepted: tensors, state dicts and plain values (numbers, strings, lists, tuples, dicts))",
        ),
        (
            [f"ckpt_path={tiny['prediction']}", f"out={file}"],
            f"out='{file}' is a file: accepted a folder (created if missing)",
        ),
    ):
        result = export_cli(args, tmp_path)
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().splitlines() == [f"physworld: error: {line}"]
    assert not marker.exists() and not (tmp_path / "x").exists()


def test_export_with_wandb_logs_the_folder_as_an_artifact(tiny, tmp_path):
    result = export_cli(
        [f"ckpt_path={tiny['prediction']}", f"out={tmp_path / 'out'}", "logger=wandb"],
        tmp_path,
        env={"WANDB_SILENT": "true"},  # no mode and no key: offline
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "W&B artifact: world-model-prediction-goal_reach" in result.stdout
    runs = list((tmp_path / "logs" / "export" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    record = next(runs[0].glob("*.wandb")).read_bytes()  # W&B's offline log keeps the strings as they are
    for text in (
        b"world-model-prediction-goal_reach",
        b"model.safetensors",
        b"config.json",
        b"MODEL_CARD.md",
    ):
        assert text in record, text


def test_the_python_api_imports_neither_lightning_nor_hydra():
    # physworld.world_model promises a model without Hydra or Lightning: importing it (and loading the package)
    # must not load them. A fresh interpreter: this one has imported both for the other tests.
    code = (
        "import sys, physworld, physworld.world_model\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'hydra', 'pytorch_lightning'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
