"""Where physworld finds its configs, and where runs keep their data and outputs by default.

CONFIG_DIR is the Hydra config tree. It ships inside the package (physworld/configs, package data in
pyproject.toml), so an installed wheel composes the same configs as the repository: every script, entry point
and test finds it here, never relative to the repository.

project_root() is the folder that `paths.root_dir` (configs/paths/default.yaml) defaults to, with data/ and
outputs/ under it: $PHYSWORLD_ROOT when set; else the repository when physworld is imported from a source
checkout (src/physworld beside pyproject.toml: an editable install or PYTHONPATH=src); else the current
directory (an installed wheel).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "configs"


def source_checkout() -> Path | None:
    """The repository this package is imported from, or None when it is installed (a wheel)."""
    repo = PACKAGE_DIR.parents[1]
    if PACKAGE_DIR.parent.name == "src" and (repo / "pyproject.toml").is_file():
        return repo
    return None


def project_root() -> Path:
    """$PHYSWORLD_ROOT, else the source checkout, else the current directory (see the module docstring)."""
    if os.environ.get("PHYSWORLD_ROOT"):
        return Path(os.environ["PHYSWORLD_ROOT"])
    return source_checkout() or Path.cwd()
