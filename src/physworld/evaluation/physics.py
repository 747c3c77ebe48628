"""The physics position error: how far, in pixels, the objects of a predicted frame are from where the
simulator put them (frame metrics reward a blur spread over every place a ball might be; this does not).

Objects are located by colour with `physworld.metrics.positions` (a scene's `POSITIONS` and the per-sequence
`params["object_colors"]`); this module only wires that estimator into the rollout evaluation, so that a
change of estimator is a change here and nowhere else.
"""

from __future__ import annotations

import numpy as np
import torch

from physworld.data.scenes import SCENES
from physworld.metrics.positions import (
    GLOBAL_CENTROID_SCENES,
    estimate_positions,
    position_error,
    position_error_vs_reference,
    true_positions,
)

# Scenes whose objects are not blobs and whose stored position is not the centroid of what is drawn (Moving
# MNIST: digits, positioned by their box). As positions.py prescribes, they are located by the global
# centroid (refine=False) and compared with the estimate on the true frame, not with the stored state.
REFERENCE_SCENES = frozenset(GLOBAL_CENTROID_SCENES)


def has_positions(scene: str, params: dict) -> bool:
    """Whether the scene draws point-like objects in known colours (wave, for one, has none)."""
    module = SCENES.get(scene)
    return bool(getattr(module, "POSITIONS", ())) and "object_colors" in params


def position_errors(
    scene: str,
    frames: dict[str, torch.Tensor],
    truth: torch.Tensor,
    states: np.ndarray,
    colors: np.ndarray,
) -> dict[str, torch.Tensor]:
    """Per-object position errors of several predictions of the same frames.

    frames: name -> predicted frames (N, K, 3, H, W) (e.g. "model", "copy_last"); truth (N, K, 3, H, W) the
    true frames; states (N, K, S) the simulator states of those frames; colors (N, O, 3) object colours.
    Returns name -> (N, K, O) distances in pixels, NaN where the object is absent or not found, plus
    "floor": the estimator's own error on the true frames (absent for REFERENCE_SCENES, where it is 0 by
    construction) and "present": (N, K, O) bool, the objects that are there to be found.
    """
    n, k = truth.shape[:2]
    colors_t = torch.as_tensor(np.asarray(colors), dtype=torch.float32, device=truth.device)
    num_objects = colors_t.shape[1]
    colors_t = colors_t[:, None].expand(n, k, num_objects, 3).flatten(0, 1)  # (N*K, O, 3)
    flat_truth = truth.flatten(0, 1)  # (N*K, 3, H, W)
    out: dict[str, torch.Tensor] = {}
    if scene in REFERENCE_SCENES:
        for name, pred in frames.items():
            out[name] = position_error_vs_reference(pred.flatten(0, 1), flat_truth, colors_t, refine=False)
        reference = estimate_positions(flat_truth, colors_t, refine=False)
        present = torch.isfinite(reference).all(-1)  # objects with a reference to compare with
    else:
        positions = true_positions(np.asarray(states), SCENES[scene].POSITIONS, num_objects)  # (N, K, O, 2)
        true = torch.as_tensor(positions, dtype=torch.float32, device=truth.device).flatten(0, 1)
        present = torch.isfinite(true).all(-1)  # absent objects (falling_objects' empty slots) are NaN
        for name, pred in frames.items():
            out[name] = position_error(pred.flatten(0, 1), true, colors_t, valid=present)
        out["floor"] = position_error(flat_truth, true, colors_t, valid=present)
    out["present"] = present
    return {name: value.reshape(n, k, num_objects) for name, value in out.items()}
