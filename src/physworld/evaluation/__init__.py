"""Evaluation of trained world models and the report (`scripts/evaluate.py`, `scripts/report.py`).

- `loading.py`: rebuild a phase from its checkpoint; find the training run's config beside it;
- `scoring.py`: reconstruction, codebook and rollout scores of one dataset's held-out split;
- `physics.py`: the position error of predicted frames (objects located by colour);
- `checks.py`: the checks of configs/evaluate.yaml's values (no torch: the command runs them first);
- `runs.py`: where a run keeps its config; `evaluate.py`: `evaluate(cfg)`, data, scores, metrics.json, figures;
- `figures.py`, `architecture.py`: the figures, from real scores and the instantiated model (physworld.plots draws);
- `curves.py`, `document.py`, `report.py`: training curves (CSV or W&B log), report.md and report.html.
"""
