"""Does it learn physics: the crossover horizon (where the model stops beating copy-last), the ood_test gap keys and
the long_test rollout of scripts/evaluate.py on the tiny prediction run."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from matplotlib.axes import Axes

from physworld.errors import ConfigError
from physworld.evaluation.evaluate import evaluate_run
from physworld.evaluation.generalisation import gap_metrics
from physworld.metrics.rollout import PREFIXES, crossover_horizon
from physworld.plots.horizon import error_vs_horizon_plot

NAN = float("nan")


@pytest.mark.parametrize(
    ("model", "copy", "expected"),
    [
        ([0.1, 0.2, 0.4, 0.9], [0.3, 0.35, 0.4, 0.5], 3),  # equal at t3: no longer below
        ([0.1, 0.2, 0.3], [0.5, 0.6, 0.7], "never"),
        ([0.6, 0.1, 0.1], [0.5, 0.6, 0.7], 1),
        ([NAN, 0.8, 0.9], [0.5, 0.6, 0.7], 2),  # t1 has no model value: skipped
        ([0.1, NAN, 0.9], [0.5, 0.6, NAN], "never"),  # t2 and t3 lack a value: not counted as a crossover
        ([NAN, NAN], [0.5, 0.6], None),
    ],
)
def test_crossover_horizon_hand_made(model, copy, expected):
    assert crossover_horizon(torch.tensor(model), torch.tensor(copy)) == expected


def test_crossover_horizon_needs_equal_lengths():
    with pytest.raises(ValueError, match=r"model \(3,\) and baseline \(2,\) differ"):
        crossover_horizon(torch.zeros(3), torch.zeros(2))


def test_gap_metrics_hand_made():
    test = {"test/rollout_mse/pendulum/t01": 2.0, "test/recon_psnr/pendulum": 0.0, "test/only_here": 1.0}
    ood = {"ood_test/rollout_mse/pendulum/t01": 3.0, "ood_test/recon_psnr/pendulum": 5.0}
    assert gap_metrics(test, ood, "test", "ood_test") == {
        "ood_gap/rollout_mse/pendulum/t01": 1.0,
        "ood_ratio/rollout_mse/pendulum/t01": 1.5,
        "ood_gap/recon_psnr/pendulum": 5.0,  # no ratio over a zero
    }


def horizon_values(metrics: dict, key: str) -> list[float]:
    """[value at t01, t02, ...] of `key/tNN` (NaN where a horizon has no value)."""
    steps = {int(m[1]): v for k, v in metrics.items() if (m := re.fullmatch(re.escape(key) + r"/t(\d+)", k))}
    return [steps.get(t, NAN) for t in range(1, max(steps, default=0) + 1)]


def test_ood_gap_writes_both_splits_and_the_gap(pred_run, tmp_path):
    out, metrics = evaluate_run(
        pred_run,
        ["evaluation.ood_gap=true", "evaluation.num_sequences=4", f"output_dir={tmp_path / 'e'}"],
        "last.ckpt",
    )
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "ood_test_rollout_error_vs_horizon.png").is_file()
    record = json.loads((out / "evaluation.json").read_text())
    assert [d["name"] for d in record["ood_test"]] == ["pendulum"]
    for predictor in ("model", "copy_last", "const_vel", "tokenizer"):
        metric = "pos_err" if predictor == "const_vel" else "mse"
        rest = f"{PREFIXES[predictor]}_{metric}/pendulum/t02"
        test, ood = metrics[f"test/{rest}"], metrics[f"ood_test/{rest}"]
        assert test != ood  # another split: other frames
        assert metrics[f"ood_gap/{rest}"] == pytest.approx(ood - test)
        assert metrics[f"ood_ratio/{rest}"] == pytest.approx(ood / test)
    # one dataset: the mean over datasets is its value
    assert metrics["ood_gap/rollout_mse/t01"] == pytest.approx(metrics["ood_gap/rollout_mse/pendulum/t01"])
    for split in ("test", "ood_test"):
        for metric in ("mse", "pos_err"):
            model = horizon_values(metrics, f"{split}/rollout_{metric}/pendulum")
            copy = horizon_values(metrics, f"{split}/baseline_copy_last_{metric}/pendulum")
            both = [(t, m, c) for t, (m, c) in enumerate(zip(model, copy), 1) if not math.isnan(m + c)]
            key = f"{split}/crossover_{metric}/pendulum"
            if not both:  # no object found by the tiny model at any horizon: nothing to compare
                assert key not in metrics
                continue
            worse = [t for t, m, c in both if m >= c]
            assert metrics[key] == (worse[0] if worse else "never")
    assert "test/crossover_mse/pendulum" in metrics and "ood_test/crossover_mse/pendulum" in metrics


def test_long_test_rolls_out_past_the_stored_test_length(pred_run, tmp_path):
    # debug=tiny stores 8 frames per test sequence; long_test has long_num_frames, so 12 steps fit.
    overrides = ["evaluation.split=long_test", "evaluation.horizon=12", "evaluation.num_sequences=2"]
    _, metrics = evaluate_run(pred_run, [*overrides, f"output_dir={tmp_path / 'e'}"], "last.ckpt")
    assert (
        "long_test/rollout_mse/pendulum/t12" in metrics
        and "long_test/rollout_mse/pendulum/t13" not in metrics
    )
    assert "long_test/baseline_copy_last_mse/pendulum/t12" in metrics
    assert metrics["long_test/crossover_mse/pendulum"] in [*range(1, 13), "never"]


def test_ood_gap_needs_the_test_split(pred_run, tmp_path):
    with pytest.raises(
        ConfigError, match="evaluation.split='val' is not accepted with evaluation.ood_gap=true"
    ):
        evaluate_run(pred_run, ["evaluation.ood_gap=true", "evaluation.split=val"], "last.ckpt")


def test_ood_split_refused_for_moving_mnist(pred_run, tmp_path):
    overrides = [
        "evaluation.ood_gap=true",
        "dataset=moving_mnist",
        "debug=tiny",
        f"output_dir={tmp_path / 'e'}",
    ]
    with pytest.raises(ConfigError, match=r"evaluation.ood_gap=true is not accepted for \['moving_mnist'\]"):
        evaluate_run(pred_run, overrides, "last.ckpt")


def test_error_plot_marks_the_crossover(tmp_path, monkeypatch):
    marks = []
    original = Axes.axvline
    monkeypatch.setattr(Axes, "axvline", lambda ax, x=0, **kw: marks.append(x) or original(ax, x, **kw))
    results = {
        "a": {  # mse crosses at t3; pos_err never
            "model": {"mse": torch.tensor([0.1, 0.2, 0.5]), "pos_err": torch.tensor([1.0, 1.0, 1.0])},
            "copy_last": {"mse": torch.tensor([0.3, 0.3, 0.3]), "pos_err": torch.tensor([2.0, 3.0, 4.0])},
        }
    }
    error_vs_horizon_plot(results, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0 and marks == [3]
