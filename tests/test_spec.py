"""The model spec (models/spec.py): one place that checks every model setting, saved in every checkpoint, and
the architecture a phase started from `phase.init_from` takes from its checkpoint (phases/checkpoints.py)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import torch

from physworld.errors import CheckpointError, ConfigError
from physworld.models.spec import PARTS, ModelSpec
from physworld.phases.checkpoints import checkpoint_spec, read_checkpoint
from physworld.phases.prediction import PredictionPhase
from physworld.phases.reconstruction import ReconstructionPhase
from physworld.run import build_phase, plain
from physworld.safe_checkpoint import load_checkpoint_file


def save_checkpoint(phase, path: Path) -> Path:
    """What Lightning writes of a phase that init_from reads: its weights, hyperparameters and model spec."""
    ckpt = {"state_dict": phase.state_dict(), "hyper_parameters": {k: v for k, v in phase.hparams.items()}}
    phase.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    "override, named, accepted",
    [
        ("model.encoder.hidden_channels=[16,0]", "model.encoder.hidden_channels=[16, 0]", "list of positive"),
        ("model.decoder.skip=maybe", "model.decoder.skip='maybe'", "true or false"),
        ("model.vq.num_codes=0", "model.vq.num_codes=0", "a positive integer"),
        ("model.vq.commitment_cost=-0.5", "model.vq.commitment_cost=-0.5", "a non-negative number"),
        ("model.vq.restart_dead_codes=1", "model.vq.restart_dead_codes=1", "true or false"),
        ("model.dynamics.kernel_size=4", "model.dynamics.kernel_size=4", "an odd positive integer"),
        ("model.dynamics.output=pixels", "model.dynamics.output='pixels'", "one of ['latent', 'tokens']"),
        ("model.vq.groups=5", "model.vq.groups=5", "a positive divisor of model.vq.code_dim=16"),
        ("~model.dynamics.residual", "model.dynamics.residual is missing", "true or false"),
    ],
)
def test_a_bad_model_setting_fails_with_one_line_naming_it(make_cfg, override, named, accepted):
    cfg = make_cfg("debug=tiny", "phase=prediction", override)
    with pytest.raises(ConfigError) as err:
        build_phase(cfg)  # the phase builds its networks from ModelSpec.from_config(model)
    message = str(err.value)
    assert "\n" not in message and message.startswith(named) and accepted in message, message


def test_every_spec_field_has_a_check_that_the_yaml_values_pass(make_cfg):
    spec = ModelSpec.from_config(plain(make_cfg("debug=tiny").model))
    assert (
        spec.encoder.hidden_channels == (8, 16) and spec.vq.code_dim == 16 and spec.dynamics.residual is False
    )
    for name, part in PARTS.items():
        for f in fields(part):
            assert {"accepted", "ok", "architecture"} <= set(f.metadata), (name, f.name)
            assert f.metadata["ok"](getattr(getattr(spec, name), f.name)), (
                name,
                f.name,
            )  # the YAML's value passes


def test_the_spec_round_trips_through_a_checkpoint_with_safe_loading(recon_run):  # noqa: F811
    from omegaconf import OmegaConf

    path = recon_run / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint_file(path, key="ckpt_path")  # weights_only, its pickle's globals checked first
    saved = ckpt["model_spec"]
    assert isinstance(saved, dict) and isinstance(saved["encoder"]["hidden_channels"], list)
    config = OmegaConf.to_container(OmegaConf.load(recon_run / ".hydra" / "config.yaml").model, resolve=True)
    assert ModelSpec.from_config(saved) == ModelSpec.from_config(config) == checkpoint_spec(ckpt, str(path))
    assert ModelSpec.from_config(ModelSpec.from_config(saved).to_dict()).to_dict() == saved


def test_a_checkpoint_without_a_spec_gets_the_one_of_its_saved_config(recon_run, tmp_path):  # noqa: F811
    ckpt = read_checkpoint(recon_run / "checkpoints" / "last.ckpt")
    spec = checkpoint_spec(ckpt, "x")
    del ckpt["model_spec"]  # saved before specs were
    del ckpt["hyper_parameters"]["model"]["vq"]["groups"]  # and before model.vq.groups was: one codebook
    assert spec.vq.groups == 1 and checkpoint_spec(ckpt, "x") == spec


# residual: the meaning of the dynamics' output; skip: the decoder's, which changes no weight's shape (so a
# checkpoint of the other kind would load without a word, had the spec not been compared as a whole)
@pytest.mark.parametrize("key", ["model.dynamics.residual", "model.decoder.skip"])
def test_init_from_with_another_architecture_setting_fails_with_one_line(make_cfg, tmp_path, key):
    cfg = make_cfg("debug=tiny", "phase=prediction")
    ckpt = save_checkpoint(PredictionPhase(plain(cfg.model), plain(cfg.phase)), tmp_path / "latent.ckpt")
    part, field = key.split(".")[1:]
    assert read_checkpoint(ckpt)["model_spec"][part][field] is False
    explicit = make_cfg("debug=tiny", "phase=comprehensive", f"{key}=true", f"phase.init_from={ckpt}")
    line = f"{key}=true conflicts with the checkpoint's false (phase.init_from='{ckpt}')"
    with pytest.raises(CheckpointError) as err:
        build_phase(explicit)
    assert str(err.value) == line
    # a phase built with the run's config as it is (not through build_phase) refuses the checkpoint when fitting
    phase = PredictionPhase(plain(explicit.model), plain(explicit.phase))
    with pytest.raises(CheckpointError) as err:
        phase.setup("fit")
    assert str(err.value) == line


def test_init_from_takes_the_checkpoints_architecture_where_the_run_does_not_set_it(make_cfg, tmp_path):
    # residual=true in the checkpoint, the model option's false in the run: the checkpoint's
    cfg = make_cfg(
        "debug=tiny", "phase=prediction", "phase.freeze_vqvae=false", "model.dynamics.residual=true"
    )
    residual = save_checkpoint(
        PredictionPhase(plain(cfg.model), plain(cfg.phase)), tmp_path / "residual.ckpt"
    )
    phase = build_phase(make_cfg("debug=tiny", "phase=comprehensive", f"phase.init_from={residual}"))
    assert phase.spec.dynamics.residual is True and phase.dynamics.residual is True
    assert phase.hparams.model["dynamics"]["residual"] is True  # its own checkpoints build what it trained


def test_init_from_builds_the_checkpoints_size_unless_the_run_sets_one(make_cfg, tmp_path):
    small = make_cfg("model=small")
    ckpt = save_checkpoint(
        ReconstructionPhase(plain(small.model), plain(small.phase)), tmp_path / "small.ckpt"
    )
    # the run composes model=default and sets no size: the VQ-VAE is the checkpoint's, the dynamics (which the
    # reconstruction checkpoint does not hold) the run's
    phase = build_phase(make_cfg("phase=prediction", f"phase.init_from={ckpt}"))
    assert (
        phase.spec.encoder.hidden_channels == (16, 32)
        and phase.spec.vq == ModelSpec.from_config(plain(small.model)).vq
    )
    assert phase.vqvae.quantizer.embedding.weight.shape == (128, 48)
    default = make_cfg("phase=prediction").model.dynamics.hidden_channels
    assert phase.dynamics.cells[0].hidden_channels == default
    phase.setup("fit")  # the weights fit
    assert torch.equal(
        phase.vqvae.quantizer.embedding.weight,
        read_checkpoint(ckpt)["state_dict"]["vqvae.quantizer.embedding.weight"],
    )
    # a size the run sets itself conflicts
    with pytest.raises(
        CheckpointError, match=r"^model.vq.num_codes=64 conflicts with the checkpoint's 128 \("
    ):
        build_phase(make_cfg("phase=prediction", "model.vq.num_codes=64", f"phase.init_from={ckpt}"))
    with pytest.raises(
        CheckpointError, match=r"^model.encoder.hidden_channels=\[8, 16\] conflicts .* \[16, 32\]"
    ):
        build_phase(make_cfg("debug=tiny", "phase=prediction", f"phase.init_from={ckpt}"))
