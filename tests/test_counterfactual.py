"""Counterfactual actions (evaluation/counterfactual.py): the difference scores on positions whose answer is known
by hand, the counterfactual sequences, and the environment replayed from a recorded state."""

import numpy as np
import pytest

from physworld.data.scenes import goal_reach as world
from physworld.evaluation.counterfactual import (
    MIN_DIFFERENCE,
    counterfactual_actions,
    difference_scores,
    replay,
)


def real_outcomes():
    """Two sequences, K = 2: real positions under A and B, differences (3, 4) / (0, 2) and (-6, 8) / (0, 0)."""
    real_b = np.array([[[10.0, 10.0], [20.0, 20.0]], [[30.0, 30.0], [40.0, 40.0]]])
    diff = np.array([[[3.0, 4.0], [0.0, 2.0]], [[-6.0, 8.0], [0.0, 0.0]]])
    return real_b + diff, real_b, diff


def test_a_perfect_prediction_of_the_difference_has_error_0_and_cosine_1():
    real_a, real_b, _ = real_outcomes()
    shift = np.array(
        [1.5, -2.0]
    )  # a prediction may be off in where both outcomes are, not in their difference
    s = difference_scores(real_a + shift, real_b + shift, real_a, real_b)
    np.testing.assert_allclose(s["diff_err"], [0.0, 0.0], atol=1e-12)
    # horizon 2: sequence 2 has no real difference (below MIN_DIFFERENCE): only sequence 1 has a direction
    np.testing.assert_allclose(s["cosine"], [1.0, 1.0])
    np.testing.assert_allclose(s["found"], [1.0, 1.0])
    np.testing.assert_allclose(s["diff_err_blind"], [(5.0 + 10.0) / 2, (2.0 + 0.0) / 2])


def test_a_model_that_ignores_actions_errs_by_the_real_difference():
    real_a, real_b, _ = real_outcomes()
    same = np.full_like(real_a, 32.0)  # the same prediction under both sequences
    s = difference_scores(same, same, real_a, real_b)
    np.testing.assert_allclose(s["diff_err"], s["diff_err_blind"])
    np.testing.assert_allclose(s["diff_err"], [7.5, 1.0])
    np.testing.assert_allclose(s["cosine"], [0.0, 0.0])  # no predicted difference: no direction


def test_opposite_and_perpendicular_differences_and_lost_agents():
    real_a, real_b, diff = real_outcomes()
    rotated = np.stack([-diff[..., 1], diff[..., 0]], axis=-1)  # perpendicular, same length
    s = difference_scores(real_b - diff, real_b, real_a, real_b)  # the opposite difference
    np.testing.assert_allclose(s["cosine"], [-1.0, -1.0])
    np.testing.assert_allclose(s["diff_err"], [(10.0 + 20.0) / 2, (4.0 + 0.0) / 2])
    s = difference_scores(real_b + rotated, real_b, real_a, real_b)
    np.testing.assert_allclose(s["cosine"], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(s["diff_err"], [(5 * 2**0.5 + 10 * 2**0.5) / 2, 2 * 2**0.5 / 2])
    lost = real_a.copy()
    lost[1, 0] = np.nan  # the agent not found in sequence 2's first predicted frame
    s = difference_scores(lost, real_b, real_a, real_b)
    np.testing.assert_allclose(s["found"], [0.5, 1.0])
    np.testing.assert_allclose(s["diff_err_blind"], [5.0, 1.0])  # over the same sequences as the model
    assert MIN_DIFFERENCE > 0


def test_counterfactual_sequences():
    a = np.array([[0.5, -1.0], [0.0, 0.25]], np.float32)
    np.testing.assert_array_equal(counterfactual_actions(a, "negate"), -a)
    np.testing.assert_array_equal(counterfactual_actions(a, "rotate"), [[1.0, 0.5], [-0.25, 0.0]])
    np.testing.assert_array_equal(counterfactual_actions(a, "zero"), np.zeros_like(a))
    with pytest.raises(ValueError, match="'mirror'.*negate"):
        counterfactual_actions(a, "mirror")


def test_the_environment_replayed_from_a_recorded_state_follows_the_dataset():
    rng = np.random.default_rng(0)
    params = {"ou_theta": 0.1, "ou_sigma": 0.7, "scripted_fraction": 0.3, "scripted_noise": 0.3}
    scene = world.generate(rng, 4, 12, params)
    c = 3
    real = replay(world.Physics(), scene.states[:, c - 1], scene.actions[:, c - 1 : -1])
    # states are stored as float32: the replay starts from a rounded state, so it matches to rounding
    np.testing.assert_allclose(real, scene.states[:, c:, 0:2], atol=1e-3)
    moved = replay(world.Physics(), scene.states[:, c - 1], -scene.actions[:, c - 1 : -1])
    assert np.abs(moved - real).max() > 1.0  # the actions matter


def test_model_and_environment_see_the_same_start_and_actions(monkeypatch):
    # A stand-in model that is the true physics from the true state of the last context frame: whatever
    # actions score_counterfactuals hands the model must be the ones it hands the environment, step for step.
    from physworld.evaluation import counterfactual

    rng = np.random.default_rng(1)
    params = {"ou_theta": 0.1, "ou_sigma": 0.7, "scripted_fraction": 0.3, "scripted_noise": 0.3}
    scene = world.generate(rng, 5, 10, params)
    c, k = 3, 6

    def physics_model(phase, frames, actions, colors, c_, k_, device):
        rows = [
            int(np.flatnonzero((scene.frames[:, :c] == frames[i]).all((1, 2, 3, 4)))[0])
            for i in range(len(frames))
        ]
        pos, vel = scene.states[rows, c - 1, 0:2], scene.states[rows, c - 1, 2:4]
        out = []
        for t in range(k_):
            pos, vel = world.step(pos, vel, actions[:, c_ - 1 + t], world.Physics())
            out.append(pos)
        return np.stack(out, 1)

    monkeypatch.setattr(counterfactual, "predicted_positions", physics_model)
    arrays = {"frames": scene.frames, "states": scene.states, "actions": scene.actions}
    for kind in ("negate", "rotate"):
        s = counterfactual.score_counterfactuals(None, arrays, scene.params, {}, 5, c, k, kind, 2, "cpu")
        np.testing.assert_allclose(s["diff_err"], 0.0, atol=1e-9)
        assert np.all(s["diff_err_blind"] > 0) and np.all(s["found"] == 1.0)
        assert np.all(s["cosine"][np.isfinite(s["cosine"])] > 0.999)


def test_counterfactual_names_match_the_start_up_check():
    from physworld.evaluation.checks import COUNTERFACTUAL_ACTIONS
    from physworld.evaluation.counterfactual import COUNTERFACTUALS

    assert tuple(COUNTERFACTUALS) == COUNTERFACTUAL_ACTIONS


def test_evaluation_on_goal_reach_scores_counterfactuals(pred_run, tmp_path):
    from physworld.errors import ConfigError
    from physworld.evaluation.evaluate import evaluate_run

    common = ["dataset=goal_reach", "debug=tiny", f"paths.data_dir={tmp_path / 'data'}"]
    _, metrics = evaluate_run(
        pred_run, [*common, f"output_dir={tmp_path / 'e'}", "evaluation.probes.enabled=false"], "last.ckpt"
    )
    assert not any("probe_r2" in k for k in metrics)
    for t in range(1, 7):  # debug=tiny: 2 context frames, 6 predicted
        key = f"test/counterfactual_%s/goal_reach/t{t:02d}"
        assert 0.0 <= metrics[key % "found"] <= 1.0
        # a pendulum model draws no agent: the errors are NaN (dropped) where it was never found
        assert (
            (key % "diff_err" in metrics)
            == (key % "diff_err_blind" in metrics)
            == (metrics[key % "found"] > 0)
        )
    assert "test/counterfactual_found/t06" in metrics  # the mean over datasets
    with pytest.raises(
        ConfigError, match=r"evaluation.counterfactual.actions='mirror' is not accepted: one of"
    ):
        evaluate_run(pred_run, [*common, "evaluation.counterfactual.actions=mirror"], "last.ckpt")
    with pytest.raises(ConfigError, match=r"evaluation.probes.ridge=0 is not accepted: a positive number"):
        evaluate_run(pred_run, [*common, "evaluation.probes.ridge=0"], "last.ckpt")
