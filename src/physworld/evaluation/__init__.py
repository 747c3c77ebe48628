"""Evaluation of trained world models and the report (`scripts/evaluate.py`, `scripts/report.py`).

Scoring:
- `checks.py`: the checks of configs/evaluate.yaml's values (no torch: the command runs them first);
- `runs.py`: where a run keeps its config; `evaluate.py`: `evaluate(cfg)`, data, scores, metrics.json, figures
  (a phase is rebuilt from its checkpoint by physworld.phases.checkpoints);
- `scoring.py`: reconstruction, codebook and rollout scores of one dataset's held-out split;
- `generalisation.py`, `probes.py`, `counterfactual.py`: the out-of-distribution gap, linear state probes and
  counterfactual actions; `agent_gradient.py`: where a trained agent's gradient points.

The report:
- `figures.py`, `architecture.py`: the figures, from real scores and the instantiated model (physworld.plots draws);
- `curves.py`, `document.py`, `report.py`, `generalisation_report.py`, `rollout_table.py`, `sweeps.py`: training
  curves (CSV or W&B log), the report's blocks and sections, report.md and report.html, and tables.
"""
