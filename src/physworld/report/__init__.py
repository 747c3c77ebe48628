"""The report of a run or a pipeline folder (`scripts/report.py`, and the end of every pipeline): report.md and
report.html from what the folder holds, and the tables the command-line tools print.

- `build.py`: `write_report(folder)`: the sections in order; `folders.py`: the runs and evaluations it finds;
- `sections.py`: each training run, the summary, the online rounds; `evaluations.py`: an evaluation's tables;
- `generalisation.py`: its Generalisation section (OOD gap, long rollouts, counterfactual actions, probes);
- `document.py`: a report as blocks, rendered to Markdown and HTML; `curves.py`: training curves of a run;
- `rollout_table.py`: a rollout table per horizon (scripts/rollout_table.py); `sweeps.py`: one table of a sweep
  (scripts/summarize.py).
"""
