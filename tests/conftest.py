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


def run(args, tmp_path, env=None, timeout=300):
    """`python <args> paths.log_dir=<tmp_path>/outputs` in the repository, with its data under tmp_path/data.
    `timeout` (seconds) only stops a hung command; it is no speed target."""
    env = {**os.environ, "PHYSWORLD_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    return subprocess.run(
        [sys.executable, *args, f"paths.log_dir={tmp_path / 'outputs'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
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
    from physworld.report.document import fmt
    from physworld.report.evaluations import FRAME_COLUMNS, PHYSICS_COLUMNS, RECON_COLUMNS

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


def generalisation_section(markdown: str) -> str:
    """The report's `## Generalisation` section."""
    start = markdown.index("## Generalisation")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end > 0 else None]


def latest_evaluations(run: Path) -> dict[str, tuple[Path, dict]]:
    """A run's newest evaluation of each kind ("ood": test beside ood_test, "long": long_test, "test": the newest
    on the test split, the ood one first) as (folder, metrics.json)."""
    import json

    found: dict[str, tuple[Path, dict]] = {}
    for record in sorted(run.glob("evaluate/*/evaluation.json"), key=lambda f: f.parent.name):
        info, metrics = (
            json.loads(record.read_text()),
            json.loads((record.parent / "metrics.json").read_text()),
        )
        kind = {"long_test": "long", "test": "ood" if info.get("ood_test") else "test"}.get(info["split"])
        if kind:
            found[kind] = (record.parent, metrics)
    if "ood" in found:
        found["test"] = found["ood"]
    return found


def check_generalisation_holds_metrics(section: str, run: Path, name: str) -> dict[str, int]:
    """Every cell of the tables of model `name`'s part of the Generalisation section equals the value of the
    metrics.json it comes from (latest_evaluations(run)); returns the cells compared per table."""
    import re

    from physworld.report.document import fmt

    parts = re.split(r"^### Model `([^`]+)`", section, flags=re.M)
    text = parts[parts.index(name) + 1]
    found = latest_evaluations(run)
    metrics = {kind: m for kind, (_, m) in found.items()}
    show = lambda v: v if isinstance(v, str) else fmt(v)  # noqa: E731
    predictors = {
        "model": "rollout",
        "copy-last": "baseline_copy_last",
        "const. velocity": "baseline_const_vel",
    }
    predictors["tokenizer floor"] = "tokenizer_floor"
    checked = {"gap": 0, "crossover": 0, "counterfactual": 0, "probes": 0}
    for table in tables(text):
        header, rows = table[0], table[1:]
        if header[:3] == ["dataset", "horizon", "predictor"]:  # ID against OOD
            for row in rows:
                keys = [f"{predictors[row[2]]}_{m}/{row[0]}/{row[1]}" for m in ("pos_err", "mse")]
                expected = [
                    show(metrics["ood"].get(f"{s}/{k}"))
                    for k in keys
                    for s in ("test", "ood_test", "ood_gap")
                ]
                assert row[3:] == expected, row
                checked["gap"] += len(expected)
        elif header[1:2] == ["crossover MSE test"]:
            for row in rows:
                expected = [
                    show(metrics[kind].get(f"{split}/crossover_{m}/{row[0]}")) if kind in metrics else "-"
                    for m in ("mse", "pos_err")
                    for split, kind in (("test", "test"), ("ood_test", "ood"), ("long_test", "long"))
                ]
                assert row[1:] == expected, row
                checked["crossover"] += len(expected)
        elif header[0] == "horizon":  # counterfactual actions
            scores = ("diff_err", "diff_err_blind", "cosine", "found")
            for row in rows:
                expected = [
                    show(metrics["test"].get(f"test/counterfactual_{s}/goal_reach/{row[0]}")) for s in scores
                ]
                assert row[1:] == expected, row
                checked["counterfactual"] += len(expected)
        elif header[:2] == ["dataset", "state"]:
            for row in rows:
                hidden = metrics["test"].get(f"test/probe_r2/{row[0]}/{row[1]}")
                latent = metrics["test"].get(f"test/probe_r2_latent/{row[0]}/{row[1]}")
                gap = hidden - latent if hidden is not None and latent is not None else None
                assert row[2:] == [show(hidden), show(latent), show(gap)], row
                checked["probes"] += 3
    return checked
