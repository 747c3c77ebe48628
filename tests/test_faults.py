"""Faults and bad input: a killed run resumes exactly, checkpoints are written atomically, a truncated
checkpoint and a NaN loss stop with one line, and the same seed gives the same data and first losses."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from physworld.callbacks.faults import AtomicCheckpointIO, NonFiniteLossError
from physworld.checks import check_config
from physworld.errors import ConfigError, PhysworldError
from physworld.run import build_datamodule, train
from tests.conftest import run

TINY = [
    "train.py",
    "debug=tiny",
    "dataset=pendulum",
    "logger=none",
    "test=false",
    "phase.max_epochs=3",
    "model.vq.restart_dead_codes=true",
    "model.vq.restart_every=3",
]  # code restarts draw random numbers


def recorded(path) -> dict[int, float]:
    losses = {}
    for line in path.read_text().splitlines():
        step, loss = line.split()
        losses[int(step)] = float(loss)  # a step redone after the resume overwrites the killed run's record
    return losses


def test_killed_run_resumes_at_the_same_step_with_the_same_losses(tmp_path):
    def train_in(folder, *extra):
        return run(
            [
                *TINY,
                f"hydra.run.dir={folder}",
                f"paths.data_dir={tmp_path / 'data'}",
                "+callbacks.rec._target_=tests.helpers.LossRecorder",
                f"+callbacks.rec.path={folder}/losses.txt",
                *extra,
            ],
            tmp_path,
        )

    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert train_in(whole).returncode == 0
    killed = train_in(broken, "+callbacks.kill._target_=tests.helpers.KillAtStep", "+callbacks.kill.step=22")
    assert killed.returncode == -signal.SIGKILL
    before = recorded(broken / "losses.txt")
    assert (
        max(before) == 22
        and torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    )
    resumed = train_in(broken, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    reference, after = recorded(whole / "losses.txt"), recorded(broken / "losses.txt")
    assert sorted(after) == sorted(reference) and len(reference) == 48  # 3 epochs of 16 steps
    for step, loss in reference.items():
        assert after[step] == pytest.approx(loss, rel=1e-6, abs=1e-9), step


def test_last_checkpoint_is_the_last_epoch_even_when_it_is_not_the_best(make_cfg, tmp_path):
    # Lightning 2.6's save_last writes last.ckpt only together with a new best checkpoint. With the monitor
    # turned around (mode=max on a falling loss) the best epoch is an early one, and last.ckpt must still
    # hold the final epoch, or ckpt_path=last would resume from the wrong place.
    cfg = make_cfg(
        "debug=tiny",
        "dataset=pendulum",
        "logger=none",
        "test=false",
        "phase.max_epochs=3",
        "callbacks.model_checkpoint.mode=max",
    )
    train(cfg)
    folder = tmp_path / "run" / "checkpoints"
    best = torch.load(folder / "best.ckpt", weights_only=True)
    last = torch.load(folder / "last.ckpt", weights_only=True)
    # The loss fell, so "max" picked an earlier epoch (else this test proves nothing).
    assert best["epoch"] < 2
    assert last["epoch"] == 2 and last["global_step"] > best["global_step"]
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_resume_needs_the_runs_own_folder(make_cfg):
    with pytest.raises(
        ConfigError, match=r"ckpt_path=last: no .*last.ckpt; resume in the killed run's folder"
    ):
        check_config(make_cfg("debug=tiny", "ckpt_path=last"))


def test_truncated_or_foreign_checkpoints_fail_with_one_line(make_cfg, tmp_path):
    first = make_cfg("debug=tiny", "test=false", "logger=none")
    train(first)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(PhysworldError, match=r"ckpt_path='.*cut.ckpt' is not a readable checkpoint"):
        check_config(make_cfg("debug=tiny", f"ckpt_path={cut}"))
    with pytest.raises(
        ConfigError, match=r"is a checkpoint of phase 'reconstruction', this run is phase=comprehensive"
    ):
        check_config(make_cfg("debug=tiny", "phase=comprehensive", f"ckpt_path={ckpt}"))
    result = run(["train.py", "debug=tiny", f"ckpt_path={cut}"], tmp_path)
    assert (
        result.returncode == 2
        and "not a readable checkpoint" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "c" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    assert torch.load(path, weights_only=True)["state_dict"]["w"].sum() == 2

    def crash(*args, **kwargs):  # the write dies half way, as in a kill during torch.save
        raise OSError("disk gone")

    monkeypatch.setattr("lightning.fabric.plugins.io.torch_io._atomic_save", crash)
    with pytest.raises(OSError):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, path)
    # the previous checkpoint is intact
    assert torch.load(path, weights_only=True)["state_dict"]["w"].sum() == 2
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # and no temporary file is left


@pytest.mark.parametrize(
    ("sync_free", "when"),
    [
        ("false", r"step 1[67] "),
        # read back only at the epoch's end (log_every_n_steps=50): the message names the batch it happened in
        ("true", r"training batch 17 of this fit \(found at step 32\) "),
    ],
)
def test_nan_loss_stops_with_phase_step_and_last_checkpoint(make_cfg, monkeypatch, sync_free, when):
    from physworld.phases.reconstruction import ReconstructionPhase

    real = ReconstructionPhase.compute_losses

    def poisoned(self, batch):
        out = real(self, batch)
        if self.current_epoch == 1 and self.training:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(ReconstructionPhase, "compute_losses", poisoned)
    cfg = make_cfg(
        "debug=tiny",
        "dataset=pendulum",
        "logger=none",
        "phase.max_epochs=3",
        "trainer.gradient_clip_val=null",
        "trainer.log_every_n_steps=50",
        f"perf.sync_free={sync_free}",
    )
    with pytest.raises(
        NonFiniteLossError,
        match=r"phase=reconstruction: the training loss became nan at "
        + when
        + r".*last good checkpoint: .*last.ckpt",
    ):
        train(cfg)


def test_same_seed_same_data_and_first_losses(make_cfg, tmp_path):
    def first_losses(seed: int):
        cfg = make_cfg(
            "debug=tiny", "dataset=bouncing_balls", f"seed={seed}", f"paths.data_dir={tmp_path / str(seed)}"
        )
        import lightning as L

        from physworld.phases.reconstruction import ReconstructionPhase
        from physworld.run import plain

        L.seed_everything(cfg.seed)
        dm = build_datamodule(cfg)
        dm.prepare_data()
        dm.setup("fit")
        phase = ReconstructionPhase(model=plain(cfg.model), phase=plain(cfg.phase))
        optimizer = phase.configure_optimizers()
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(0)
        losses, frames = [], []
        for batch in list(loader)[:3]:
            frames.append(batch["frames"].clone())
            loss = phase.compute_losses(phase.on_after_batch_transfer(batch, 0))["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses, torch.stack(frames)

    (a, fa), (b, fb), (c, fc) = first_losses(5), first_losses(5), first_losses(6)
    assert a == b and torch.equal(fa, fb)
    assert not torch.equal(fa, fc) and a != c
    assert np.isfinite(a).all()
