"""What each phase can do: one table (physworld.phases.PHASES), asked by name without importing Lightning, or of
a phase at hand, and the places that ask."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import lightning as L
import pytest
import torch

from physworld.callbacks.rollout import RolloutEvaluation
from physworld.errors import CheckpointError
from physworld.phases import CAPABILITIES, PHASES, declared, phase_class, phases_that
from physworld.phases.checkpoints import check_world_model_phase, read_phase_checkpoint
from physworld.phases.prediction import PredictionPhase
from physworld.run import build_datamodule, plain

ROOT = Path(__file__).resolve().parents[1]
# phase -> (is_world_model, trains_dynamics, needs_trained_dynamics, trains_agent)
EXPECTED = {
    "reconstruction": (True, False, False, False),
    "prediction": (True, True, False, False),
    "comprehensive": (True, True, False, False),
    "rl": (False, False, True, True),
}


def test_the_table_names_each_phase_its_class_and_answers():
    assert list(PHASES) == list(EXPECTED)
    for name, answers in EXPECTED.items():
        assert tuple(declared(name, capability) for capability in CAPABILITIES) == answers
    assert phase_class("reconstruction").__name__ == "ReconstructionPhase"
    assert phase_class("comprehensive") is phase_class("prediction")  # the same class, other settings
    assert phase_class("rl").__name__ == "RLPhase"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_phase_at_hand_answers_from_its_own_name(make_cfg, name):
    cfg = make_cfg(f"phase={name}")
    phase = phase_class(name)(model=plain(cfg.model), phase=plain(cfg.phase))
    assert tuple(getattr(phase.entry, capability) for capability in CAPABILITIES) == EXPECTED[name]


def test_phases_that_lists_the_names_in_registry_order():
    assert phases_that("is_world_model") == ("reconstruction", "prediction", "comprehensive")
    assert phases_that("trains_dynamics") == ("prediction", "comprehensive")
    assert phases_that("needs_trained_dynamics") == ("rl",)
    assert phases_that("trains_agent") == ("rl",)


def test_unknown_names_and_capabilities_are_refused():
    with pytest.raises(KeyError, match=r"no phase 'nope': accepted one of \['reconstruction', "):
        phase_class("nope")
    with pytest.raises(KeyError, match=r"no capability 'flies': accepted one of \['is_world_model', "):
        declared("rl", "flies")


def test_the_lookup_by_name_imports_neither_torch_nor_lightning():
    code = (
        "import sys; from physworld.phases import CAPABILITIES, PHASES, declared\n"
        "print([declared(n, c) for n in PHASES for c in CAPABILITIES])\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answers, imported = result.stdout.strip().splitlines()
    assert answers == str([value for name in PHASES for value in EXPECTED[name]])
    assert imported == "[]"


def test_which_phases_freeze_the_vqvae(make_cfg):
    assert not phase_class("reconstruction").freezes_vqvae({})
    assert phase_class("rl").freezes_vqvae({})
    for name in ("prediction", "comprehensive"):
        cls = phase_class(name)
        assert cls.freezes_vqvae({"freeze_vqvae": True}) and not cls.freezes_vqvae({"freeze_vqvae": False})
    # an instance answers for its own settings, and a frozen VQ-VAE gets no gradients
    cfg = make_cfg("debug=tiny", "phase=prediction")
    phase = phase_class("prediction")(model=plain(cfg.model), phase=plain(cfg.phase))
    assert phase.vqvae_frozen and not any(p.requires_grad for p in phase.vqvae.parameters())
    cfg = make_cfg("debug=tiny", "phase=comprehensive")
    phase = phase_class("comprehensive")(model=plain(cfg.model), phase=plain(cfg.phase))
    assert not phase.vqvae_frozen and all(p.requires_grad for p in phase.vqvae.parameters())


def _checkpoint(name: str) -> dict:
    return {"hyper_parameters": {"phase": {"name": name}, "model": {}}, "state_dict": {}}


def test_init_from_and_evaluate_take_world_model_checkpoints_only():
    for name in ("reconstruction", "prediction", "comprehensive"):
        check_world_model_phase(_checkpoint(name), "x.ckpt")
    for name in ("rl", "nope"):
        with pytest.raises(CheckpointError) as err:
            check_world_model_phase(_checkpoint(name), "x.ckpt")
        assert str(err.value) == (
            f"phase.init_from='x.ckpt' is a checkpoint of phase {name!r}: "
            "accepted one of ['reconstruction', 'prediction', 'comprehensive']"
        )


def test_load_world_model_takes_a_checkpoint_of_any_phase(tmp_path):
    for name in PHASES:  # an rl checkpoint holds the world model it trained in
        torch.save(_checkpoint(name), tmp_path / f"{name}.ckpt")
        ckpt = read_phase_checkpoint(tmp_path / f"{name}.ckpt", "path")
        assert ckpt["hyper_parameters"]["phase"]["name"] == name
    torch.save(_checkpoint("nope"), tmp_path / "nope.ckpt")
    with pytest.raises(
        CheckpointError, match=r"phase 'nope': accepted one of \['reconstruction', 'prediction', "
    ):
        read_phase_checkpoint(tmp_path / "nope.ckpt", "path")


@pytest.mark.parametrize("trains_dynamics", [True, False])
def test_rollout_callback_scores_the_phases_that_train_dynamics(make_cfg, tmp_path, trains_dynamics):
    # A comprehensive phase that says it trains no dynamics still has a rollout(): the callback asks the phase.
    cfg = make_cfg("debug=tiny", "phase=comprehensive", "dataset=pendulum")
    entry = replace(PHASES["comprehensive"], trains_dynamics=trains_dynamics)
    probe = type("Probe", (PredictionPhase,), {"entry": property(lambda self: entry)})
    torch.manual_seed(0)
    phase = probe(model=plain(cfg.model), phase=plain(cfg.phase), dataset_names=["pendulum"])
    calls = []
    rollout = phase.rollout
    phase.rollout = lambda *args, **kwargs: calls.append(1) or rollout(*args, **kwargs)
    callback = RolloutEvaluation(str(tmp_path / "images"), horizon=2, num_sequences=2, batch_size=2)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_test_batches=1,
    )
    metrics = trainer.test(phase, datamodule=build_datamodule(cfg), verbose=False)[0]
    assert bool(calls) == trains_dynamics
    assert ("test/rollout_mse/t02" in metrics) == trains_dynamics
    assert "test/loss" in metrics  # the phase's own test step ran either way
