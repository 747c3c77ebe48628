"""LightningModules, one per `phase=<name>`."""

from physworld.phases.comprehensive import ComprehensivePhase
from physworld.phases.prediction import PredictionPhase
from physworld.phases.reconstruction import ReconstructionPhase
from physworld.phases.rl import RLPhase

PHASES = {
    "reconstruction": ReconstructionPhase,
    "prediction": PredictionPhase,
    "comprehensive": ComprehensivePhase,
    "rl": RLPhase,
}
