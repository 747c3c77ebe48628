"""Shared fixtures and helpers: compose the real configs with Hydra's compose API, run the commands, make tiny
trained runs once per session; everything writes only under tmp_path."""

from __future__ import annotations

import os

# The tests run tiny models: one intra-op thread is fastest for them, and it stays fast when other work shares
# the CPU (two spinning OpenMP threads per process slowed the tiny RL run 3x on a loaded 2-core machine).
# Set before torch is imported, so subprocesses (train.py in test_cli) inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest
from omegaconf import OmegaConf, open_dict

from physworld.paths import compose

ROOT = Path(__file__).resolve().parents[1]


def compose_raw(overrides=(), config_name: str = "train"):
    """The config `python train.py <overrides>` would see, paths as they are."""
    return compose(config_name, [f"paths.root_dir={ROOT}", *overrides], keep_hydra=True)


def compose_config(tmp_path: Path, overrides=(), config_name: str = "train"):
    """The config `python train.py <overrides>` would see, with data and outputs under tmp_path."""
    cfg = compose_raw(overrides, config_name)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: @hydra.main hands the task config without the hydra node
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides, config_name="train"):
        return compose_config(tmp_path, overrides, config_name)

    return make


# Helpers and fixtures shared by several test files. Whatever needs torch or Lightning imports it where it runs,
# so collecting a test file that does not need them stays quick.


def run(args, tmp_path, env=None):
    """`python <args> paths.log_dir=<tmp_path>/outputs` in the repository, with its data under tmp_path/data."""
    env = {**os.environ, "PHYSWORLD_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    return subprocess.run(
        [sys.executable, *args, f"paths.log_dir={tmp_path / 'outputs'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tiny_run(tmp: Path, *overrides: str) -> Path:
    """Train a debug=tiny run in-process and save its config where Hydra would (`<run>/.hydra/config.yaml`),
    which is where evaluate.py reads the training data from."""
    from physworld.run import train  # torch and Lightning: imported when a test needs a run

    cfg = compose_config(tmp, ["debug=tiny", "dataset=pendulum", "test=false", *overrides])
    train(cfg)
    run = tmp / "run"
    (run / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return run


@pytest.fixture(scope="session")
def recon_run(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("recon"), "phase.max_epochs=2")


@pytest.fixture(scope="session")
def pred_run(tmp_path_factory, recon_run) -> Path:
    init = recon_run / "checkpoints" / "last.ckpt"
    return tiny_run(tmp_path_factory.mktemp("pred"), "phase=prediction", f"phase.init_from={init}")


@pytest.fixture(scope="session")
def pred_eval(pred_run) -> tuple[Path, dict]:
    """The prediction run's last checkpoint evaluated on its own (inherited) test split."""
    from physworld.evaluation.evaluate import evaluate_run  # torch: imported when a test needs the runs

    return evaluate_run(pred_run, checkpoint="last.ckpt")


class CreateFile:
    """Unpickling this calls `function(code or path)`: `open(path, "w")` or `exec(...)` creates `path`."""

    def __init__(self, path: Path, how: str = "open"):
        self.path, self.how = str(path), how

    def __reduce__(self):
        if self.how == "exec":
            return exec, (f"open({self.path!r}, 'w').close()",)
        return open, (self.path, "w")


def malicious_checkpoint(folder: Path, how: str = "open", protocol: int = 2) -> tuple[Path, Path]:
    """A checkpoint shaped like a physworld one, with the payload among its hyperparameters; and the file the
    payload would create."""
    import torch

    marker = folder / f"pwned_{how}_{protocol}"
    ckpt = {
        "state_dict": {"vqvae.w": torch.zeros(2)},
        "hyper_parameters": {"phase": {"name": "reconstruction", "note": CreateFile(marker, how)}},
    }
    path = folder / f"evil_{how}_{protocol}.ckpt"
    torch.save(ckpt, path, pickle_protocol=protocol)
    return path, marker


def tables(markdown: str, headings: bool = False) -> list:
    """Every Markdown table as rows of cells (header first, the |---| line dropped); with headings, as
    (the latest `#### ` heading above it, rows) pairs."""
    found, current, heading = [], [], None
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([c.strip() for c in line.strip("|").split(" | ")])
        elif current:
            found.append((heading, current) if headings else current)
            current = []
        if line.startswith("#### "):
            heading = line[5:].strip()
    return found


def check_tables_hold_metrics(section: str, metrics: dict, split: str = "test") -> int:
    """Every cell of the reconstruction and rollout tables of a report's section equals the formatted
    metrics.json value; returns how many cells were compared."""
    from physworld.evaluation.document import fmt
    from physworld.evaluation.report import FRAME_COLUMNS, PHYSICS_COLUMNS, RECON_COLUMNS

    labels = {
        label: key for key, label in RECON_COLUMNS + FRAME_COLUMNS + PHYSICS_COLUMNS
    }  # column -> metric
    checked = 0
    for name, table in tables(section, headings=True):
        header = table[0]
        if header[0] == "dataset" and header[1] == "L1":
            for row in table[1:]:
                for label, cell in zip(header[1:], row[1:]):
                    assert cell == fmt(metrics.get(f"{split}/{labels[label]}/{row[0]}")), (row[0], label)
                    checked += 1
        elif header[:2] == ["dataset", "horizon"]:  # the at-a-glance table: a row per dataset and horizon
            for row in table[1:]:
                for label, cell in zip(header[2:], row[2:]):
                    assert cell == fmt(metrics.get(f"{split}/{labels[label]}/{row[0]}/{row[1]}")), row[:2]
                    checked += 1
        elif header[0] == "horizon":  # a dataset's own tables, under its `#### <dataset>` heading
            for row in table[1:]:
                for label, cell in zip(header[1:], row[1:]):
                    assert cell == fmt(metrics.get(f"{split}/{labels[label]}/{name}/{row[0]}")), (
                        row[0],
                        label,
                    )
                    checked += 1
    return checked
