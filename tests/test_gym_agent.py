"""The agent in a Gymnasium environment (dataset=gym): pixels in through the world model's encoder, evaluated in
the real environment next to a random policy and the reference controller (envs/gym_pixels.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from physworld.checks import check_config
from physworld.envs.episodes import RandomPolicy, run_episodes
from physworld.envs.gym_pixels import PixelEnv, ReferencePolicy
from physworld.envs.pendulum import pendulum_swing_up
from physworld.errors import ConfigError
from physworld.run import train
from tests.conftest import compose_config

GYM = ("debug=tiny", "dataset=gym", "logger=none")


@pytest.fixture(scope="module")
def pendulum_model(tmp_path_factory):
    """A tiny world model (VQ-VAE and dynamics trained together) on recorded Pendulum-v1 episodes."""
    tmp = tmp_path_factory.mktemp("gym_wm")
    overrides = [*GYM, "test=false", f"paths.data_dir={tmp / 'data'}", "phase=prediction"]
    train(compose_config(tmp, [*overrides, "phase.freeze_vqvae=false", "phase.recon_weight=1"]))
    return tmp / "run" / "checkpoints" / "last.ckpt"


def test_pendulum_pixels_with_the_reference_controller_and_a_random_policy():
    make = lambda: PixelEnv("Pendulum-v1", max_steps=60)  # noqa: E731
    seeds = [0, 1, 2]
    reference = run_episodes(ReferencePolicy(pendulum_swing_up), seeds, make_env=make)
    random = run_episodes(RandomPolicy(0, np.array([1.0, 0.0])), seeds, make_env=make)
    assert reference.frames.shape == (61, 64, 64, 3) and reference.frames.std() > 5  # the rod is drawn
    assert reference.positions is None and reference.actions_taken == 60 * 3
    assert reference.returns.mean() > random.returns.mean() + 50
    again = run_episodes(ReferencePolicy(pendulum_swing_up), seeds, make_env=make)
    assert np.array_equal(again.returns, reference.returns)  # seeded episodes repeat exactly


def test_only_the_environment_s_actions_are_played():
    env = PixelEnv("Pendulum-v1")
    env.reset(seed=0)
    state = env.env.unwrapped.state.copy()
    env.step(np.array([0.5, 0.9]))  # the second column is not Pendulum's: ignored
    other = PixelEnv("Pendulum-v1")
    other.reset(seed=0)
    other.step(np.array([0.5, -0.9]))
    assert np.array_equal(env.env.unwrapped.state, other.env.unwrapped.state)
    assert not np.array_equal(env.env.unwrapped.state, state)
    assert env.action_dim == 1


def test_rl_on_pendulum_is_evaluated_in_the_real_environment(make_cfg, pendulum_model, tmp_path):
    cfg = make_cfg(
        "phase=rl",
        *GYM,
        f"phase.init_from={pendulum_model}",
        "phase.reward_pretrain_steps=1",
        "phase.eval_every_n_steps=0",
        "phase.eval_episodes=2",
        "phase.test_episodes=2",
        "phase.eval_max_steps=30",
        "phase.eval_policies=[actor,planner]",
        "phase.planner.horizon=3",
        "phase.planner.candidates=8",
        "phase.planner.elites=2",
        "phase.planner.iterations=2",
        "logger=csv",
    )
    metrics = train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == metrics
    for key in ("return_policy", "return_planner", "return_random", "return_oracle", "gap_closed"):
        assert np.isfinite(metrics[f"test/{key}"]), key
    assert np.isfinite(metrics["test/gap_closed_planner"]) and metrics["test/planner_ms_per_action"] > 0
    assert metrics["test/return_oracle"] > metrics["test/return_random"]  # the swing-up beats random pushes
    images = tmp_path / "run" / "images"
    assert (images / "rl_episode.gif").is_file() and not (images / "rl_trajectory.png").exists()


def test_an_environment_without_a_reference_needs_another_monitor(make_cfg, pendulum_model):
    car = (*GYM, "phase=rl", f"phase.init_from={pendulum_model}", "dataset.env_id=MountainCarContinuous-v0")
    with pytest.raises(ConfigError, match="phase.monitor='val/policy_regret' is not accepted: Mountain"):
        check_config(make_cfg(*car))
    check_config(make_cfg(*car, "phase.monitor=val/reward_loss"))
    with pytest.raises(ConfigError, match="phase.eval_max_steps=0 is not accepted"):
        check_config(
            make_cfg(*GYM, "phase=rl", f"phase.init_from={pendulum_model}", "phase.eval_max_steps=0")
        )


def test_the_agent_moves_only_the_environment_s_actions(make_cfg, pendulum_model):
    import torch

    from physworld.run import build_phase

    phase = build_phase(make_cfg("phase=rl", *GYM, f"phase.init_from={pendulum_model}"))
    assert phase.action_mask.tolist() == [1.0, 0.0]  # Pendulum-v1 has one action; the dataset's other is 0
    z, hidden = torch.randn(3, 16, 16, 16), torch.randn(3, 16, 16, 16)
    assert (phase(z, hidden)[:, 1] == 0).all()
    planned = phase.plan(z, phase.dynamics.initial_state(z)).action
    assert (planned[:, 1] == 0).all() and planned.shape == (3, 2)
