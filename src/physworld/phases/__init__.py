"""LightningModules, one per `phase=<name>`."""

from physworld.phases.comprehensive import ComprehensivePhase
from physworld.phases.prediction import PredictionPhase
from physworld.phases.reconstruction import ReconstructionPhase

PHASES = {
    "reconstruction": ReconstructionPhase,
    "prediction": PredictionPhase,
    "comprehensive": ComprehensivePhase,
}
