"""LPIPS (physworld.metrics.lpips): the AlexNet stack has torchvision's parameter names and shapes, the distance
is 0 for a frame with itself, symmetric and grows with noise, agrees with a hand computation, a missing backbone
file is one line naming where it was looked for, and an evaluation with `evaluation.lpips=true` writes LPIPS per
horizon (the copy-last values checked against the stored frames). Backbones here are random: nothing downloads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from physworld.checks import check_config
from physworld.data.cache import ensure_split, load_split
from physworld.data.plan import datasets_for
from physworld.errors import CheckpointError, ConfigError
from physworld.evaluation.evaluate import evaluate_run
from physworld.metrics.lpips import BACKBONE_FILE, CHANNELS, LPIPS, AlexNetFeatures, build_lpips
from physworld.report.build import write_report
from tests.conftest import check_tables_hold_metrics, tiny_run

# torchvision.models.alexnet().features.state_dict(): (name, shape), in order
TORCHVISION_ALEXNET_FEATURES = [
    ("features.0.weight", (64, 3, 11, 11)),
    ("features.0.bias", (64,)),
    ("features.3.weight", (192, 64, 5, 5)),
    ("features.3.bias", (192,)),
    ("features.6.weight", (384, 192, 3, 3)),
    ("features.6.bias", (384,)),
    ("features.8.weight", (256, 384, 3, 3)),
    ("features.8.bias", (256,)),
    ("features.10.weight", (256, 256, 3, 3)),
    ("features.10.bias", (256,)),
]


def random_backbone(path: Path, seed: int = 0) -> Path:
    """A randomly initialised AlexNet saved as torchvision's file would be (features.* and a classifier)."""
    torch.manual_seed(seed)
    weights = dict(AlexNetFeatures().state_dict())
    weights["classifier.1.weight"] = torch.zeros(4, 9216)  # ignored: LPIPS uses the features only
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(weights, path)
    return path


def test_alexnet_features_have_torchvisions_names_and_shapes():
    found = [(name, tuple(t.shape)) for name, t in AlexNetFeatures().state_dict().items()]
    assert found == TORCHVISION_ALEXNET_FEATURES


def test_lpips_is_zero_on_itself_symmetric_and_grows_with_noise(tmp_path):
    lpips = LPIPS.from_files(
        random_backbone(tmp_path / "alexnet.pth"), "test"
    )  # torchmetrics' linear weights
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 64, 64, generator=g)
    noise = torch.randn(x.shape, generator=g)
    assert torch.equal(lpips(x, x), torch.zeros(6))
    y = torch.rand(6, 3, 64, 64, generator=g)
    assert torch.allclose(lpips(x, y), lpips(y, x), rtol=1e-6, atol=0)
    distances = [lpips(x, (x + s * noise).clamp(0, 1)) for s in (0.02, 0.1, 0.3)]
    assert (distances[0] > 0).all()
    assert (distances[0] < distances[1]).all() and (distances[1] < distances[2]).all()


def test_lpips_matches_a_hand_computation_of_its_first_layer(tmp_path):
    # Linear weights only on the first layer: LPIPS is then that layer's term, computed here in numpy without
    # torch's convolution: scale the frames, 11x11 stride-4 patches (padding 2), ReLU, unit length over the 64
    # channels at each of the 7x7 positions, weighted squared difference, mean over positions.
    rng = np.random.default_rng(0)
    w_lin = rng.uniform(0, 1, 64)
    lin = {f"lin{i}.model.1.weight": torch.zeros(1, c, 1, 1) for i, c in enumerate(CHANNELS)}
    lin["lin0.model.1.weight"] = torch.tensor(w_lin, dtype=torch.float32).view(1, 64, 1, 1)
    torch.save(lin, tmp_path / "lin.pth")
    backbone = random_backbone(tmp_path / "alexnet.pth", seed=3)
    lpips = LPIPS.from_files(backbone, "test", linear=tmp_path / "lin.pth")
    a, b = rng.uniform(0, 1, (2, 3, 31, 31))

    weights = torch.load(backbone, weights_only=True)
    kernel, bias = weights["features.0.weight"].double().numpy(), weights["features.0.bias"].double().numpy()
    shift, scale = np.array([-0.030, -0.088, -0.188]), np.array([0.458, 0.448, 0.450])

    def layer1(img):  # (3, 31, 31) -> (64, 7, 7)
        x = np.pad((2 * img - 1 - shift[:, None, None]) / scale[:, None, None], ((0, 0), (2, 2), (2, 2)))
        out = np.empty((64, 7, 7))
        for i in range(7):
            for j in range(7):
                patch = x[:, 4 * i : 4 * i + 11, 4 * j : 4 * j + 11]
                out[:, i, j] = (kernel * patch).sum((1, 2, 3)) + bias
        out = np.maximum(out, 0)
        return out / (np.sqrt((out**2).sum(0)) + 1e-10)

    expected = (w_lin[:, None, None] * (layer1(a) - layer1(b)) ** 2).sum(0).mean()
    got = lpips(torch.tensor(a[None], dtype=torch.float32), torch.tensor(b[None], dtype=torch.float32))
    assert expected > 0
    assert float(got[0]) == pytest.approx(expected, rel=1e-4)


def test_missing_backbone_is_one_line_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # torch.hub.get_dir() returns it
    expected = tmp_path / "hub" / "checkpoints" / BACKBONE_FILE
    with pytest.raises(ConfigError) as err:
        build_lpips(True, None, "evaluation.lpips_backbone")
    message = str(err.value)
    assert "\n" not in message
    assert str(expected) in message and "evaluation.lpips_backbone=" in message and BACKBONE_FILE in message
    with pytest.raises(ConfigError, match="nowhere.pth': no such file") as err:
        build_lpips(True, str(tmp_path / "nowhere.pth"), "evaluation.lpips_backbone")
    assert "\n" not in str(err.value)
    assert build_lpips(False, None, "evaluation.lpips_backbone") is None  # off: nothing is looked for
    random_backbone(expected)  # torchvision's file in the hub cache is found without a key
    assert isinstance(build_lpips(True, None, "evaluation.lpips_backbone"), LPIPS)


def test_a_file_that_is_not_alexnet_is_one_line(tmp_path):
    weights = dict(AlexNetFeatures().state_dict())
    weights["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    torch.save(weights, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match=r"features\.3\.weight is \(192, 64, 3, 3\), expected") as err:
        build_lpips(True, str(tmp_path / "wrong.pth"), "evaluation.lpips_backbone")
    assert "\n" not in str(err.value)


def test_training_config_checks_the_callbacks_backbone_at_start_up(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match="callbacks.rollout.lpips_backbone=<the file>"):
        check_config(make_cfg("debug=tiny", "callbacks.rollout.lpips=true"), files=False)
    with pytest.raises(ConfigError, match="callbacks.rollout.lpips='yes' is not accepted"):
        check_config(make_cfg("debug=tiny", "callbacks.rollout.lpips=yes"), files=False)
    backbone = random_backbone(tmp_path / "alexnet.pth")
    cfg = make_cfg(
        "debug=tiny", "callbacks.rollout.lpips=true", f"callbacks.rollout.lpips_backbone={backbone}"
    )
    check_config(cfg, files=False)  # found: no error


def test_evaluation_with_lpips_writes_it_per_horizon(pred_run, tmp_path):  # noqa: F811
    backbone = random_backbone(tmp_path / "alexnet.pth")
    overrides = [
        "evaluation.lpips=true",
        f"evaluation.lpips_backbone={backbone}",
        f"output_dir={tmp_path / 'ev'}",
    ]
    out, metrics = evaluate_run(pred_run, overrides, "last.ckpt")
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["test/recon_lpips/pendulum"] > 0 and "test/recon_lpips" in metrics
    for prefix in ("rollout", "baseline_copy_last", "tokenizer_floor"):
        for t in range(1, 7):  # debug=tiny: 8 frames, 2 of them context
            assert metrics[f"test/{prefix}_lpips/pendulum/t{t:02d}"] >= 0, (prefix, t)
    assert "test/rollout_lpips/pendulum/t07" not in metrics
    for t in (1, 6):  # copy-last by hand: the last context frame against the true frame t steps later
        expected = copy_last_by_hand(pred_run, "test", backbone, t)
        assert metrics[f"test/baseline_copy_last_lpips/pendulum/t{t:02d}"] == pytest.approx(
            expected, rel=1e-4
        )
    markdown, _ = write_report(out)  # the report's tables get the LPIPS columns, with these numbers
    text = Path(markdown).read_text()
    assert "| LPIPS model | LPIPS copy-last | LPIPS tokenizer floor |" in text and "| LPIPS |" in text
    assert check_tables_hold_metrics(text, metrics) > 0


def test_rollout_callback_with_lpips_logs_it_per_horizon(recon_run, tmp_path):  # noqa: F811
    backbone = random_backbone(tmp_path / "alexnet.pth")
    run = tiny_run(
        tmp_path,
        "phase=prediction",
        f"phase.init_from={recon_run / 'checkpoints' / 'last.ckpt'}",
        "callbacks.rollout.lpips=true",
        f"callbacks.rollout.lpips_backbone={backbone}",
    )
    metrics = json.loads((run / "metrics.json").read_text())
    for prefix in ("rollout", "baseline_copy_last", "tokenizer_floor"):
        assert metrics[f"val/{prefix}_lpips/t06"] >= 0, prefix
    expected = copy_last_by_hand(run, "val", backbone, 1)  # the callback scores all 8 val sequences
    assert metrics["val/baseline_copy_last_lpips/t01"] == pytest.approx(expected, rel=1e-4)


def copy_last_by_hand(run: Path, split: str, backbone: Path, t: int, c: int = 2) -> float:
    """LPIPS of the last context frame against the true frame t steps later, averaged over the stored split."""
    train_cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    path = ensure_split(train_cfg.paths.data_dir, datasets_for(train_cfg)[0], split, int(train_cfg.data.seed))
    frames = torch.from_numpy(np.array(load_split(path)["frames"])).permute(0, 1, 4, 2, 3).float() / 255
    lpips = build_lpips(True, str(backbone), "test")
    return float(lpips(frames[:, c - 1], frames[:, c - 1 + t]).mean())
