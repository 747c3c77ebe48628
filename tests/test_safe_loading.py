"""Checkpoints cannot run code: a checkpoint whose pickle would create a file when loaded is refused by every
path that reads one (train.py ckpt_path= and phase.init_from=, Lightning's resume, scripts/evaluate.py,
scripts/report.py) with one line and exit code 2, and the file is never created. Real checkpoints still load,
and pickled_globals sees every import a pickle makes, whatever its protocol."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from physworld.callbacks.faults import AtomicCheckpointIO
from physworld.checks import check_config
from physworld.errors import CheckpointError, ConfigError
from physworld.phases.prediction import PredictionPhase
from physworld.run import build_phase, plain
from physworld.safe_checkpoint import (
    ALLOWED_GLOBALS,
    load_checkpoint_file,
    load_weights_file,
    pickled_globals,
)
from tests.conftest import ROOT, CreateFile, malicious_checkpoint


def test_the_payload_really_runs_when_unpickled(tmp_path):
    # Without this the tests below could pass with a payload that does nothing.
    path, marker = malicious_checkpoint(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.is_file()


@pytest.mark.parametrize("protocol", [2, 4])  # 2: GLOBAL opcodes (torch.save's default); 4: STACK_GLOBAL
@pytest.mark.parametrize("how", ["open", "exec"])
def test_pickled_globals_names_each_import_and_loading_refuses_it(tmp_path, how, protocol):
    payload = CreateFile(tmp_path / "x", how)
    # Protocol 2 writes Python 2's module name for builtins (`__builtin__`), which unpickling maps back.
    builtins = "__builtin__" if protocol < 3 else "builtins"
    expected = f"{builtins}.exec" if how == "exec" else f"{open.__module__}.open"
    names = pickled_globals(pickle.dumps({"a": [payload]}, protocol=protocol))
    assert expected in names if protocol < 4 else f"{expected} (STACK_GLOBAL)" in names
    path, marker = malicious_checkpoint(tmp_path, how, protocol)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(path, key="ckpt_path")
    message = str(err.value)
    assert "\n" not in message and str(path) in message and expected in message
    assert message.startswith(f"ckpt_path='{path}' holds ") and "refused without loading it" in message
    assert not marker.exists()


def test_real_checkpoints_hold_only_allowed_globals_and_load(pred_run):  # noqa: F811
    for name in ("last.ckpt", "best.ckpt"):
        path = pred_run / "checkpoints" / name
        with zipfile.ZipFile(path) as archive:
            data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
        found = set(pickled_globals(data))
        assert found and found <= ALLOWED_GLOBALS, found - ALLOWED_GLOBALS
        ckpt = load_checkpoint_file(path, key="ckpt_path")
        assert ckpt["hyper_parameters"]["phase"]["name"] == "prediction"
        assert isinstance(ckpt["callbacks"]["ResumeState"]["numpy"][1], torch.Tensor)


def test_config_checks_refuse_a_malicious_checkpoint(make_cfg, tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    for overrides in (
        ["debug=tiny", f"ckpt_path={path}"],
        ["debug=tiny", "phase=prediction", f"phase.init_from={path}"],
        ["debug=tiny", "phase=rl", "dataset=goal_reach", f"phase.init_from={path}"],
    ):
        with pytest.raises((CheckpointError, ConfigError), match=r"holds io.open, which no physworld"):
            check_config(make_cfg(*overrides))
    assert not marker.exists()


def test_phase_setup_and_lightning_resume_refuse_a_malicious_checkpoint(make_cfg, tmp_path, monkeypatch):
    path, marker = malicious_checkpoint(tmp_path)
    # phase.init_from (if the start-up check were skipped), read when the phase is built (for its model spec)
    cfg = make_cfg("debug=tiny", "phase=prediction", f"phase.init_from={path}")
    with pytest.raises(CheckpointError, match=r"phase.init_from='.*' holds io.open"):
        build_phase(cfg)
    # and when fitting starts, for its weights
    phase = PredictionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
    with pytest.raises(CheckpointError, match=r"phase.init_from='.*' holds io.open"):
        phase.setup("fit")
    # Lightning's own read of ckpt_path, through the checkpoint IO plugin of configs/trainer/default.yaml
    with pytest.raises(CheckpointError, match=r"ckpt_path='.*' holds io.open"):
        AtomicCheckpointIO().load_checkpoint(path)
    # and a whole fit resuming from it, the start-up check skipped: Lightning's resume refuses it
    from physworld import run as run_module

    monkeypatch.setattr(run_module, "check_config", lambda cfg: None)
    cfg = make_cfg("debug=tiny", "logger=none", "callbacks=none", f"ckpt_path={path}")
    with pytest.raises(CheckpointError, match=r"ckpt_path='.*' holds io.open"):
        run_module.train(cfg)
    assert not marker.exists()


def command(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PHYSWORLD_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def assert_refused(result: subprocess.CompletedProcess, marker: Path, key: str, path: Path) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"physworld: error: {key}='{path}' holds io.open, which no physworld checkpoint holds: refused "
        "without loading it (accepted: tensors, state dicts and plain values (numbers, strings, lists, "
        "tuples, dicts))"
    ]
    assert not marker.exists()


def test_scripts_refuse_a_malicious_checkpoint_with_one_line_and_exit_code_2(tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    logs = f"paths.log_dir={tmp_path / 'outputs'}"
    assert_refused(
        command(["scripts/evaluate.py", f"ckpt_path={path}", logs], tmp_path), marker, "ckpt_path", path
    )
    assert_refused(
        command(["train.py", "debug=tiny", f"ckpt_path={path}", logs], tmp_path), marker, "ckpt_path", path
    )
    init = command(["train.py", "debug=tiny", "phase=prediction", f"phase.init_from={path}", logs], tmp_path)
    assert_refused(init, marker, "phase.init_from", path)


def test_report_never_loads_a_checkpoint(tmp_path):
    path, marker = malicious_checkpoint(tmp_path)
    result = command(["scripts/report.py", str(path)], tmp_path)
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.strip().splitlines() == [
        f"physworld: error: {path}: a file, not a folder (pass a run, pipeline or evaluation folder)"
    ]
    # a run folder holding it: the report is written from the run's files, the checkpoint is not opened
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path.rename(run / "checkpoints" / "last.ckpt")
    result = command(["scripts/report.py", str(run)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run / "report.md").is_file() and not marker.exists()


def test_a_stack_global_is_refused_whatever_strings_precede_it(tmp_path):
    # Protocol 4's STACK_GLOBAL imports the two strings on the stack. Here allowed names are pushed last and
    # popped again, so a reader that trusted the last two strings would see collections.OrderedDict.
    marker = tmp_path / "pwned_stack"

    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()  # SHORT_BINUNICODE

    raw = (
        b"\x80\x04"
        + text("builtins")
        + text("open")
        + text("collections")
        + text("OrderedDict")
        + b"00"  # POP POP
        + b"\x93"  # STACK_GLOBAL: builtins.open
        + text(str(marker))
        + text("w")
        + b"\x86R."  # TUPLE2 REDUCE STOP: open(marker, "w")
    )
    assert "collections.OrderedDict (STACK_GLOBAL)" in pickled_globals(raw)  # the guess is fooled ...
    pickle.loads(raw)  # (the payload is real)
    assert marker.is_file()
    marker.unlink()
    path = tmp_path / "stack.ckpt"
    with zipfile.ZipFile(path, "w") as archive:  # a torch.save-shaped zip around it
        archive.writestr("stack/data.pkl", raw)
        archive.writestr("stack/version", "3\n")
    with pytest.raises(CheckpointError, match=r"holds collections.OrderedDict \(STACK_GLOBAL\), which no"):
        load_checkpoint_file(path, key="ckpt_path")  # ... but the refusal is not
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False])  # torch.save's zip, and its pre-1.6 format
@pytest.mark.parametrize("how", ["open", "exec"])
def test_weights_files_in_either_format_are_checked_before_loading(tmp_path, zip_format, how):
    # Weights made elsewhere (the LPIPS metric's AlexNet file) go through load_weights_file; some published
    # weights still use torch's format before 1.6, five pickles in a row, which is checked the same way.
    marker = tmp_path / f"pwned_weights_{how}"
    good, evil = tmp_path / "good.pth", tmp_path / "evil.pth"
    torch.save({"w": torch.arange(3.0)}, good, _use_new_zipfile_serialization=zip_format)
    torch.save({"w": CreateFile(marker, how)}, evil, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(good) == zip_format
    assert torch.equal(load_weights_file(good, key="x")["w"], torch.arange(3.0))
    with pytest.raises(
        CheckpointError, match=r"x='.*evil.pth' holds (io|__builtin__)\.(open|exec), which no"
    ) as err:
        load_weights_file(evil, key="x")
    assert "\n" not in str(err.value) and not marker.exists()
    torch.load(evil, weights_only=False)  # the payload is real
    assert marker.is_file()
