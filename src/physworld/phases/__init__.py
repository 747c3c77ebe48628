"""LightningModules, one per `phase=<name>`.

`PHASES` maps each name to its class. The classes import Lightning, so PHASES is built on first use (a module
`__getattr__`): the start-up checks (physworld.checks) check `phase=` against PHASE_NAMES without importing
Lightning, and so report a bad value in about the time Hydra takes to compose.
"""

from __future__ import annotations

import importlib

# phase name -> (module, class)
_CLASSES = {
    "reconstruction": ("physworld.phases.reconstruction", "ReconstructionPhase"),
    "prediction": ("physworld.phases.prediction", "PredictionPhase"),
    "comprehensive": ("physworld.phases.comprehensive", "ComprehensivePhase"),
    "rl": ("physworld.phases.rl", "RLPhase"),
}
PHASE_NAMES = tuple(_CLASSES)


def __getattr__(name: str):
    if name == "PHASES":
        return {key: getattr(importlib.import_module(module), cls) for key, (module, cls) in _CLASSES.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
