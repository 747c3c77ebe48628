"""Lightning's DDP on 2 CPU processes (gloo), through train.py as a user runs it: `trainer=ddp` trains and
writes its files once, metrics reduced across ranks equal those of one process, and `trainer=ddp_spawn`
runs inside a Hydra multirun (where `trainer=ddp` would re-run the whole sweep in its child process)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import lightning as L
import pytest

from tests.conftest import run

DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "debug=tiny"]


class WindowCounter(L.Callback):
    """Writes `<dirpath>/rank<R>.json`: how many test windows this rank scored (injected with +callbacks)."""

    def __init__(self, dirpath: str):
        self.dirpath, self.windows = Path(dirpath), 0

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.windows += batch["frames"].shape[0]

    def on_test_end(self, trainer, pl_module):
        self.dirpath.mkdir(parents=True, exist_ok=True)
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.windows))


def test_ddp_fast_dev_run_on_two_cpu_processes(tmp_path):
    result = run(
        ["train.py", "trainer=ddp", *DDP, "trainer.fast_dev_run=true", f"paths.data_dir={tmp_path / 'data'}"],
        tmp_path,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "distributed_backend=gloo" in out and "Starting with 2 processes" in out
    runs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 1  # the child process joined the parent's run folder
    run_dir = runs[0]
    assert json.loads((run_dir / "metrics.json").read_text())["test/recon_psnr"] > 0
    assert sorted(p.name for p in (run_dir / "images").iterdir()) == [
        "recon_epoch000.png",
        "recon_latest.png",
    ]
    # Rank 1 ran in the same folder (Hydra logged it there) but wrote and reported nothing of rank zero's.
    rank1 = (run_dir / "train_ddp_process_1.log").read_text()
    assert "metrics:" in (run_dir / "train.log").read_text() and "metrics:" not in rank1


def test_metrics_reduced_over_two_ranks_equal_one_process(tmp_path):
    """Test-only runs of the same (seeded) prediction model: each rank scores half of the test windows and
    half of the rollout sequences; the reduced metrics must be those of one process scoring them all."""
    common = [
        "phase=prediction",
        "phase.freeze_vqvae=false",  # no reconstruction checkpoint needed; recon metrics are reported
        "phase.recon_weight=1",
        "train=false",
        "logger=none",
        f"paths.data_dir={tmp_path / 'data'}",
    ]
    counter = f"+callbacks.count._target_={__name__}.WindowCounter"
    one = run(
        ["train.py", "debug=tiny", *common, counter, f"+callbacks.count.dirpath={tmp_path / 'n1'}"],
        tmp_path / "one",
    )
    two = run(
        ["train.py", "trainer=ddp", *DDP, *common, counter, f"+callbacks.count.dirpath={tmp_path / 'n2'}"],
        tmp_path / "two",
    )
    metrics = []
    for result, root in ((one, tmp_path / "one"), (two, tmp_path / "two")):
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        run_dir = next((root / "outputs" / "train" / "runs").iterdir())
        metrics.append(json.loads((run_dir / "metrics.json").read_text()))
    single, reduced = metrics
    assert (
        json.loads((tmp_path / "n1" / "rank0.json").read_text()) == 16
    )  # one process: every test window (8 sequences x 2 windows of 7 frames)
    assert sorted(json.loads((tmp_path / "n2" / f"rank{r}.json").read_text()) for r in (0, 1)) == [8, 8]
    keys = {
        "test/loss",
        "test/recon_psnr",
        "test/recon_ssim",
        "test/rollout_mse/t05",
        "test/rollout_ssim/t01",
    }
    assert keys <= set(single)
    assert set(reduced) == set(single)
    for key in single:
        assert reduced[key] == pytest.approx(single[key], rel=1e-4, abs=1e-7), key


def test_ddp_spawn_inside_a_multirun(tmp_path):
    result = run(
        [
            "train.py",
            "-m",
            "trainer=ddp_spawn",
            *DDP,
            "+trainer.max_steps=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "logger=wandb",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        tmp_path,
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    sweeps = list((tmp_path / "outputs" / "train" / "multirun").iterdir())
    assert len(sweeps) == 1  # no worker re-ran the sweep
    job = sweeps[0] / "0"
    assert "test/recon_psnr" in json.loads((job / "metrics.json").read_text())
    assert len(list((job / "wandb").glob("offline-run-*"))) == 1  # rank 0's worker logged into the job's run
    header = (job / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/loss" in header and "test/recon_psnr" in header  # fit and test ran in separate spawns


def test_csv_logger_keeps_the_columns_of_an_existing_file(tmp_path):
    """Under ddp_spawn, fit and test each run in fresh processes on a pickled copy of the main process's
    logger, so each copy appends to metrics.csv without knowing its columns (Lightning's own writer then
    fails: "dict contains fields not in fieldnames")."""
    from physworld.loggers import CSVLogger

    logger = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    logger.log_hyperparams({"seed": 1})  # as train() does before fitting: the writer exists from here on
    for metrics, step in (({"train/loss": 1.0}, 0), ({"train/loss": 0.5}, 1), ({"test/loss": 0.7}, 1)):
        spawned = pickle.loads(pickle.dumps(logger))
        spawned.log_metrics(metrics, step=step)
        spawned.save()
    lines = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert lines == ["step,test/loss,train/loss", "0,,1.0", "1,,0.5", "1,0.7,"]


def test_plain_ddp_is_refused_inside_a_multirun(tmp_path):
    result = run(
        [
            "train.py",
            "-m",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "debug=tiny",
            "logger=none",
            f"paths.data_dir={tmp_path / 'data'}",
            "model.vq.num_codes=16,32",
        ],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        "trainer.strategy='ddp' is not accepted in a multirun" in result.stderr
        and "Traceback" not in result.stderr
    )
