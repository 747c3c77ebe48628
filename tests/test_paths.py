"""physworld.paths: the configs inside the package, and where data/ and outputs/ go by default ($PHYSWORLD_ROOT,
else the source checkout, else the current directory)."""

from __future__ import annotations

import pytest

from physworld import datasets, paths
from tests.conftest import ROOT


@pytest.fixture
def no_root(monkeypatch):
    monkeypatch.delenv("PHYSWORLD_ROOT", raising=False)
    monkeypatch.delenv("PHYSWORLD_DATA_DIR", raising=False)


def test_configs_are_inside_the_package():
    assert paths.CONFIG_DIR == paths.PACKAGE_DIR / "configs"
    assert (paths.CONFIG_DIR / "train.yaml").is_file()


def test_compose_applies_overrides_and_hands_the_task_config():
    cfg = paths.compose("train", ["phase=prediction", "data.stride=3"])
    assert "hydra" not in cfg and cfg.phase.name == "prediction" and cfg.data.stride == 3
    # keep_hydra: the hydra node stays, with the choices the defaults list made
    cfg = paths.compose("evaluate", ["dataset=pendulum"], keep_hydra=True)
    assert cfg.hydra.runtime.choices.dataset == "pendulum" and cfg.dataset.name == "pendulum"


def test_a_checkout_keeps_data_and_outputs_in_the_repository(no_root, monkeypatch, tmp_path):
    if paths.PACKAGE_DIR != ROOT / "src" / "physworld":
        pytest.skip(f"physworld is imported from {paths.PACKAGE_DIR}, not from this checkout")
    monkeypatch.chdir(tmp_path)  # whatever the current directory
    assert paths.source_checkout() == ROOT and paths.project_root() == ROOT
    assert datasets.default_data_dir() == ROOT / "data"


def test_an_installed_package_uses_the_current_directory(no_root, monkeypatch, tmp_path):
    site = tmp_path / "lib" / "site-packages"
    monkeypatch.setattr(paths, "PACKAGE_DIR", site / "physworld")
    monkeypatch.chdir(tmp_path)
    assert paths.source_checkout() is None and paths.project_root() == tmp_path
    assert datasets.default_data_dir() == tmp_path / "data"


def test_the_environment_wins(no_root, monkeypatch, tmp_path):
    monkeypatch.setenv("PHYSWORLD_ROOT", str(tmp_path / "root"))
    assert paths.project_root() == tmp_path / "root"
    assert datasets.default_data_dir() == tmp_path / "root" / "data"
    monkeypatch.setenv("PHYSWORLD_DATA_DIR", str(tmp_path / "elsewhere"))
    assert datasets.default_data_dir() == tmp_path / "elsewhere"
