"""Sweeps: the hparams_search and launcher configs compose, an Optuna search really minimises the metric
train.py returns, parallel jobs keep their own folders, and scripts/summarize.py (physworld.report.sweeps)
ranks a sweep's jobs."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from omegaconf import OmegaConf

from physworld.paths import CONFIG_DIR
from physworld.report import sweeps
from tests.conftest import compose_raw, run

SEARCHES = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))
TINY = ["debug=tiny", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def sweep_dir(tmp_path):
    sweeps = list((tmp_path / "outputs" / "train" / "multirun").iterdir())
    assert len(sweeps) == 1, sweeps  # one sweep folder, whatever ran inside it
    return sweeps[0]


@pytest.mark.parametrize("search", SEARCHES)
def test_hparams_search_composes_and_every_searched_key_exists(search):
    cfg = compose_raw([f"hparams_search={search}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.phase.name == "prediction" and cfg.optimized_metric == "val/rollout_mse/t05"
    params = cfg.hydra.sweeper.params
    assert len(params) >= 2
    for key in params:  # a typo here would only show when the sweep starts
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    header = (CONFIG_DIR / "hparams_search" / f"{search}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_" and header[1].startswith("# python train.py")


def test_optuna_search_trains_the_vqvae_so_the_codebook_size_matters():
    cfg = compose_raw(["hparams_search=prediction_optuna"])
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "minimize"
    assert "model.vq.num_codes" in cfg.hydra.sweeper.params
    assert cfg.phase.freeze_vqvae is False and cfg.phase.init_from is None and cfg.phase.recon_weight > 0


@pytest.mark.parametrize(
    ("launcher", "target"),
    [("local_parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher")],
)
def test_launcher_configs_compose(launcher, target):
    cfg = compose_raw(
        [f"hydra/launcher={launcher}", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    )
    resolved = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert resolved["_target_"].endswith(target)
    if launcher == "slurm":  # one SLURM task per device: Lightning's DDP then starts no processes itself
        assert resolved["tasks_per_node"] == 4 and resolved["nodes"] == 2


def test_optuna_sweep_minimises_what_train_returns(tmp_path):
    result = run(
        [
            "train.py",
            "hparams_search=prediction_optuna",
            "hydra.sweeper.n_trials=2",
            *TINY,
            "test=false",
            "logger=none",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = {}
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        overrides = yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())
        sampled = dict(o.split("=", 1) for o in overrides)
        assert 1e-5 <= float(sampled["phase.lr"]) <= 1e-3
        assert sampled["model.vq.num_codes"] in {"256", "512", "1024"}
        values[job] = metrics["val/rollout_mse/t05"]
    # The study saw exactly the metric each job wrote: train.py returned `optimized_metric`.
    assert best["best_value"] == pytest.approx(min(values.values()))
    best_job = min(values, key=values.get)
    table = sweeps.main([str(sweep)])
    assert table == 0
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert rows[0]["job"] == best_job and rows[0]["rank"] == "1"


def test_parallel_launcher_runs_jobs_in_their_own_folders(tmp_path):
    result = run(
        [
            "train.py",
            "-m",
            "hydra/launcher=local_parallel",
            "hydra.launcher.n_jobs=2",
            "debug=tiny",
            "trainer.fast_dev_run=true",
            "logger=none",
            f"paths.data_dir={tmp_path / 'data'}",
            "model.vq.num_codes=16,32",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    for job, codes in (("0", 16), ("1", 32)):
        assert (sweep / job / "metrics.json").is_file()
        saved = yaml.safe_load((sweep / job / ".hydra" / "config.yaml").read_text())
        assert saved["model"]["vq"]["num_codes"] == codes
    assert "Joblib" in result.stdout + result.stderr


def fake_sweep(root):
    """Four jobs: three with metrics (one NaN-free but worse, one better), one that never wrote any."""
    jobs = {"0": 0.30, "1": 0.10, "2": 0.20, "3": None}
    for job, value in jobs.items():
        folder = root / job
        (folder / ".hydra").mkdir(parents=True)
        lr = {"0": "0.001", "1": "0.0003", "2": "0.0001", "3": "0.01"}[job]
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"phase.lr={lr}", "debug=tiny"]))
        (folder / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"phase": {"monitor": "val/loss"}, "optimized_metric": "${phase.monitor}"})
        )
        if value is not None:
            metrics = {"val/loss": value, "test/loss": value + 0.01, "train/loss": 1.0}
            (folder / "metrics.json").write_text(json.dumps(metrics))
    (root / "1" / "wandb" / "run" / "files").mkdir(parents=True)  # W&B folders are not jobs
    return root


def test_summarize_ranks_jobs_best_first(tmp_path, capsys):
    sweep = fake_sweep(tmp_path / "sweep")
    assert sweeps.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "4 jobs, 3 with metrics, ranked by val/loss (lowest first)" in out
    table = (sweep / "summary.md").read_text().splitlines()
    assert table[0] == "| rank | job | phase.lr | val/loss | test/loss |"  # debug=tiny is the same everywhere
    assert [line.split(" | ")[1] for line in table[2:]] == ["1", "2", "0", "3"]
    assert "no metrics.json" in table[-1]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["job"] for r in rows] == ["1", "2", "0", "3"]
    assert list(rows[0])[:4] == ["rank", "job", "phase.lr", "val/loss"] and "train/loss" in rows[0]
    assert float(rows[0]["val/loss"]) == 0.10 and rows[-1]["val/loss"] == ""


def test_summarize_other_metric_and_direction(tmp_path, capsys):
    sweep = fake_sweep(tmp_path / "sweep")
    assert sweeps.main([str(sweep), "--metric", "test/loss", "--max"]) == 0
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["job"] for r in rows] == ["0", "2", "1", "3"]
    assert sweeps.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
