"""Every dataset, and the dataset=all mixture, generates, loads and trains the reconstruction phase under
debug=tiny; the mixture's config keys behave."""

from __future__ import annotations

import numpy as np
import pytest

from physworld.checks import check_config
from physworld.data.cache import load_split
from physworld.data.plan import datasets_for
from physworld.data.scenes import SCENES
from physworld.errors import ConfigError
from physworld.run import train

# dataset=all mixes the ten passive datasets of the seed; the interactive goal_reach is not a member.
PASSIVE = sorted(set(SCENES) - {"goal_reach"})


@pytest.mark.parametrize("name", [*sorted(SCENES), "all"])
def test_fast_dev_run_on_every_dataset(make_cfg, tmp_path, name):
    cfg = make_cfg(f"dataset={name}", "debug=tiny", "trainer.fast_dev_run=true", "logger=none")
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and 0 < metrics["test/recon_psnr"] < 100
    members = PASSIVE if name == "all" else [name]
    for member in members:
        frames = load_split(tmp_path / "data" / member / "train")["frames"]
        assert frames.shape == (8, 8, 64, 64, 3)


def test_all_has_ten_members_at_their_own_sizes(make_cfg):
    cfg = make_cfg("dataset=all")
    specs = datasets_for(cfg)
    assert sorted(d["name"] for d in specs) == PASSIVE
    assert sum(d["sizes"]["train"] for d in specs) == 40_000  # the seed's 40k sequences
    assert cfg.dataset.num_frames == min(d["num_frames"] for d in specs)


def test_tiny_caps_every_member(make_cfg):
    for d in datasets_for(make_cfg("dataset=all", "debug=tiny")):
        assert d["num_frames"] == 8 and set(d["sizes"].values()) == {8}


def test_mixture_weights_are_checked(make_cfg):
    check_config(make_cfg("dataset=all", "debug=tiny", "+dataset.weights={pendulum: 2, wave: 1}"))
    with pytest.raises(ConfigError, match="dataset.weights"):
        check_config(make_cfg("dataset=all", "debug=tiny", "+dataset.weights={nope: 1}"))
    with pytest.raises(ConfigError, match="dataset.weights"):
        check_config(make_cfg("dataset=all", "debug=tiny", "+dataset.weights={pendulum: -1}"))
