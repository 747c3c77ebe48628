"""Write the run's final metrics to `<run dir>/metrics.json` (flat keys, floats) so runs compare in a table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


def scalar_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return dict(sorted(out.items()))


def write_metrics(path: str | Path, metrics: dict, as_is: dict | None = None) -> Path:
    """The finite scalars of `metrics`, and the entries of `as_is` unconverted (evaluate.py's crossover horizons:
    an int or "never"), sorted by key; written to a temporary file first, then moved into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted({**scalar_metrics(metrics), **(as_is or {})}.items())), indent=2))
    tmp.replace(path)
    return path
