"""Config-group choices on the command line (`debug=tiny`, `experiment=demo`, `dataset=pendulum`), checked
against the option files in configs/ before Hydra composes anything.

A misspelt option then stops the script with one line naming the group, the value and the options there are,
exit code 2, like every other bad value (Hydra's own message for it spans several lines with its search path).
Hydra still checks every choice when it composes; this only words the common case. Nothing here imports torch
or Lightning, so the check costs no start-up time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from physworld.errors import ConfigError, print_error

# Characters of Hydra's sweep and grammar syntax (choice(...), range(...), glob(*), ${...}, [a,b]): such values
# are left to Hydra, which expands them.
_SYNTAX = set("()[]{}*$'\"")


def group_options(config_dir: str | Path, group: str) -> list[str]:
    """The options of a config group: the names of the .yaml files in its folder."""
    return sorted(p.stem for p in (Path(config_dir) / group).glob("*.yaml"))


def check_choices(overrides: list[str], config_dir: str | Path) -> None:
    """Raise ConfigError for the first `group=option` override whose option file does not exist.

    Only groups that are folders of `config_dir` are checked (plain keys like `seed=3` or `phase.lr=1e-4` are
    not groups); the `hydra/...` groups are skipped (their options live in Hydra and its plugins). A multirun's
    `debug=tiny,fdr` is checked option by option; `null` deselects a group and is always accepted."""
    for arg in overrides:
        if arg.startswith("-") or "=" not in arg:
            continue  # flags (-m, --cfg job, --config-name ...) and their values
        key, value = arg.split("=", 1)
        group = key.lstrip("+")
        if not group or "." in group or "@" in group or group.startswith(("~", "hydra")):
            continue
        if not (Path(config_dir) / group).is_dir() or _SYNTAX & set(value):
            continue
        options = group_options(config_dir, group)
        for option in value.split(","):
            if option != "null" and option not in options:
                raise ConfigError(f"{group}={option!r} is not accepted: one of {options} (configs/{group}/)")


def exit_on_bad_choice(config_dir: str | Path, argv: list[str] | None = None) -> None:
    """check_choices on the command line; on a bad choice print one line and exit with code 2."""
    try:
        check_choices(sys.argv[1:] if argv is None else argv, config_dir)
    except ConfigError as err:
        sys.exit(print_error(err))
