"""Every option of every config group composes and resolves."""

from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from physworld.choices import check_choices, group_options
from physworld.errors import ConfigError
from physworld.paths import CONFIG_DIR
from physworld.phases import PHASES
from tests.conftest import ROOT, compose_raw

GROUPS = ["phase", "dataset", "data", "model", "trainer", "callbacks", "logger", "experiment", "debug"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]


# Config groups whose options the parametrised test below does not compose, and why.
NOT_HERE = {
    "hydra": "Hydra's own settings, part of every composition",
    "paths": "one option, part of every composition",
    "hparams_search": "tests/test_sweeps.py",
}


def test_every_config_group_is_tested():
    """A new group folder under configs/ must join GROUPS (or NOT_HERE, with a reason), and each group in
    GROUPS must have options: otherwise its options would go untested."""
    folders = {d.name for d in CONFIG_DIR.iterdir() if d.is_dir()}
    assert folders - set(NOT_HERE) == set(GROUPS)
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_resolves(make_cfg, group, option):
    cfg = make_cfg(f"{group}={option}")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["phase"]["name"] in PHASES  # the name picks the LightningModule
    if group == "phase":
        assert resolved["phase"]["name"] == option
    assert resolved["trainer"]["max_epochs"] == resolved["phase"]["max_epochs"]
    if group not in ("debug", "experiment"):
        assert HydraConfig.get().runtime.choices[group] == option


def test_phase_options_are_the_phases_and_extend_the_base():
    # configs/phase/base/ holds what the phases extend: no option of phase=, and every phase fills in its ???.
    assert group_options(CONFIG_DIR, "phase") == sorted(PHASES)
    with pytest.raises(ConfigError, match="phase='base/common' is not accepted"):
        check_choices(["phase=base/common"], CONFIG_DIR)
    common = OmegaConf.load(CONFIG_DIR / "phase" / "base" / "common.yaml")
    for name in PHASES:
        phase = compose_raw([f"phase={name}"]).phase
        assert set(common) <= set(phase) and not OmegaConf.missing_keys(phase), name


def test_defaults_are_the_seeds(make_cfg):
    cfg = make_cfg()
    assert cfg.phase.name == "reconstruction" and cfg.dataset.name == "moving_mnist"
    assert cfg.phase.lr == 5e-5 and cfg.phase.batch_size == 16 and cfg.phase.max_epochs == 5
    assert cfg.model.encoder.hidden_channels == [64, 128] and cfg.model.vq.code_dim == 192
    assert cfg.model.vq.num_codes == 512 and cfg.model.vq.commitment_cost == 0.25
    assert cfg.model.decoder.skip is False
    assert cfg.trainer.accelerator == "auto"
    assert cfg.dataset.num_frames == 20 and cfg.dataset.sizes.train == 10000


def test_data_dir_follows_environment(monkeypatch):
    monkeypatch.delenv("PHYSWORLD_DATA_DIR", raising=False)
    assert compose_raw().paths.data_dir == f"{ROOT}/data"
    monkeypatch.setenv("PHYSWORLD_DATA_DIR", "/somewhere/data")
    assert compose_raw().paths.data_dir == "/somewhere/data"


@pytest.mark.parametrize(
    ("extra", "folder"), [("debug=tiny", "/data/debug"), ("experiment=demo", "/data/demo")]
)
def test_debug_and_demo_use_their_own_data_folders(monkeypatch, extra, folder):
    # Their small datasets must never replace the full-size ones in data/<name>.
    monkeypatch.delenv("PHYSWORLD_DATA_DIR", raising=False)
    assert compose_raw([extra]).paths.data_dir == f"{ROOT}{folder}"


def test_generate_data_config_matches_train(monkeypatch):
    # scripts/generate_data.py must write exactly where train.py looks, with the same sizes (the seed: below).
    monkeypatch.delenv("PHYSWORLD_DATA_DIR", raising=False)
    for extra in ([], ["debug=tiny"], ["experiment=demo"]):
        train, gen = compose_raw(extra), compose_raw(extra, config_name="generate_data")
        assert gen.paths.data_dir == train.paths.data_dir
        assert gen.dataset == train.dataset
        preview = compose_raw(extra, config_name="preview_data")  # previews what training would generate
        assert preview.dataset == train.dataset


DATA_COMMANDS = ("train", "generate_data", "preview_data", "evaluate")


@pytest.mark.parametrize("config_name", DATA_COMMANDS)
def test_every_data_command_takes_the_dataset_seed_from_the_data_group(config_name):
    # The dataset seed is written once, in configs/data/default.yaml: a command that set data.seed itself could
    # drift from the others and make (or look for) another cache.
    own = OmegaConf.load(CONFIG_DIR / f"{config_name}.yaml")
    assert OmegaConf.select(own, "data.seed") is None, f"{config_name}.yaml sets data.seed itself"
    group = OmegaConf.load(CONFIG_DIR / "data" / "default.yaml")
    cfg = compose_raw(config_name=config_name)
    assert cfg.hydra.runtime.choices.data == "default"
    assert cfg.data.seed == group.seed
    assert compose_raw(["data.seed=3"], config_name=config_name).data.seed == 3


MISSPELT = [
    (config_name, override)
    for config_name in ("train", "generate_data", "evaluate", "preview_data")
    for override in ("debug=tinny", "experiment=demoo", "hparams_search=grid")
    if config_name == "train" or not override.startswith("hparams_search")  # a group of train.yaml only
]


@pytest.mark.parametrize(("config_name", "override"), MISSPELT)
def test_misspelt_option_of_an_off_by_default_group_fails(config_name, override):
    # Such groups were `optional` in the defaults lists, which made Hydra compose the full default config for
    # a misspelt option instead of failing.
    with pytest.raises(MissingConfigException, match=f"Available options in '{override.split('=')[0]}'"):
        compose_raw([override], config_name=config_name)


def test_default_callbacks_choose_the_rich_progress_bar(make_cfg):
    from lightning.pytorch.callbacks import RichProgressBar

    from physworld.run import build_callbacks

    bars = [cb for cb in build_callbacks(make_cfg("debug=tiny")) if isinstance(cb, RichProgressBar)]
    assert len(bars) == 1
