"""Weights & Biases, offline (no account, no network): what a run records for the dashboard: config and git
commit, names, groups and tags, step axes, rollout tables, image grids and GIFs, one run per sweep job.

W&B keeps an offline run as a binary log (`run-<id>.wandb`, protobuf records) plus the media it copied
(`files/media/...`); the records' strings are stored as they are, so the tests look for them in the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from lightning.pytorch.loggers import WandbLogger

from physworld.loggers import build_loggers, git_state, log_files, run_info
from tests.conftest import ROOT

TINY = [
    "debug=tiny",
    "logger=wandb",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]


def train(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # no mode, no key: offline
    return subprocess.run(
        [
            sys.executable,
            "train.py",
            *args,
            f"paths.log_dir={tmp_path / 'outputs'}",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        cwd=ROOT,
        env={**env, "WANDB_SILENT": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def offline_run(run_dir):
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0], next(runs[0].glob("*.wandb")).read_bytes()


@pytest.fixture
def no_wandb_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_MODE", "restored-after-the-test")
    monkeypatch.delenv("WANDB_MODE")  # build_loggers sets it; monkeypatch now restores it


def test_prediction_run_records_config_commit_axes_tables_and_media(tmp_path):
    result = train(
        ["phase=prediction", "phase.freeze_vqvae=false", "phase.recon_weight=1", "tags=[mine]", *TINY],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "outputs" / "train" / "runs").iterdir())
    folder, log = offline_run(run_dir)
    for text in (
        "prediction-moving_mnist-seed42",  # name
        "mine",  # tags: the user's, the phase, the dataset
        "moving_mnist",
        "git_commit",  # config: run info
        "num_codes",  # the resolved config, at the top level
        "val/*",  # step axes declared for every stage
        "trainer/global_step",
        "val/loss",  # the monitored metric's min summary
    ):
        assert text.encode() in log, text
    commit = git_state(ROOT)["git_commit"]
    assert commit is None or commit.encode() in log
    media = folder / "files" / "media"
    assert list((media / "videos" / "val").glob("rollout_gif_*.gif"))  # GIFs by path, no video package
    assert list((media / "videos" / "test").glob("rollout_gif_*.gif"))
    assert list((media / "images" / "val").glob("rollout_frames_*.png"))
    assert list((media / "images" / "val").glob("reconstructions_*.png"))
    table = json.loads(next((media / "table" / "test").glob("rollout_table_*.table.json")).read_text())
    assert table["columns"][:2] == ["dataset", "horizon"]
    assert [row[1] for row in table["data"]] == list(range(1, 7))  # one row per horizon: 8 frames - 2 context
    assert (run_dir / "metrics.json").is_file() and (run_dir / "csv" / "metrics.csv").is_file()


def test_each_sweep_job_is_its_own_run(tmp_path):
    result = train(["-m", *TINY, "test=false", "model.vq.num_codes=16,32"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "train" / "multirun").iterdir())
    for job in ("0", "1"):
        _, log = offline_run(sweep / job)
        assert f"reconstruction-moving_mnist-seed42-job{job}".encode() in log
        assert b"sweep" in log and b"sweep_dir" in log


def test_offline_unless_told_otherwise(make_cfg, no_wandb_env, monkeypatch):
    loggers = build_loggers(make_cfg("debug=tiny", "logger=wandb", "tags=[a,tiny]", "+experiment_name=x"))
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger", "WandbLogger"]
    assert os.environ["WANDB_MODE"] == "offline"
    init = loggers[1]._wandb_init
    assert init["tags"] == ["a", "tiny", "reconstruction", "moving_mnist"]
    assert init["group"] == "x" and init["name"] == "reconstruction-moving_mnist-seed42"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    build_loggers(make_cfg("logger=wandb"))
    assert os.environ["WANDB_MODE"] == "disabled"  # the user's choice stands
    assert build_loggers(make_cfg("logger=none")) == []


def test_git_state_without_a_repository_or_git(tmp_path, monkeypatch):
    assert git_state(tmp_path) == {"git_commit": None, "git_dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert git_state(ROOT) == {"git_commit": None, "git_dirty": None}


def test_run_info_outside_a_multirun(make_cfg):
    info = run_info(make_cfg("debug=tiny"))
    assert set(info) == {"git_commit", "git_dirty", "output_dir", "overrides"}  # no sweep_dir, no job


def test_log_files_sends_gifs_as_videos_and_pngs_as_images(tmp_path):
    calls = []

    class Recorder(WandbLogger):
        def log_image(self, key, images, step=None, **kwargs):
            calls.append(("image", key, images, step, kwargs))

        def log_video(self, key, videos, step=None, **kwargs):
            calls.append(("video", key, videos, step, kwargs))

    class Trainer:
        global_step = 7
        loggers = [Recorder(offline=True, save_dir=str(tmp_path))]

    log_files(Trainer(), "val/rollout_gif", [tmp_path / "a.gif"], captions=["truth | prediction"])
    log_files(Trainer(), "val/grid", [tmp_path / "b.png"])
    assert calls == [
        ("video", "val/rollout_gif", [str(tmp_path / "a.gif")], 7, {"caption": ["truth | prediction"]}),
        ("image", "val/grid", [str(tmp_path / "b.png")], 7, {}),
    ]


def test_logger_wandb_without_wandb_is_one_line_naming_the_extra(make_cfg, monkeypatch, tmp_path):
    # wandb is the optional extra physworld[wandb]; simulate an install without it (None in sys.modules makes
    # `import wandb` fail).
    from physworld.checks import check_config
    from physworld.errors import ConfigError

    check_config(make_cfg("debug=tiny", "logger=wandb"))  # installed here: accepted
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"logger=wandb needs the wandb package.*physworld\[wandb\]"):
        check_config(make_cfg("debug=tiny", "logger=wandb"))
    check_config(make_cfg("debug=tiny", "logger=csv"))  # only the W&B logger needs it

    # train.py as a user runs it: one line, exit code 2, before anything is generated.
    argv = [
        "train.py",
        "debug=tiny",
        "logger=wandb",
        f"paths.log_dir={tmp_path}",
        f"paths.data_dir={tmp_path}/d",
    ]
    code = (
        f"import runpy, sys; sys.modules['wandb'] = None; sys.argv = {argv!r}; "
        "runpy.run_path('train.py', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "logger=wandb needs the wandb package" in line and "physworld[wandb]" in line
    assert not (tmp_path / "d").exists()
