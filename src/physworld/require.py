"""require(cfg, key, ok, accepted): the one-line ConfigError of every start-up check ("key=value is not accepted:
what is accepted"), and the predicates the checks pass it. Plain Python: no torch, no Lightning."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from physworld.errors import ConfigError


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, throw_on_missing=True)


def require(cfg: DictConfig, key: str, ok, accepted: str) -> None:
    value = _get(cfg, key)
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(f"{key}={value!r} is not accepted: {accepted}")


def positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def non_negative_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def positive_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def non_negative_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
