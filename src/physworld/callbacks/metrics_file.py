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


def write_metrics(path: str | Path, metrics: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(scalar_metrics(metrics), indent=2))
    tmp.replace(path)
    return path
