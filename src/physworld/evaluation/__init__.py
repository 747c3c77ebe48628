"""Evaluation of trained world models (`scripts/evaluate.py`); the report that reads it is physworld.report.

- `checks.py`: the checks of configs/evaluate.yaml's values (no torch: the command runs them first);
- `runs.py`: where a run keeps its config; `evaluate.py`: `evaluate(cfg)`, data, scores, metrics.json, figures
  (a phase is rebuilt from its checkpoint by physworld.phases.checkpoints);
- `scoring.py`: reconstruction, codebook and rollout scores of one dataset's held-out split;
- `generalisation.py`, `probes.py`, `counterfactual.py`: the out-of-distribution gap, linear state probes and
  counterfactual actions; `agent_gradient.py`: where a trained agent's gradient points;
- `figures.py`, `architecture.py`: the evaluation's figures, from real scores and the instantiated model
  (physworld.plots draws).
"""
