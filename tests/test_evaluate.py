"""scripts/evaluate.py on tiny runs: every figure is a valid PNG/GIF, the metrics agree with the training
callbacks on the same data, a reconstruction checkpoint gets no rollouts, and a missing, corrupt or
wrong-phase checkpoint fails with one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from physworld.errors import CheckpointError, ConfigError
from physworld.evaluation.evaluate import evaluate_run
from physworld.report.build import write_report
from tests.conftest import ROOT

PNGS = [
    "architecture_diagram.png",
    "sharp_model_v2_result.png",
    "reconstruction_pendulum.png",
    "pendulum_preview.png",
]
ROLLOUT_PNGS = [
    "physics_pendulum_result.png",
    "autoregressive_rollout.png",
    "rollout_error_vs_horizon.png",
    "position_error_vs_horizon.png",
]


def assert_image(path: Path, kind: str) -> None:
    assert path.is_file(), path
    with Image.open(path) as image:
        image.verify()  # a truncated or corrupt file fails here
    with Image.open(path) as image:
        assert image.format == kind and image.size[0] > 32 and image.size[1] > 32


def test_prediction_checkpoint_writes_every_figure_and_metric(pred_eval, pred_run):
    out, metrics = pred_eval
    assert out.parent == pred_run / "evaluate" and out.name.endswith("_pendulum")
    for name in PNGS + ROLLOUT_PNGS:
        assert_image(out / name, "PNG")
    assert_image(out / "rollout_pendulum.gif", "GIF")
    with Image.open(out / "rollout_pendulum.gif") as gif:
        assert gif.n_frames == 8  # 2 context + 6 predicted frames: debug=tiny stores 8
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for key in (
        "recon_l1",
        "recon_mse",
        "recon_psnr",
        "recon_ssim",
        "codebook_perplexity",
        "codebook_dead_codes",
        "recon_sharpness",
        "recon_pos_found",
    ):
        assert f"test/{key}/pendulum" in metrics and f"test/{key}" in metrics
    assert 0 < metrics["test/recon_sharpness/pendulum"] < 2
    for prefix in ("rollout", "baseline_copy_last"):
        for metric in ("mse", "psnr", "ssim", "latent_mse"):
            assert f"test/{prefix}_{metric}/pendulum/t06" in metrics
    assert "test/rollout_mse/pendulum/t07" not in metrics
    assert "test/baseline_copy_last_pos_err/pendulum/t06" in metrics
    assert "test/baseline_const_vel_pos_err/pendulum/t06" in metrics
    assert metrics["test/truth_pos_err/pendulum/t01"] < 1.0  # the estimator on true frames
    assert 0 <= metrics["test/rollout_pos_found/pendulum/t01"] <= 1
    for metric in ("mse", "psnr", "sharpness", "pos_found"):  # the tokenizer floor: true codes, decoded
        assert f"test/tokenizer_floor_{metric}/pendulum/t06" in metrics, metric
    record = json.loads((out / "evaluation.json").read_text())
    assert record["phase"] == "prediction" and record["has_dynamics"]
    assert record["checkpoint"] == str((pred_run / "checkpoints" / "last.ckpt").resolve())
    assert "training run's config" in record["data_source"]
    assert record["datasets"] == [
        {"name": "pendulum", "sequences": 8, "frames": 8, "context_frames": 2, "horizon": 6, "notes": []}
    ]
    assert set(record["figures"]) >= set(PNGS + ROLLOUT_PNGS + ["rollout_pendulum.gif"])
    assert record["parameters"]["total"] == sum(v for k, v in record["parameters"].items() if k != "total")
    timings = record["timings"]  # seconds per part
    parts = ("reconstruction", "rollouts", "probes", "counterfactual", "figures")
    assert set(timings) == {*parts, "total"} and all(timings[p] >= 0 for p in parts)
    assert sum(timings[p] for p in parts) <= timings["total"] + 0.01 and timings["rollouts"] > 0


def test_scores_match_the_training_callbacks_on_the_same_data(pred_run):
    # The training run's last validation used the weights of last.ckpt on the whole (8-sequence) val split:
    # the evaluation of that split must give the same rollout numbers as the RolloutEvaluation callback.
    _, metrics = evaluate_run(
        pred_run, ["evaluation.split=val", "output_dir=" + str(pred_run / "eval_val")], "last.ckpt"
    )
    trained = json.loads((pred_run / "metrics.json").read_text())
    rollout = {key for key in trained if key.startswith("val/") and "/t0" in key}  # every per-horizon metric
    assert len(rollout) > 100 and "val/baseline_const_vel_pos_err/t03" in rollout
    assert "val/tokenizer_floor_sharpness/t06" in rollout and "val/rollout_token_acc/t01" in rollout
    for key in sorted(rollout):
        assert metrics[key] == pytest.approx(trained[key], rel=1e-4, abs=1e-6), key


def test_reconstruction_checkpoint_is_scored_without_rollouts(recon_run):
    out, metrics = evaluate_run(recon_run, ["output_dir=" + str(recon_run / "eval_recon")], "last.ckpt")
    trained = json.loads((recon_run / "metrics.json").read_text())
    # every frame of the val split, as the phase's own validation: the same PSNR
    _, val = evaluate_run(
        recon_run, ["evaluation.split=val", f"output_dir={recon_run / 'eval_val'}"], "last.ckpt"
    )
    assert val["val/recon_psnr"] == pytest.approx(trained["val/recon_psnr"], rel=1e-4)
    assert metrics["test/recon_psnr/pendulum"] > 0
    assert not any("rollout" in k or "position" in k for k in metrics)
    for name in PNGS:
        assert_image(out / name, "PNG")
    assert not (out / "physics_pendulum_result.png").exists() and not list(out.glob("*.gif"))
    assert json.loads((out / "evaluation.json").read_text())["has_dynamics"] is False


def test_dataset_choice_overrides_the_training_data(pred_run, tmp_path):
    out, metrics = evaluate_run(
        pred_run,
        [
            "dataset=spring_mass",
            "debug=tiny",
            f"paths.data_dir={tmp_path / 'data'}",
            f"output_dir={tmp_path / 'e'}",
        ],
        "last.ckpt",
    )
    assert "test/rollout_mse/spring_mass/t06" in metrics and not any("pendulum" in k for k in metrics)
    record = json.loads((out / "evaluation.json").read_text())
    assert record["data_source"].startswith("dataset=spring_mass") and record["trained_on"] == ["pendulum"]
    assert_image(out / "physics_spring_mass_result.png", "PNG")


def test_bad_checkpoints_and_settings_fail_with_one_line(pred_run, tmp_path):
    with pytest.raises(CheckpointError, match=r"ckpt_path='.*nope.ckpt': no such checkpoint file"):
        evaluate_run(tmp_path, checkpoint="nope.ckpt")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "corrupt.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        evaluate_run(tmp_path, checkpoint="corrupt.ckpt")
    ckpt = torch.load(pred_run / "checkpoints" / "last.ckpt", weights_only=False)
    ckpt["hyper_parameters"]["phase"]["name"] = "rl"
    torch.save(ckpt, tmp_path / "checkpoints" / "rl.ckpt")
    with pytest.raises(CheckpointError, match=r"is a checkpoint of phase 'rl': accepted one of"):
        evaluate_run(tmp_path, checkpoint="rl.ckpt")
    ckpt["hyper_parameters"]["phase"]["name"] = "prediction"
    ckpt["state_dict"].pop("dynamics.head.weight")
    torch.save(ckpt, tmp_path / "checkpoints" / "broken.ckpt")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        evaluate_run(tmp_path, checkpoint="broken.ckpt")
    # a good checkpoint in a folder without the training run's config: the dataset must be named
    (tmp_path / "checkpoints" / "copy.ckpt").write_bytes(
        (pred_run / "checkpoints" / "last.ckpt").read_bytes()
    )
    with pytest.raises(ConfigError, match=r"dataset=None: .* pass dataset=<name>"):
        evaluate_run(tmp_path, checkpoint="copy.ckpt")
    with pytest.raises(ConfigError, match=r"evaluation.horizon=0 is not accepted: a positive integer"):
        evaluate_run(pred_run, ["evaluation.horizon=0"], "last.ckpt")


def test_cli_errors_are_one_line_and_success_prints_the_folder(pred_run, tmp_path):
    env = {**os.environ, "PHYSWORLD_DATA_DIR": str(tmp_path / "data")}

    def run(*args):
        return subprocess.run(
            [sys.executable, "scripts/evaluate.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    missing = run(f"ckpt_path={tmp_path / 'nope.ckpt'}")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [
        f"physworld: error: ckpt_path='{tmp_path / 'nope.ckpt'}': no such checkpoint file"
    ]
    ok = run(f"ckpt_path={pred_run / 'checkpoints' / 'last.ckpt'}", f"output_dir={tmp_path / 'cli'}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"evaluation: {tmp_path / 'cli'}" in ok.stdout and "pendulum: recon PSNR" in ok.stdout
    assert (tmp_path / "cli" / "metrics.json").is_file()


@pytest.mark.slow
def test_dataset_all_reports_every_member(pred_run, tmp_path):
    out, metrics = evaluate_run(
        pred_run,
        ["dataset=all", "debug=tiny", f"paths.data_dir={tmp_path / 'data'}", "evaluation.num_sequences=2"],
        "last.ckpt",
    )
    names = [d["name"] for d in json.loads((out / "evaluation.json").read_text())["datasets"]]
    assert len(names) == 10 and out.name.endswith("_all")
    for name in names:
        assert f"test/rollout_mse/{name}/t06" in metrics
        assert_image(out / f"physics_{name}_result.png", "PNG")
    # the plain keys are the means over datasets
    mean = sum(metrics[f"test/recon_psnr/{n}"] for n in names) / len(names)
    assert metrics["test/recon_psnr"] == pytest.approx(mean)
    assert "test/truth_pos_err/wave/t01" not in metrics  # wave draws no point-like objects
    assert "test/rollout_pos_err/wave/t01" not in metrics and "test/rollout_sharpness/wave/t01" in metrics


def test_evaluation_and_report_show_progress_bars(pred_run, tmp_path, capsys):
    # tqdm bars (on stderr) over the evaluation's batches and the report's runs.
    evaluate_run(pred_run, ["evaluation.split=val", f"output_dir={tmp_path / 'e'}"], "last.ckpt")
    err = capsys.readouterr().err
    assert "evaluate pendulum: reconstruction" in err and "evaluate pendulum: rollouts" in err
    copy = shutil.copytree(
        pred_run, tmp_path / "run"
    )  # the report writes into the folder: not the shared run
    write_report(copy)
    assert "report: runs" in capsys.readouterr().err
