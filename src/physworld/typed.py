"""Typed settings read from plain config dicts, checked field by field: what models/spec.py (the model) and
phases/settings.py (each phase) are built on. A setting is a dataclass field whose metadata says which values
are accepted (`ok`) and, in words, what is (`accepted`); a bad value is one ConfigError line naming the key, the
value and what is accepted. No torch here: the start-up checks read settings before torch is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, field, fields

from physworld.errors import ConfigError


def setting(ok, accepted: str, default=MISSING, **metadata):
    """A dataclass field with its check (`ok(value)` true when accepted, `accepted` in words) and any other
    metadata its reader wants; without `default` the key is required."""
    return field(default=default, metadata={"ok": ok, "accepted": accepted, **metadata})


def read_fields(cls: type, given, prefix: str, groups: Mapping | None = None, what: str = "settings") -> dict:
    """The checked values of dataclass `cls` from the mapping `given`, keys named `<prefix>.<field>`: a field
    missing without a default, or a value its check refuses, is a ConfigError (one line). Keys of no field are
    ignored. `groups`: field name -> dataclass of a nested mapping, read the same way. Lists become tuples and
    mappings plain dicts (the dataclasses are frozen)."""
    if not isinstance(given, Mapping):  # a dict, or an OmegaConf DictConfig
        raise ConfigError(f"{prefix}={given!r} is not accepted: a mapping of the {what}")
    values = {}
    for f in fields(cls):
        key = f"{prefix}.{f.name}"
        if f.name not in given:
            if f.default is MISSING:
                raise ConfigError(f"{key} is missing: accepted {f.metadata['accepted']}")
            continue
        value = given[f.name]
        try:
            good = f.metadata["ok"](value)
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ConfigError(f"{key}={value!r} is not accepted: {f.metadata['accepted']}")
        group = (groups or {}).get(f.name)
        values[f.name] = group(**read_fields(group, value, key, groups, what)) if group else _frozen(value)
    return values


def _frozen(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    return tuple(value)
