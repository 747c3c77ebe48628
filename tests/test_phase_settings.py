"""The phases' typed settings (phases/settings.py): every YAML key a field, one line per bad value, the keys
added later read from older checkpoints' dicts."""

from __future__ import annotations

from dataclasses import fields

import pytest
from omegaconf import OmegaConf

from physworld.errors import ConfigError
from physworld.phases import PHASES
from physworld.phases.settings import GROUPS, PredictionSettings, RLSettings


@pytest.mark.parametrize("name", list(PHASES))
def test_every_key_of_a_phase_config_is_a_field_of_its_settings(make_cfg, name):
    phase = OmegaConf.to_container(make_cfg(f"phase={name}").phase, resolve=True)
    settings = PHASES[name].settings.from_config(phase, strict=False)  # init_from is null in the bare config
    assert {f.name for f in fields(settings)} == set(phase)
    for group in GROUPS:
        if group in phase:
            assert {f.name for f in fields(getattr(settings, group))} == set(phase[group])


def _prediction(make_cfg, *overrides) -> dict:
    cfg = make_cfg("phase=prediction", "phase.init_from=x.ckpt", *overrides)
    return OmegaConf.to_container(cfg.phase, resolve=True)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("lr", 0, "phase.lr=0 is not accepted: a positive number"),
        ("betas", [0.9, 1.0], "phase.betas=[0.9, 1.0] is not accepted: two numbers in [0, 1)"),
        (
            "loss_weights",
            [0, 0],
            "phase.loss_weights=[0, 0] is not accepted: a non-empty list of non-negative",
        ),
        ("photo_scales", [3], "phase.photo_scales=[3] is not accepted: a non-empty list of pooling factors"),
        (
            "head_latents",
            "both",
            "phase.head_latents='both' is not accepted: one of ['predicted', 'encoded']",
        ),
        ("freeze_vqvae", "yes", "phase.freeze_vqvae='yes' is not accepted: true or false"),
        ("seq_len", 6, "phase.seq_len=6 is not accepted: phase.context_frames + len(phase.loss_weights) = 7"),
    ],
)
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_accepted(make_cfg, key, value, expected):
    phase = _prediction(make_cfg)
    phase[key] = value
    with pytest.raises(ConfigError) as err:
        PredictionSettings.from_config(phase)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_nested_groups_are_typed_and_checked_by_their_full_key(make_cfg):
    cfg = make_cfg("phase=rl", "dataset=goal_reach", "phase.init_from=x.ckpt")
    phase = OmegaConf.to_container(cfg.phase, resolve=True)
    settings = RLSettings.from_config(phase)
    assert settings.planner.horizon == phase["planner"]["horizon"] and settings.head.keypoints == 8
    assert settings.eval_policies == ("actor",)  # lists become tuples
    phase["planner"]["iterations"] = -1
    with pytest.raises(
        ConfigError, match=r"^phase.planner.iterations=-1 is not accepted: a positive integer$"
    ):
        RLSettings.from_config(phase)
    phase["planner"].update(iterations=2, elites=99)
    with pytest.raises(
        ConfigError, match=r"^phase.planner.elites=99 is not accepted: at most phase.planner.cand"
    ):
        RLSettings.from_config(phase)
    RLSettings.from_config(phase, strict=False)  # saved hyperparameters: no checks between keys
    del phase["head"]["hidden"]
    with pytest.raises(ConfigError, match=r"^phase.head.hidden is missing: accepted a positive integer$"):
        RLSettings.from_config(phase)


def test_a_dict_saved_before_a_key_existed_reads_the_behaviour_of_then(make_cfg):
    phase = _prediction(make_cfg)
    for key in ("foreground_weight", "gradient_weight", "photo_scales", "photo_worst", "head_latents"):
        del phase[key]
    phase["a_key_since_removed"] = 3
    settings = PredictionSettings.from_config(phase, strict=False)
    assert (settings.foreground_weight, settings.photo_scales, settings.head_latents) == (
        0.0,
        (1,),
        "predicted",
    )
    del phase["lr"]  # a key every phase always had: missing is an error
    with pytest.raises(ConfigError, match=r"^phase.lr is missing: accepted a positive number$"):
        PredictionSettings.from_config(phase, strict=False)
