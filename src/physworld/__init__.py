"""physworld: learn the physics of simple worlds from video, then train agents in the learned model."""

__version__ = "0.1.0"
