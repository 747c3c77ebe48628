"""Nothing lost, nothing silent (issue 28): run history survives a resume, the data cache deletes only its own
folders, corrupted checkpoints, exports and data files are refused, exports never replace files unasked, and
file-system faults (a full disk, a read-only folder, a path through a file) and malformed manifests and configs
stop with one line and exit code 2. Disk full and read-only are simulated by patched calls that raise the
OSError the system would (the tests run as root, where chmod makes nothing read-only)."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from physworld.atomic import check_new_folder, remove_leftovers
from physworld.data import cache
from physworld.data.cache import ensure_split, load_split, read_manifest, regenerate_hint
from physworld.errors import CheckpointError, ConfigError, DataError, FileSystemError, os_error, print_error
from physworld.paths import compose
from tests.conftest import run

MNIST = {
    "name": "moving_mnist",
    "num_frames": 6,
    "sizes": {"train": 5, "val": 3, "test": 3},
    "scene": {"num_digits": 2, "speed": [2.0, 4.0], "colored": True},
}
TINY = ["debug=tiny", "dataset=pendulum", "test=false"]


def one_line(text: str) -> str:
    """The single `physworld: error:` line of a command's stderr (and that there is no traceback)."""
    assert "Traceback" not in text, text[-2000:]
    lines = [line for line in text.splitlines() if line.startswith("physworld: error:")]
    assert len(lines) == 1, text[-2000:]
    return lines[0]


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def age(path: Path, seconds: float = 3600) -> None:
    """Set the modification times of `path` and everything in it `seconds` into the past."""
    then = time.time() - seconds
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.utime(p, (then, then))


def csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# -- 1. a resume keeps the run's history; a rerun without ckpt_path is refused ----------------------------------


def test_resume_keeps_every_csv_row_and_a_fresh_rerun_is_refused(make_cfg, tmp_path, monkeypatch, capsys):
    from physworld.checks import check_config
    from physworld.cli.train import main as train_main
    from physworld.run import train

    train(make_cfg(*TINY, "phase.max_epochs=1"))
    run_dir = tmp_path / "run"
    before = csv_rows(run_dir)
    assert {row["epoch"] for row in before} == {"0"}
    train(make_cfg(*TINY, "phase.max_epochs=2", "ckpt_path=last"))
    after = csv_rows(run_dir)
    assert after[: len(before)] == before  # the first epoch's rows, unchanged
    assert {row["epoch"] for row in after} == {"0", "1"}
    with pytest.raises(
        ConfigError, match=r"already holds a run \(checkpoints, csv/metrics.csv, metrics.json\)"
    ):
        check_config(make_cfg(*TINY, "phase.max_epochs=2"))
    # train.py refuses before Hydra starts the job (which would write over the run's .hydra/config.yaml)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("the earlier run's")
    monkeypatch.setattr(sys, "argv", ["train.py", *TINY, f"hydra.run.dir={run_dir}"])
    with pytest.raises(SystemExit) as exit_:
        train_main()
    assert exit_.value.code == 2 and "hydra.run.dir=" in one_line(capsys.readouterr().err)
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "the earlier run's"
    # a resume whose model differs from the checkpoint: one line before any network is built
    with pytest.raises(CheckpointError, match=r"model.vq.num_codes=64 conflicts with the checkpoint's 32"):
        check_config(make_cfg(*TINY, "phase.max_epochs=3", "ckpt_path=last", "model.vq.num_codes=64"))
    assert csv_rows(run_dir) == after


# -- 2. the data cache deletes only what it wrote ---------------------------------------------------------------


def test_cache_refuses_a_folder_holding_a_users_files(tmp_path, monkeypatch):
    from physworld import datasets

    folder = tmp_path / "moving_mnist" / "train"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(
            DataError, match=r"train: holds notes.txt, which the data cache did not write"
        ) as err:
            ensure_split(tmp_path, MNIST, "train", seed=1, force=force, progress=False)
        assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="notes.txt"):
        datasets.load("moving_mnist", "train", data_dir=tmp_path, num_sequences=4, num_frames=4)
    assert (folder / "notes.txt").read_text() == "mine" and sorted(os.listdir(folder)) == ["notes.txt"]
    # a stale split of its own is still replaced
    other = tmp_path / "own"
    ensure_split(other, MNIST, "train", seed=1, progress=False)
    path = ensure_split(other, MNIST, "train", seed=2, progress=False)
    assert read_manifest(path)["spec"]["seed"] == 2


def test_a_stale_split_with_its_token_cache_is_replaced_but_not_with_a_users_file_in_it(tmp_path):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    codes = path / "tokens" / "0123456789abcdef"
    codes.mkdir(parents=True)
    (codes / "indices.npy").write_bytes(b"codes")
    (codes / "manifest.json").write_text("{}")
    (path / "tokens" / ".0123456789abcdef.lock").write_text("")
    (path / "tokens" / "mine").mkdir()
    (path / "tokens" / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"train: holds tokens/mine, which the data cache did not write"):
        ensure_split(tmp_path, MNIST, "train", seed=2, progress=False)
    assert (path / "tokens" / "mine" / "notes.txt").read_text() == "mine"
    shutil.rmtree(path / "tokens" / "mine")
    ensure_split(tmp_path, MNIST, "train", seed=2, progress=False)
    assert read_manifest(path)["spec"]["seed"] == 2 and not (path / "tokens").exists()


def test_generate_data_refuses_a_users_folder_with_one_line_and_exit_code_2(tmp_path):
    data = tmp_path / "D"
    (data / "moving_mnist" / "train").mkdir(parents=True)
    (data / "moving_mnist" / "train" / "notes.txt").write_text("mine\n")
    result = run(["scripts/generate_data.py", "debug=tiny", f"paths.data_dir={data}"], tmp_path)
    assert result.returncode == 2
    assert "notes.txt, which the data cache did not write" in one_line(result.stderr)
    assert (data / "moving_mnist" / "train" / "notes.txt").read_text() == "mine\n"


# -- 3. integrity on load ----------------------------------------------------------------------------------------


def flip_tensor_bytes(ckpt: Path) -> None:
    """Overwrite 8 bytes inside the largest tensor member of a torch.save zip, the file size unchanged."""
    import zipfile

    with zipfile.ZipFile(ckpt) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(ckpt, "r+b") as f:
        f.seek(info.header_offset)
        header = f.read(30)  # the local header: its name and extra-field lengths at bytes 26 and 28
        f.seek(int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little"), 1)
        data = f.read(64)
        f.seek(-64 + 16, 1)
        f.write(bytes(b ^ 0xFF for b in data[16:24]))


def test_a_checkpoint_with_flipped_tensor_bytes_is_refused(recon_run, tmp_path):  # noqa: F811
    from physworld.phases.checkpoints import load_phase

    bad = tmp_path / "checkpoints" / "bad.ckpt"
    bad.parent.mkdir()
    shutil.copy(recon_run / "checkpoints" / "last.ckpt", bad)
    load_phase(bad)  # loads before the change
    flip_tensor_bytes(bad)
    with pytest.raises(
        CheckpointError, match=r"bad.ckpt' is corrupt: .*data/\d+ does not match its stored checksum"
    ):
        load_phase(bad)


def test_a_data_file_changed_with_size_and_mtime_restored_is_hashed_again(tmp_path, monkeypatch):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    load_split(path)  # hashed, and remembered in verified.json
    file = path / "frames.npy"
    st = file.stat()
    with open(file, "r+b") as f:
        f.seek(-50, 2)
        f.write(b"\x01" * 10)
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file.stat().st_size == st.st_size and file.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(DataError, match=r"frames.npy: sha256 does not match the manifest"):
        load_split(path)


def test_data_verify_always_hashes_at_every_load(tmp_path, monkeypatch):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    hashed = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda file: hashed.append(file.name) or real(file))
    load_split(path)
    first = len(hashed)
    load_split(path)
    assert first > 0 and len(hashed) == first  # auto: unchanged files are not hashed again
    load_split(path, verify="always")
    assert len(hashed) == 2 * first


def test_data_verify_is_checked(make_cfg):
    from physworld.checks import check_config

    with pytest.raises(
        ConfigError, match=r"data.verify='sometimes' is not accepted: one of \['auto', 'always'\]"
    ):
        check_config(make_cfg("debug=tiny", "data.verify=sometimes"), files=False)


# -- 4. export: a new folder or overwrite=true, each file through a rename; verified on load -------------------


def test_export_refuses_a_folder_with_files_and_overwrite_replaces_only_its_own(recon_run, tmp_path):  # noqa: F811
    import physworld
    from physworld.export import CARD, CONFIG, WEIGHTS, export_world_model

    ckpt = recon_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "export"
    out.mkdir()
    (out / CONFIG).write_text("mine")
    (out / "notes.txt").write_text("mine too")
    with pytest.raises(
        ConfigError, match=r"out='.*export' already holds config.json, notes.txt: .*overwrite=true"
    ):
        export_world_model(ckpt, out)
    assert (out / CONFIG).read_text() == "mine" and not (out / WEIGHTS).exists()
    export_world_model(ckpt, out, overwrite=True)
    assert sorted(os.listdir(out)) == sorted([WEIGHTS, CONFIG, CARD, "notes.txt"])  # no temporary files
    assert (out / "notes.txt").read_text() == "mine too"
    physworld.load_world_model(out, device="cpu")
    # the stored hash catches bytes changed in the weights
    data = bytearray((out / WEIGHTS).read_bytes())
    data[-20:-12] = bytes(b ^ 0xFF for b in data[-20:-12])
    (out / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors' is corrupt: its sha256 does not match"):
        physworld.load_world_model(out, device="cpu")


def test_export_on_a_full_disk_leaves_the_folder_as_it_was(recon_run, tmp_path, monkeypatch):  # noqa: F811
    from physworld.export import export_world_model

    out = tmp_path / "export"
    export_world_model(recon_run / "checkpoints" / "last.ckpt", out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "note": "an earlier export"}))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".MODEL_CARD.md.tmp-"):  # the last file of the export
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(FileSystemError, match=r"export: no space left on the device \(errno 28\)") as err:
        export_world_model(recon_run / "checkpoints" / "last.ckpt", out, overwrite=True)
    assert isinstance(err.value, OSError)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # every file as it was, no temporary one


def test_export_command_refuses_a_folder_with_files_in_one_line(recon_run, tmp_path):  # noqa: F811
    out = tmp_path / "export"
    out.mkdir()
    (out / "MODEL_CARD.md").write_text("mine")
    ckpt = recon_run / "checkpoints" / "last.ckpt"
    result = run(["scripts/export.py", f"ckpt_path={ckpt}", f"out={out}"], tmp_path)
    assert result.returncode == 2 and "already holds MODEL_CARD.md" in one_line(result.stderr)
    assert (out / "MODEL_CARD.md").read_text() == "mine"


def test_an_export_with_absurd_sizes_is_refused_before_any_network_is_built(recon_run, tmp_path, monkeypatch):  # noqa: F811
    import torch

    import physworld
    import physworld.phases.checkpoints as ckpts
    from physworld.export import CONFIG, export_world_model

    out = export_world_model(recon_run / "checkpoints" / "last.ckpt", tmp_path / "export")
    config = json.loads((out / CONFIG).read_text())
    config["model"]["encoder"]["hidden_channels"] = [4096, 8192]
    (out / CONFIG).write_text(json.dumps(config))

    real = ckpts.build_vqvae

    def never(spec):  # building on torch's meta device allocates nothing: that is how the sizes are checked
        if torch.empty(0).device.type != "meta":
            raise AssertionError("a network was built before the sizes were checked")
        return real(spec)

    monkeypatch.setattr(ckpts, "build_vqvae", never)
    with pytest.raises(
        CheckpointError, match=r"its weights do not fit its model spec \(vqvae\..*the spec makes"
    ):
        physworld.load_world_model(out, device="cpu")


# -- 5. file-system errors and malformed files: one line, exit code 2 --------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "no space left on the device"),
        (errno.EROFS, "read-only file system"),
        (errno.EACCES, "permission denied"),
        (errno.ENOTDIR, "a part of the path is a file, not a folder"),
    ],
)
def test_os_errors_print_one_line_naming_the_path_with_exit_code_2(code, words, capsys):
    assert print_error(OSError(code, os.strerror(code), "/some/path")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"physworld: error: /some/path: {words} (errno {code}): ")
    assert str(os_error(OSError(code, os.strerror(code)), "/other")).startswith(f"/other: {words}")


def test_a_full_disk_while_regenerating_keeps_the_old_split(tmp_path, monkeypatch):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    before = (path / "frames.npy").read_bytes()

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.NpyWriter, "write", full)
    with pytest.raises(FileSystemError, match=r"\.train\.tmp-.*: no space left on the device"):
        ensure_split(tmp_path, MNIST, "train", seed=2, progress=False)
    assert (path / "frames.npy").read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if ".tmp-" in p.name] == []


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_one(tmp_path, monkeypatch):
    import torch

    from physworld.callbacks.faults import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("lightning.fabric.plugins.io.torch_io._atomic_save", full)
    with pytest.raises(FileSystemError, match=r"last.ckpt: no space left on the device"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, path)
    assert torch.load(path, weights_only=True)["state_dict"]["w"].sum() == 2
    assert os.listdir(path.parent) == ["last.ckpt"]


def test_a_data_dir_that_is_a_file_gives_one_line(tmp_path, monkeypatch):
    from physworld import datasets

    file = tmp_path / "not_a_folder"
    file.write_text("x")
    monkeypatch.setenv("PHYSWORLD_DATA_DIR", str(file))
    with pytest.raises(FileSystemError, match=r"not_a_folder.*a part of the path is a file"):
        datasets.load("moving_mnist", "train", num_sequences=2, num_frames=4)
    assert file.read_text() == "x"


@pytest.mark.parametrize("manifest", ["[]", '"x"', "null", "drop-dtype"])
def test_a_malformed_manifest_gives_one_line_and_regenerating_replaces_it(tmp_path, manifest):
    path = ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    text = (path / "manifest.json").read_text()
    if manifest == "drop-dtype":
        parsed = json.loads(text)
        del parsed["files"]["frames"]["dtype"]
        text = json.dumps(parsed)
    else:
        text = manifest
    (path / "manifest.json").write_text(text)
    with pytest.raises(DataError, match=r"manifest") as err:
        load_split(path)
    assert "\n" not in str(err.value) and "generate_data.py dataset=moving_mnist" in str(err.value)
    fixed = ensure_split(tmp_path, MNIST, "train", seed=1, force=manifest == "drop-dtype", progress=False)
    assert load_split(fixed)["frames"].shape[0] == 5


def test_bad_betas_and_devices_give_one_line(make_cfg):
    from physworld.checks import check_config
    from physworld.run import train

    with pytest.raises(ConfigError, match=r"phase.betas=\[2, 3\] is not accepted: two numbers in \[0, 1\)"):
        check_config(make_cfg("debug=tiny", "phase.betas=[2,3]"), files=False)
    with pytest.raises(ConfigError, match=r"^trainer: Lightning refuses these trainer.\* values") as err:
        train(make_cfg("debug=tiny", "trainer.devices=[0,1]"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["phase: [\n", "phase: !!python/object/apply:os.system ['echo hi']\n"])
def test_a_run_config_with_bad_yaml_gives_one_line_in_the_report(tmp_path, text, capsys):
    from physworld.cli.report import main

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(text)
    (run_dir / "metrics.json").write_text("{}")
    assert main([str(run_dir)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "config.yaml: not a readable run config" in line and not (run_dir / "report.md").exists()


def read_only_under(folder: Path, monkeypatch) -> None:
    """Make every mkdir and file write under `folder` fail as on a read-only file system."""
    real_mkdir, real_open = Path.mkdir, Path.open

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    def mkdir(self, *args, **kwargs):
        if Path(self).resolve().is_relative_to(folder) and not self.exists():
            refuse(self)
        return real_mkdir(self, *args, **kwargs)

    def open_(self, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and Path(self).resolve().is_relative_to(folder):
            refuse(self)
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(Path, "open", open_)


def test_a_read_only_run_folder_gives_one_line_to_report_and_evaluate(
    recon_run, tmp_path, monkeypatch, capsys
):  # noqa: F811
    from physworld.cli.report import main as report
    from physworld.errors import PhysworldError

    run_dir = tmp_path / "run"
    shutil.copytree(recon_run, run_dir, ignore=shutil.ignore_patterns("evaluate", "report*"))
    read_only_under(run_dir.resolve(), monkeypatch)
    assert report([str(run_dir)]) == 2
    assert "read-only file system (errno 30)" in one_line(capsys.readouterr().err)

    from physworld.evaluation.evaluate import evaluate

    cfg = compose(
        "evaluate", [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"paths.root_dir={tmp_path}"]
    )
    with pytest.raises((PhysworldError, OSError)) as err:
        evaluate(cfg)
    assert print_error(err.value) == 2
    line = one_line(capsys.readouterr().err)
    assert "evaluate" in line and "read-only file system (errno 30)" in line


# -- 6. leftovers and hints ---------------------------------------------------------------------------------------


def test_leftovers_of_dead_writers_are_removed_and_live_or_fresh_ones_kept(tmp_path):
    dead = dead_pid()
    old_dead = tmp_path / f".train.tmp-{dead}-1"
    old_dead.mkdir()
    (old_dead / "frames.npy").write_bytes(b"x")
    fresh_dead = tmp_path / f".train.tmp-{dead}-2"
    fresh_dead.mkdir()
    live = tmp_path / f".train.tmp-{os.getpid()}-3"
    live.mkdir()
    user = tmp_path / "train.tmp-notes"
    user.write_text("mine")
    for p in (old_dead, live, user):
        age(p)
    assert remove_leftovers(tmp_path, ".train.") == [old_dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh_dead.name, live.name, user.name])


def test_the_next_generation_and_checkpoint_save_remove_a_killed_runs_temporary_files(tmp_path):
    import torch

    from physworld.callbacks.faults import AtomicCheckpointIO

    dead = dead_pid()
    folder = tmp_path / "moving_mnist"
    leftover = folder / f".train.tmp-{dead}-1"
    leftover.mkdir(parents=True)
    (leftover / "frames.npy").write_bytes(b"half")
    age(leftover)
    ensure_split(tmp_path, MNIST, "train", seed=1, progress=False)
    assert not leftover.exists()

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    half = checkpoints / f".last.ckpt.tmp-{dead}"
    half.write_bytes(b"half")
    age(half)
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, checkpoints / "last.ckpt")
    assert os.listdir(checkpoints) == ["last.ckpt"]


def test_the_printed_fix_command_keeps_the_users_data_overrides(tmp_path):
    data = tmp_path / "D"
    compose("generate_data", ["debug=tiny", f"paths.data_dir={data}", "dataset=pendulum"], keep_hydra=True)
    hint = regenerate_hint("pendulum", data)
    assert hint == (
        f"regenerate it with: python scripts/generate_data.py dataset=pendulum debug=tiny paths.data_dir={data} "
        "force=true"
    )


def test_check_new_folder_refuses_a_file(tmp_path):
    file = tmp_path / "f"
    file.write_text("x")
    with pytest.raises(ConfigError, match=r"out='.*f' is a file"):
        check_new_folder(file, "out", overwrite=True)
    check_new_folder(tmp_path / "new", "out", overwrite=False)
    assert file.read_text() == "x"
