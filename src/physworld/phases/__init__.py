"""LightningModules, one per `phase=<name>`, and what each can do.

`PHASES` maps each name to its class, and `phase_class(name)` gives one. The classes import Lightning, so
PHASES is built on first use (a module `__getattr__`): the start-up checks (physworld.checks) check `phase=`
against PHASE_NAMES without importing Lightning, and so report a bad value in about the time Hydra takes to
compose.

What a phase can do (CAPABILITIES) is declared once, as a class attribute in the body of each phase class, and
asked of the class: `phase.trains_dynamics` of a phase at hand, `declared(name, "trains_dynamics")` or
`phases_that("is_world_model")` with only a config's or a checkpoint's phase name. Those two read the class's
declaration from its module's source without importing it (so without Lightning: they serve the start-up
checks too); tests/test_phases.py keeps every class declaring every capability, and the source's answers equal
to the imported classes'.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from pathlib import Path

# phase name -> (module, class)
_CLASSES = {
    "reconstruction": ("physworld.phases.reconstruction", "ReconstructionPhase"),
    "prediction": ("physworld.phases.prediction", "PredictionPhase"),
    "comprehensive": ("physworld.phases.comprehensive", "ComprehensivePhase"),
    "rl": ("physworld.phases.rl", "RLPhase"),
}
PHASE_NAMES = tuple(_CLASSES)

# What a phase class declares about itself (True or False, in its own class body, never inherited).
CAPABILITIES = {
    "is_world_model": "it trains the world model: its checkpoint is what phase.init_from and scripts/evaluate.py "
    "take, and it trains with one optimizer (phases/base.py)",
    "trains_dynamics": "it trains the ConvGRU dynamics on its own rollouts, and so predicts frames: rollout(), "
    "the rollout metrics, the prediction keys of configs/phase (context_frames, loss_weights, ...)",
    "needs_trained_dynamics": "phase.init_from must bring trained dynamics, not only a VQ-VAE",
    "trains_agent": "it trains an agent (reward model, actor, critic) in imagination and scores it in the real "
    "environment: the RL figures, scripts/rl_gradient_split.py, the agent's keys of configs/phase",
}


def phase_class(name: str) -> type:
    """The LightningModule class of `phase=<name>` (importing it, and so Lightning)."""
    if name not in _CLASSES:
        raise KeyError(f"no phase {name!r}: accepted one of {list(PHASE_NAMES)}")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def declared(name: str, capability: str) -> bool:
    """What the class of `phase=<name>` declares for `capability` (one of CAPABILITIES), read from the class
    body in its module's source: the same answer as `getattr(phase_class(name), capability)`, without
    importing torch or Lightning."""
    if capability not in CAPABILITIES:
        raise KeyError(f"no capability {capability!r}: accepted one of {list(CAPABILITIES)}")
    values = _declarations(name)
    if capability not in values:
        module, cls = _CLASSES[name]
        raise AttributeError(f"{module}.{cls} does not declare {capability} in its class body")
    return values[capability]


def phases_that(capability: str) -> tuple[str, ...]:
    """The names of the phases whose class declares `capability` true, in PHASE_NAMES order."""
    return tuple(name for name in PHASE_NAMES if declared(name, capability))


@functools.cache
def _declarations(name: str) -> dict[str, bool]:
    """The capabilities assigned a literal (`trains_dynamics = True`) in the body of phase `name`'s class."""
    module, cls = _CLASSES[name]
    source = Path(importlib.util.find_spec(module).origin).read_text()  # finds the file, runs nothing in it
    body = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == cls).body
    values = {}
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
        elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
            target = node.target.id
        else:
            continue
        if target in CAPABILITIES:
            values[target] = ast.literal_eval(node.value)
    return values


def __getattr__(name: str):
    if name == "PHASES":
        return {key: phase_class(key) for key in _CLASSES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
