"""The contract every scene generator follows.

A scene is a module `physworld.data.scenes.<name>` with:

- `VERSION: int` -- bump it whenever the output for the same config and seed changes; it is recorded in
  the cache manifest, so a changed generator regenerates stale data instead of loading it.
- `STATE_NAMES: tuple[str, ...]` -- the names of the last axis of `states`, e.g. ("ball0_x", "ball0_y",
  "ball0_vx", "ball0_vy", ...). Positions and velocities are in pixels and pixels/frame, angles in rad.
- `POSITIONS: tuple[tuple[int, int], ...]` -- for each drawn object, the (x, y) column indices of its
  centre in `states` (empty when the scene has no point-like objects, e.g. waves). Evaluation uses it
  with `params["object_colors"]` (N, K, 3) to estimate object positions from predicted frames.
- `generate(rng, n, num_frames, params) -> Scene` -- pure numpy, vectorised over the n sequences.
  `params` is the plain dict of `dataset.scene` from the YAML (ranges as [low, high] lists); every
  per-sequence random draw comes from `rng`, so the same seed gives the same bytes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Scene(NamedTuple):
    """A batch of generated sequences."""

    frames: np.ndarray  # uint8 (N, T, 64, 64, 3)
    states: np.ndarray  # float32 (N, T, S), S = len(STATE_NAMES); NaN where an object is absent
    params: dict  # name -> float32/int array with leading axis N: the per-sequence parameters drawn
    actions: np.ndarray | None = None  # float32 (N, T, A) for interactive scenes; None = passive (zeros)
    rewards: np.ndarray | None = None  # float32 (N, T) for interactive scenes; None = no rewards


def uniform(rng: np.random.Generator, bounds, n: int, *shape) -> np.ndarray:
    """Draw float32 (n, *shape) uniformly from a [low, high] pair taken from the config."""
    low, high = float(bounds[0]), float(bounds[1])
    if high < low:
        raise ValueError(f"range {list(bounds)} has high < low")
    return rng.uniform(low, high, size=(n, *shape)).astype(np.float32)
