"""The report's Generalisation section (report/generalisation.py): each part's numbers are those of the
metrics.json it comes from, its figure is the long_test evaluation's, and a part no evaluation holds says so with
the command that makes it."""

from __future__ import annotations

import shutil

from physworld.evaluation.evaluate import evaluate_run
from physworld.report.build import write_report
from tests.conftest import check_generalisation_holds_metrics, generalisation_section, latest_evaluations

FEW = ["evaluation.num_sequences=4"]


def test_generalisation_section_holds_its_evaluations_numbers(pred_run, tmp_path):  # noqa: F811
    run = tmp_path / "pred"
    shutil.copytree(pred_run, run, ignore=shutil.ignore_patterns("eval*", "report*"))
    evaluate_run(run, FEW, "last.ckpt")  # test only: the ood gap and the long rollouts are missing
    text = write_report(run)[0].read_text()
    section = generalisation_section(text)
    assert text.index("## Summary") < text.index("## Generalisation") < text.index("## Training run")
    assert "### Model `pred`" in section
    assert section.count("Not evaluated") == 2 + 1  # ood gap, long rollouts; counterfactual (pendulum)
    assert "evaluation.ood_gap=true`" in section and "dataset=pendulum" in section
    assert "evaluation.split=long_test evaluation.horizon=50`" in section
    assert "dataset=goal_reach`" in section  # the counterfactual's command
    checked = check_generalisation_holds_metrics(section, run, "pred")
    assert checked["gap"] == 0 and checked["crossover"] == 6 and checked["probes"] > 0
    assert section.count("| pendulum | - | - | - |") == 0  # the test split's crossovers are there

    evaluate_run(run, [*FEW, "evaluation.ood_gap=true"], "last.ckpt")
    evaluate_run(run, [*FEW, "evaluation.split=long_test", "evaluation.horizon=12"], "last.ckpt")
    section = generalisation_section(write_report(run)[0].read_text())
    assert "Not evaluated" in section and section.count("Not evaluated") == 1  # only the counterfactual left
    checked = check_generalisation_holds_metrics(section, run, "pred")
    assert checked["gap"] >= 2 * 6 and checked["crossover"] == 6 and checked["probes"] > 0
    long, _ = latest_evaluations(run)["long"]
    assert f"evaluate/{long.name}/rollout_error_vs_horizon.png" in section and "12 steps" in section
    assert "| model |" in section and "| tokenizer floor |" in section


def test_generalisation_section_without_dynamics_says_so(recon_run, tmp_path):  # noqa: F811
    run = tmp_path / "recon"
    shutil.copytree(recon_run, run, ignore=shutil.ignore_patterns("eval*", "report*"))
    evaluate_run(run, FEW, "last.ckpt")
    section = generalisation_section(write_report(run)[0].read_text())
    assert "Not evaluated: no evaluation of a model with dynamics" in section and "### Model" not in section
