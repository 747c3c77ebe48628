"""physworld: learn the physics of simple worlds from video, then train agents in the learned model.

The Python API (no Hydra): `physworld.load_world_model(path)` (world_model.py) and
`physworld.datasets.load(name, split)` (datasets.py). They are imported on first use, so that `import physworld`
stays light for the command-line entry points.
"""

__version__ = "0.1.0"

__all__ = ["datasets", "load_world_model"]


def __getattr__(name: str):
    if name == "load_world_model":
        from physworld.world_model import load_world_model

        return load_world_model
    if name == "datasets":
        import physworld.datasets

        return physworld.datasets
    raise AttributeError(f"module 'physworld' has no attribute {name!r}")
