"""scripts/pipeline.py: the demo experiment's steps chained through their checkpoints, skipped when done,
resumed when interrupted, and a clear error for an experiment without steps."""

from __future__ import annotations

import json
import shutil

import pytest
from omegaconf import OmegaConf

from tests.conftest import check_generalisation_holds_metrics, generalisation_section, latest_evaluations, run

TINY = [
    "experiment=demo",
    "debug=tiny",
    "data.max_sequences=8",
    "data.max_frames=16",  # the demo's RL step reads 16-frame windows ...
    "data.stride=8",  # ... and windows every 8 frames keep the other steps as short as with 8-frame sequences
    "phase.max_epochs=1",
    "phase.batch_size=4",
    "pipeline.evaluate_sequences=4",  # the end-of-pipeline evaluations: test, ood_test and long_test ...
    "pipeline.long_horizon=12",  # ... rollouts past the 16 frames of the other splits, in a few seconds
    "pipeline.generalisation=true",  # the Generalisation section (the demo's own setting, said again here)
]


def test_demo_pipeline_runs_every_phase_in_order_and_resumes(tmp_path):
    args = ["scripts/pipeline.py", *TINY, f"paths.data_dir={tmp_path / 'data'}"]
    first = run(args, tmp_path, timeout=900)  # five tiny trainings and their evaluations, on a shared CPU
    assert first.returncode == 0, first.stderr[-3000:]
    root = tmp_path / "outputs" / "pipelines" / "demo"
    steps = ["1_reconstruction", "2_prediction", "3_comprehensive", "4_agent_world", "5_rl"]
    record = json.loads((root / "pipeline.json").read_text())
    assert list(record) == steps
    assert [record[s]["phase"] for s in steps] == [
        "reconstruction",
        "prediction",
        "comprehensive",
        "comprehensive",
        "rl",
    ]
    for step in steps:
        assert (root / step / "checkpoints" / "best.ckpt").is_file(), step
        assert (root / step / "metrics.json").is_file(), step
    assert "phase.init_from: loaded vqvae from" in first.stdout + first.stderr
    rl = json.loads((root / "5_rl" / "metrics.json").read_text())
    assert {"test/return_policy", "test/return_random", "test/return_oracle"} <= set(rl)
    # the world-model steps skip their own test (test=false); the pipeline ends with an evaluation of each of
    # them on the test split, and one report for all of them
    _, evaluation = latest_evaluations(root / "3_comprehensive")["test"]
    # object positions are scored (pos_found always; pos_err only where the tiny model draws an object at all)
    assert "test/rollout_pos_found/bouncing_balls/t01" in evaluation
    assert list((root / "2_prediction" / "evaluate").glob("*/architecture_diagram.png"))
    report = (root / "report.md").read_text()
    assert "5_rl" in report and "rl_trajectory.png" in report and (root / "report.html").is_file()
    # pipeline.generalisation: test beside ood_test and 50-step long_test rollouts, in the Generalisation section
    section = generalisation_section(report)
    step = "3_comprehensive"  # the last world-model step on dataset=all: its evaluations hold every part
    checked = check_generalisation_holds_metrics(section, root / step, step)
    assert checked["gap"] > 0 and checked["crossover"] > 0 and checked["probes"] > 0, (step, checked)
    long, metrics = latest_evaluations(root / step)["long"]
    assert f"{step}/evaluate/{long.name}/rollout_error_vs_horizon.png" in section
    assert "long_test/rollout_mse/bouncing_balls/t12" in metrics
    assert not any(k.startswith("long_test/probe") for k in metrics)  # the probes: test's only
    for stage in ("1_reconstruction", "2_prediction"):  # stages of step 3: the test evaluation only
        assert set(latest_evaluations(root / stage)) == {"test"}, stage
    assert (
        check_generalisation_holds_metrics(section, root / "4_agent_world", "4_agent_world")["counterfactual"]
        > 0
    )
    assert "no ood_test split for goal_reach" in section and "### Model `1_reconstruction`" not in section

    # A step trained before the datasets had `ood:` and `long_num_frames` (its saved config has neither): the
    # rerun evaluates it on the current dataset configs.
    saved = OmegaConf.load(root / "3_comprehensive" / "config.yaml")
    for member in saved.dataset.members.values():
        member.pop("ood", None), member.pop("long_num_frames", None), member.sizes.pop("ood_test", None)
    (root / "3_comprehensive" / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    for kind in ("ood", "long"):
        shutil.rmtree(latest_evaluations(root / "3_comprehensive")[kind][0])
    # Rerun: every step is done. Then an interrupted last step (no metrics.json) resumes from its last.ckpt.
    again = run(
        [*args, "pipeline.evaluate_workers=2"], tmp_path, timeout=900
    )  # the two evaluations side by side
    assert again.returncode == 0 and again.stdout.count("is done") + again.stderr.count("is done") == 5
    side_by_side = "2 evaluations (3_comprehensive ood_gap, 3_comprehensive long_test) in 2 processes"
    assert side_by_side in again.stdout + again.stderr
    assert {"ood", "long"} <= set(latest_evaluations(root / "3_comprehensive")), again.stderr[-3000:]
    (root / "5_rl" / "metrics.json").unlink()
    resumed = run(args, tmp_path, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "step 5_rl was interrupted, resuming from" in resumed.stdout + resumed.stderr
    assert (root / "5_rl" / "metrics.json").is_file()


def test_experiment_without_steps_fails_with_one_line(tmp_path):
    result = run(["scripts/pipeline.py", "debug=tiny"], tmp_path)
    assert (
        result.returncode == 2
        and "has no pipeline.steps" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_fidelity_steps_are_the_demos_physics_steps_with_its_fidelity_settings():
    from physworld.checks import check_config
    from physworld.pipeline import plan

    _, demo, _ = plan(["experiment=demo"])
    root, steps, _ = plan(["experiment=fidelity"])
    assert [name for name, _ in steps] == [name for name, _ in demo[:3]]
    for (name, cfg), (_, twin) in zip(steps, demo):
        check_config(cfg, files=False)
        assert cfg.phase.name == twin.phase.name and cfg.dataset.name == twin.dataset.name == "all", name
        assert cfg.model.vq.groups == 8 and cfg.model.dynamics.residual, name
        assert (
            cfg.paths.data_dir != twin.paths.data_dir
        )  # other sizes: it must not regenerate the demo's data
    assert steps[1][1].phase.init_from == str(root / "1_reconstruction" / "checkpoints" / "best.ckpt")
    assert steps[0][1].phase.foreground_weight > 0 and steps[0][1].phase.gradient_weight > 0


def test_demo_keeps_colours_in_its_physics_vqvae_steps_only():
    # Grouped codes everywhere (the agent's world model is fine-tuned from the physics one, so it shares the
    # quantiser); the foreground-weighted, edge-aware reconstruction in the steps that train the physics VQ-VAE;
    # step 2's higher learning rate. The agent steps keep the plain reconstruction loss.
    from physworld.checks import check_config
    from physworld.pipeline import plan

    _, steps, _ = plan(["experiment=demo"])
    assert [name for name, _ in steps] == [
        "1_reconstruction",
        "2_prediction",
        "3_comprehensive",
        "4_agent_world",
        "5_rl",
    ]
    for name, cfg in steps:
        check_config(cfg, files=False)
        assert cfg.model.vq.groups == 8 and cfg.model.vq.code_dim % 8 == 0, name
        weighted = name in ("1_reconstruction", "3_comprehensive")
        for key in ("foreground_weight", "gradient_weight"):
            assert (cfg.phase.get(key, 0) > 0) == weighted, (name, key)
    by_name = dict(steps)
    assert by_name["2_prediction"].phase.lr > by_name["3_comprehensive"].phase.lr


def test_common_overrides_come_before_each_steps_own_and_the_command_line_after_both():
    from physworld.pipeline import plan

    _, steps, pipeline = plan(["experiment=demo"])
    common = dict(o.split("=", 1) for o in pipeline.common_overrides)
    own = [dict(o.split("=", 1) for o in step.overrides) for step in pipeline.steps]
    assert any("data.stride" in o for o in own) and any("data.stride" not in o for o in own)  # both cases
    for (name, cfg), mine in zip(steps, own):
        assert str(cfg.data.stride) == mine.get("data.stride", common["data.stride"]), name
        assert cfg.dataset.name == mine.get("dataset", common["dataset"]), name
    _, steps, _ = plan(["experiment=demo", "data.stride=2"])
    assert {cfg.data.stride for _, cfg in steps} == {2}


def test_generalisation_evaluations_of_each_step():
    from physworld.pipeline import generalisation_horizon, generalisation_steps, plan, step_evaluations

    _, steps, settings = plan(["experiment=demo", "pipeline.generalisation=false"])
    assert generalisation_horizon(settings) is None
    _, steps, settings = plan(["experiment=demo"])
    assert generalisation_horizon(settings) == settings.long_horizon  # the demo's own setting: on
    kinds = {name: [kind for kind, _ in step_evaluations(cfg, 4, 50)] for name, cfg in steps}
    assert kinds["1_reconstruction"] == ["ood_gap"]  # no dynamics: no long rollouts
    assert kinds["2_prediction"] == kinds["3_comprehensive"] == ["ood_gap", "long_test"]
    assert kinds["4_agent_world"] == ["test", "long_test"]  # goal_reach has no ood split
    # ... made for the last world-model step of each dataset choice only: steps 1-2 are stages of step 3
    assert generalisation_steps(steps) == {"3_comprehensive", "4_agent_world"}
    assert [kind for kind, _ in step_evaluations(steps[1][1], 4, None)] == ["test"]  # off: test only
    long = dict(step_evaluations(steps[1][1], 4, 50))["long_test"]
    assert "evaluation.horizon=50" in long and "evaluation.num_sequences=4" in long
    assert "evaluation.probes.enabled=false" in long and "evaluation.counterfactual.enabled=false" in long


@pytest.mark.parametrize(("key", "value"), [("generalisation", "yes"), ("long_horizon", 0)])
def test_bad_generalisation_settings_fail_with_one_line(key, value):
    from physworld.errors import ConfigError
    from physworld.pipeline import generalisation_horizon

    with pytest.raises(ConfigError, match=f"pipeline.{key}={value!r} is not accepted"):
        generalisation_horizon(OmegaConf.create({"generalisation": True, key: value}))


def test_evaluate_workers_auto_follows_the_cores_and_bad_values_fail_with_one_line(monkeypatch):
    import os

    from physworld.errors import ConfigError
    from physworld.pipeline import evaluate_workers

    for cores, expected in ((1, 1), (2, 1), (8, 2), (16, 4), (64, 4), (None, 1)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert evaluate_workers(OmegaConf.create({})) == expected
        assert evaluate_workers(OmegaConf.create({"evaluate_workers": "auto"})) == expected
    assert evaluate_workers(OmegaConf.create({"evaluate_workers": 3})) == 3
    for value in (0, -1, "two", 1.5, True):
        with pytest.raises(ConfigError, match=r"pipeline.evaluate_workers=.* is not accepted: auto or a pos"):
            evaluate_workers(OmegaConf.create({"evaluate_workers": value}))
