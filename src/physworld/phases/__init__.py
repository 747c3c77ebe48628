"""LightningModules, one per `phase=<name>`."""

from physworld.phases.reconstruction import ReconstructionPhase

PHASES = {
    "reconstruction": ReconstructionPhase,
}
