"""The command-line entry points (pyproject.toml's [project.scripts]): physworld-train, physworld-evaluate,
physworld-generate, physworld-report, physworld-pipeline, physworld-preview and physworld-export, one module
each. The repository's train.py and scripts/*.py are thin wrappers around the same main() functions (but
scripts/benchmark*.py, summarize.py, rollout_table.py and rl_gradient_split.py: tools of the repository, not
commands; the first three wrap physworld.benchmark.bench, .scenes and physworld.report.sweeps).

Every main() composes the config tree inside the package (physworld.paths.CONFIG_DIR), so an installed wheel
runs with no repository around it.
"""

from __future__ import annotations

import os

from physworld.paths import project_root


def set_project_root() -> None:
    """Set $PHYSWORLD_ROOT (paths.root_dir: where data/ and outputs/ go) to paths.project_root() unless set."""
    os.environ.setdefault("PHYSWORLD_ROOT", str(project_root()))
