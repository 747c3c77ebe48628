"""The phases, as data: `PHASES` maps each `phase=<name>` to its LightningModule class, its typed settings and
what it can do.

Reading the table imports nothing (no torch, no Lightning), so the start-up checks (physworld.checks) and the
pipeline ask it with only a config's or a checkpoint's phase name; `phase_class(name)` imports the class. A
phase at hand finds its row by its own name (`phase.entry.trains_dynamics`, phases/base.py).
`phase=comprehensive` is the prediction phase with other settings (configs/phase/comprehensive.yaml).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields

from physworld.phases.settings import PredictionSettings, RLSettings, Settings, WorldModelSettings


@dataclass(frozen=True)
class Phase:
    target: str  # "<module>:<class>" of its LightningModule
    settings: type[Settings]  # its typed settings (phases/settings.py), read from configs/phase/<name>.yaml
    # it trains the world model: its checkpoint is what phase.init_from and scripts/evaluate.py take, and it
    # trains with one optimizer (phases/base.py)
    is_world_model: bool
    # it trains the ConvGRU dynamics on its own rollouts, and so predicts frames: rollout(), the rollout metrics,
    # the prediction keys of configs/phase (context_frames, loss_weights, ...)
    trains_dynamics: bool
    # phase.init_from must bring trained dynamics, not only a VQ-VAE
    needs_trained_dynamics: bool
    # it trains an agent (reward model, actor, critic) in imagination and scores it in the real environment: the
    # RL figures, scripts/rl_gradient_split.py, the agent's keys of configs/phase
    trains_agent: bool


# phase=<name>: Phase(class, settings, is_world_model, trains_dynamics, needs_trained_dynamics, trains_agent)
PHASES = {
    "reconstruction": Phase(
        "physworld.phases.reconstruction:ReconstructionPhase", WorldModelSettings, True, False, False, False
    ),
    "prediction": Phase(
        "physworld.phases.prediction:PredictionPhase", PredictionSettings, True, True, False, False
    ),
    "comprehensive": Phase(
        "physworld.phases.prediction:PredictionPhase", PredictionSettings, True, True, False, False
    ),
    "rl": Phase("physworld.phases.rl:RLPhase", RLSettings, False, False, True, True),
}
CAPABILITIES = tuple(f.name for f in fields(Phase) if f.type == "bool")


def phase_class(name: str) -> type:
    """The LightningModule class of `phase=<name>` (importing it, and so Lightning)."""
    module, cls = _entry(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def declared(name: str, capability: str) -> bool:
    """What the table says of `phase=<name>` for `capability` (one of CAPABILITIES)."""
    if capability not in CAPABILITIES:
        raise KeyError(f"no capability {capability!r}: accepted one of {list(CAPABILITIES)}")
    return getattr(_entry(name), capability)


def phases_that(capability: str) -> tuple[str, ...]:
    """The names of the phases with `capability`, in the table's order."""
    return tuple(name for name in PHASES if declared(name, capability))


def _entry(name: str) -> Phase:
    if name not in PHASES:
        raise KeyError(f"no phase {name!r}: accepted one of {list(PHASES)}")
    return PHASES[name]
