"""logger=tensorboard: a run writes TensorBoard event files beside its CSV, and without a writer package
(tensorboard or tensorboardX, the optional extra physworld[tensorboard]) it stops at start-up with one line."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import types

import pytest

from physworld.checks import check_config
from physworld.errors import ConfigError
from tests.conftest import ROOT

WRITERS = ("tensorboard", "tensorboardX")


def test_logger_tensorboard_without_a_writer_is_one_line_naming_the_extra(make_cfg, monkeypatch, tmp_path):
    # None in sys.modules makes `import <name>` fail: an install without either package.
    for name in WRITERS:
        monkeypatch.setitem(sys.modules, name, None)
    expected = r"logger=tensorboard needs the tensorboard or tensorboardX package.*physworld\[tensorboard\]"
    with pytest.raises(ConfigError, match=expected):
        check_config(make_cfg("debug=tiny", "logger=tensorboard"))
    check_config(make_cfg("debug=tiny", "logger=csv"))  # only the TensorBoard logger needs one
    monkeypatch.setitem(sys.modules, "tensorboardX", types.ModuleType("tensorboardX"))
    check_config(make_cfg("debug=tiny", "logger=tensorboard"))  # either package serves

    # train.py as a user runs it: one line, exit code 2, before anything is generated.
    argv = [
        "train.py",
        "debug=tiny",
        "logger=tensorboard",
        f"paths.log_dir={tmp_path}",
        f"paths.data_dir={tmp_path}/d",
    ]
    code = (
        f"import runpy, sys; sys.modules.update(tensorboard=None, tensorboardX=None); sys.argv = {argv!r}; "
        "runpy.run_path('train.py', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "logger=tensorboard needs the tensorboard or tensorboardX package" in line
    assert "physworld[tensorboard]" in line
    assert not (tmp_path / "d").exists()


needs_writer = pytest.mark.skipif(
    not any(importlib.util.find_spec(name) for name in WRITERS),
    reason="needs tensorboard or tensorboardX (pip install 'physworld[tensorboard]')",
)


@needs_writer
def test_each_stage_keeps_its_own_event_file(tmp_path):
    # Lightning closes the writer after fit and writes the test metrics after; tensorboardX named both files
    # by the second alone, so a test stage within the same second overwrote the training curves.
    from physworld.loggers import TensorBoardLogger

    logger = TensorBoardLogger(save_dir=tmp_path, name="tb", version="")
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.finalize("success")
    logger.log_metrics({"test/loss": 2.0}, step=1)
    logger.finalize("success")
    files = sorted((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 2, files
    data = b"".join(p.read_bytes() for p in files)
    assert b"train/loss" in data and b"test/loss" in data


@needs_writer
def test_tensorboard_run_writes_event_files_with_the_metrics(tmp_path):
    args = [
        "train.py",
        "debug=tiny",
        "logger=tensorboard",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        f"paths.log_dir={tmp_path / 'outputs'}",
        f"paths.data_dir={tmp_path / 'data'}",
    ]
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    events = sorted((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in run.rglob("*"))
    # Event files are protobuf records whose tags are stored as they are.
    data = b"".join(p.read_bytes() for p in events)
    for tag in (b"train/loss", b"val/recon_psnr", b"test/recon_psnr"):
        assert tag in data, (tag, sorted(set(re.findall(rb"[a-z_]+/[a-z_/]+", data))))
    assert (run / "csv" / "metrics.csv").is_file()  # the CSV stays on beside it
