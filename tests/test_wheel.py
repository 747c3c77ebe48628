"""The package as a user installs it: a wheel built from the sources, installed outside the repository, runs
`physworld-train debug=tiny` from an empty folder, with its code and its configs from the wheel alone.

The wheel goes into its own folder with `pip install --target` (no dependencies, no index) and runs on the
test's interpreter with only that folder on PYTHONPATH: torch and the rest come from the interpreter's
environment, physworld must come from the wheel (the folder is searched before any installed physworld).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from physworld.paths import CONFIG_DIR
from tests.conftest import ROOT


def pip(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_wheel_carries_code_and_configs_and_trains_outside_the_repository(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel without isolation needs setuptools")
    pytest.importorskip("pip", reason="building and installing the wheel needs pip")
    tomllib = pytest.importorskip("tomllib")
    # Build from a copy: a setuptools build writes build/ and *.egg-info beside the sources, and tests write
    # only under tmp_path.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = pip(
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        tmp_path / "wheels",
        source,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("physworld-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {
        f"physworld/configs/{p.relative_to(CONFIG_DIR).as_posix()}" for p in CONFIG_DIR.rglob("*.yaml")
    }
    assert configs and configs <= names, sorted(configs - names)
    assert "physworld/cli/train.py" in names
    # Every [project.scripts] entry is a console script of the wheel, its module packed with it.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    console = configparser.ConfigParser()
    console.read_string(zipfile.ZipFile(wheel).read(entry_points).decode())
    assert dict(console["console_scripts"]) == scripts
    for target in scripts.values():
        assert target.split(":")[0].replace(".", "/") + ".py" in names, target

    site = tmp_path / "site"
    installed = pip("install", "--no-deps", "--no-index", "--target", site, wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert sorted(p.name for p in (site / "bin").iterdir() if p.name.startswith("physworld-")) == sorted(
        scripts
    )

    work = tmp_path / "work"  # an empty current directory: data/ and outputs/ must go here
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHYSWORLD_", "PYTHON", "WANDB_"))}
    env["PYTHONPATH"] = str(site)
    where = subprocess.run(
        [sys.executable, "-c", "import physworld.paths as p; print(p.__file__); print(p.CONFIG_DIR)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    module, configs_dir = where.stdout.split()
    assert module == str(site / "physworld" / "paths.py") and configs_dir == str(
        site / "physworld" / "configs"
    )
    # Each console script's target imports from the wheel and is a function (their shebang is this interpreter).
    check = "import importlib, sys\n" + "".join(
        f"f = getattr(importlib.import_module({m!r}), {f!r}); assert callable(f); print(sys.modules[{m!r}].__file__)\n"
        for m, f in (target.split(":") for target in scripts.values())
    )
    imported = subprocess.run(
        [sys.executable, "-c", check], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert all(line.startswith(str(site)) for line in imported.stdout.split()), imported.stdout
    assert len(imported.stdout.split()) == len(scripts)

    # The console script pip wrote (its shebang is this interpreter), as a user would type it.
    result = subprocess.run(
        [str(site / "bin" / "physworld-train"), "debug=tiny", "logger=none"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (work / "outputs" / "train" / "runs").iterdir()
    assert json.loads((run / "metrics.json").read_text())["test/recon_psnr"] > 0
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert any((work / "data").rglob("manifest.json"))  # the data was generated under the current directory
    # Hydra composed the configs installed with the wheel, not the repository's.
    assert f"path: {site / 'physworld' / 'configs'}\n" in (run / ".hydra" / "hydra.yaml").read_text()
