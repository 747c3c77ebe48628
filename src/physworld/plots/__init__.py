"""Every figure's drawing, for the training callbacks and for evaluation and the report alike: the callbacks
decide when to draw, what to log and which files to write; evaluation picks what goes in each figure.

- `frames.py`: grids of frames (plain and labelled) and animated GIFs;
- `horizon.py`: rollout error and position error against the horizon, the model beside its baselines;
- `curves.py`: training curves of a run's logged metrics;
- `rl.py`: the RL phase's training curves and the agent's paths to its goals.

`pyplot()` is the one place matplotlib is set up: on the Agg backend (headless), since figures are written to
files, never shown in a window. matplotlib is imported on the first figure, not when a module here is.
"""

from __future__ import annotations

import functools


@functools.cache
def pyplot():
    """matplotlib.pyplot on the Agg backend (set once, on the first call)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
