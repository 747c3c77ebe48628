"""The RL phase: agent heads, the lambda-return, the target-network schedule, real-environment episodes,
a tiny end-to-end run with its figures and metrics, and the one-line errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from physworld.checks import check_config
from physworld.envs.episodes import OraclePolicy, RandomPolicy, run_episodes
from physworld.errors import CheckpointError, ConfigError
from physworld.models.agent import Actor, Critic, RewardPredictor, lambda_returns, split_lambda_returns
from physworld.phases.rl import RLPhase
from physworld.run import build_datamodule, build_phase, plain, train
from tests.conftest import compose_config

RL = ("debug=tiny", "phase=rl", "dataset=goal_reach")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    """Tiny reconstruction then prediction checkpoints on goal_reach, trained once for the module."""
    tmp = tmp_path_factory.mktemp("wm")
    common = [
        "debug=tiny",
        "dataset=goal_reach",
        "logger=none",
        "test=false",
        f"paths.data_dir={tmp / 'data'}",
    ]
    train(compose_config(tmp / "rec", common))
    recon = tmp / "rec" / "run" / "checkpoints" / "last.ckpt"
    train(compose_config(tmp / "pred", [*common, "phase=prediction", f"phase.init_from={recon}"]))
    return {"reconstruction": recon, "prediction": tmp / "pred" / "run" / "checkpoints" / "last.ckpt"}


def test_heads_shapes_and_squashed_actions():
    z, f = torch.randn(5, 16, 8, 8), torch.randn(5, 32, 8, 8)
    assert RewardPredictor(16).forward(z).shape == (5,)
    assert Critic(32).forward(f).shape == (5,)
    actor = Actor(32, action_dim=2)
    action, entropy = actor.sample(f * 100)  # large inputs: tanh keeps actions inside [-1, 1]
    assert action.shape == (5, 2) and entropy.shape == (5,) and action.abs().max() <= 1
    mean, std = actor(f)
    assert (std >= actor.min_std).all() and (std <= actor.max_std).all()
    assert torch.equal(actor.act(f), torch.tanh(mean))


def test_model_summary_counts_the_actor_step_flops(make_cfg):
    from lightning.pytorch.utilities.model_summary import ModelSummary

    phase = build_phase(make_cfg(*RL))  # init_from is read at setup, not here
    summary = ModelSummary(phase)
    assert summary.total_flops > 0 and summary.flop_counts["actor"]


def test_throughput_counts_the_flops_of_a_step_past_reward_pretraining(make_cfg):
    phase = build_phase(make_cfg(*RL, "phase.reward_pretrain_steps=5", "phase.eval_every_n_steps=7"))
    assert phase.first_steady_step == 5  # batch 5 (from 0) is step 6, the first that imagines
    phase.train_steps += 3  # resumed after 3 steps: batch 2 is step 6
    assert phase.first_steady_step == 2
    phase.train_steps += 2  # after 5: batch 1 would be step 7, which also evaluates in the environment
    assert phase.first_steady_step == 2


def test_lambda_returns_match_hand_computation():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [2.0]])  # H = 2
    values = torch.tensor([[10.0], [20.0], [30.0]])
    g1 = 2.0 + gamma * 30.0
    g0 = 1.0 + gamma * ((1 - lam) * 20.0 + lam * g1)
    assert torch.allclose(lambda_returns(rewards, values, gamma, lam), torch.tensor([[g0], [g1]]))
    # lam = 0 is one-step TD, lam = 1 the discounted reward sum bootstrapped at the end
    assert torch.allclose(lambda_returns(rewards, values, gamma, 0.0)[0], torch.tensor([1.0 + gamma * 20.0]))
    full = 1.0 + gamma * 2.0 + gamma**2 * 30.0
    assert torch.allclose(lambda_returns(rewards, values, gamma, 1.0)[0], torch.tensor([full]))
    # the rewards' part (values zero) and the values' part add up to the whole
    from_rewards, from_values = split_lambda_returns(rewards, values, gamma, lam)
    assert torch.allclose(from_rewards, torch.tensor([[1.0 + gamma * lam * 2.0], [2.0]]))
    assert torch.allclose(from_rewards + from_values, lambda_returns(rewards, values, gamma, lam))


def test_oracle_beats_random_in_the_real_environment():
    seeds = list(range(6))
    random, oracle = run_episodes(RandomPolicy(0), seeds), run_episodes(OraclePolicy(), seeds)
    assert random.positions.shape == (6, 101, 2) and random.frames.shape == (101, 64, 64, 3)
    assert oracle.returns.mean() > random.returns.mean() + 10
    again = run_episodes(OraclePolicy(), seeds)
    assert np.array_equal(again.returns, oracle.returns)  # seeded episodes repeat exactly


def _rl_phase(make_cfg, world_model, *extra):
    cfg = make_cfg(*RL, f"phase.init_from={world_model['prediction']}", *extra)
    phase = RLPhase(model=plain(cfg.model), phase=plain(cfg.phase), dataset_names=["goal_reach"])
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return cfg, phase, dm


def _outside_trainer(phase: RLPhase) -> None:
    """Let training_step run without a Trainer: plain optimizers, backward, no clipping, no logging."""
    optimizers = phase.configure_optimizers()
    phase.optimizers = lambda: optimizers
    phase.manual_backward = lambda loss: loss.backward()
    phase.clip_gradients = lambda *a, **k: None
    phase.log = phase.log_dict = lambda *a, **k: None


def test_init_loads_world_model_and_target_moves_only_on_schedule(make_cfg, world_model):
    cfg, phase, dm = _rl_phase(
        make_cfg, world_model, "phase.reward_pretrain_steps=2", "phase.target_update_every=3"
    )
    phase.setup("fit")
    saved = torch.load(world_model["prediction"], weights_only=False)["state_dict"]
    assert torch.equal(phase.dynamics.head.weight, saved["dynamics.head.weight"])
    batch = phase.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    _outside_trainer(phase)
    phase.train()
    target = lambda: torch.cat([p.flatten() for p in phase.target_critic.parameters()]).clone()  # noqa: E731
    critic = lambda: torch.cat([p.flatten() for p in phase.critic.parameters()]).clone()  # noqa: E731
    snapshots = []
    for _ in range(7):
        phase.training_step(batch, 0)
        snapshots.append((int(phase.train_steps), target(), critic()))
    for (step, tgt, crit), (_, prev_tgt, _) in zip(snapshots[1:], snapshots[:-1]):
        if step % 3 == 0 and step > 2:
            assert torch.equal(tgt, crit)  # copied at this step
        else:
            assert torch.equal(tgt, prev_tgt)  # untouched between copies
    assert not torch.equal(snapshots[-1][1], snapshots[-1][2])  # the critic moved on since the last copy
    assert not phase.vqvae.training and not any(p.requires_grad for p in phase.dynamics.parameters())


def test_reward_pretraining_keeps_the_actor_still(make_cfg, world_model):
    _, phase, dm = _rl_phase(make_cfg, world_model, "phase.reward_pretrain_steps=3")
    batch = phase.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    _outside_trainer(phase)
    actor = [p.clone() for p in phase.actor.parameters()]
    reward = [p.clone() for p in phase.reward_model.parameters()]
    for _ in range(3):
        phase.training_step(batch, 0)
    assert all(torch.equal(a, b) for a, b in zip(actor, phase.actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(reward, phase.reward_model.parameters()))
    phase.training_step(batch, 0)  # the 4th step trains the actor
    assert not all(torch.equal(a, b) for a, b in zip(actor, phase.actor.parameters()))


def test_critic_grad_share_splits_the_actor_gradient_between_rewards_and_critic(make_cfg, world_model):
    _, phase, dm = _rl_phase(make_cfg, world_model)
    phase.setup("fit")
    batch = phase.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    start = phase.start_states(phase.compute_losses(batch)["latents"], batch["actions"])

    def share() -> float:
        torch.manual_seed(0)
        return float(phase.imagine(*start, split_gradient=True)["critic_grad_share"])

    mixed = share()
    assert 0.0 < mixed < 1.0  # both heads depend on the imagined states, so both pull on the actions
    last = phase.target_critic.head.mlp[-1]
    with torch.no_grad():  # a constant critic has no slope: the whole gradient is the rewards'
        saved = last.weight.clone()
        last.weight.zero_()
    assert share() == 0.0
    with torch.no_grad():  # a constant reward model: the whole gradient is the critic's
        last.weight.copy_(saved)
        phase.reward_model.head.mlp[-1].weight.zero_()
    assert share() == 1.0
    assert "critic_grad_share" not in phase.imagine(*start)  # computed only when asked (its extra backward)


def test_gradient_split_reports_each_part_and_sees_a_flat_critic(make_cfg, world_model):
    from physworld.data.cache import load_split, split_dir
    from physworld.evaluation.agent_gradient import gradient_split, markdown

    cfg, phase, dm = _rl_phase(make_cfg, world_model)
    phase.setup("fit")
    split = load_split(split_dir(dm.data_dir, "goal_reach", "val"))
    with torch.no_grad():
        phase.target_critic.head.mlp[-1].weight.zero_()  # a constant critic: its part has no gradient
    out = gradient_split(phase, split, windows=3)
    rows = {(r["at"], r["part"]): r for r in out["rows"]}
    assert set(rows) == {(a, p) for a in ("zero actions", "its own actions") for p in ("rewards", "critic")}
    assert rows["zero actions", "critic"]["norm"] == 0.0 and rows["its own actions", "critic"]["norm"] == 0.0
    assert rows["zero actions", "rewards"]["norm"] > 0.0
    assert set(out["returns"]) == {"toward the goal", "no push", "away from the goal", "the policy"}
    assert 0.0 <= out["policy"]["saturated"] <= 1.0
    assert markdown(out).count("\n| ") == 5  # the header and four rows


def test_gradient_split_script_refuses_a_world_model_checkpoint(world_model):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rl_gradient_split.py"), str(world_model["prediction"])],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "accepted an rl checkpoint" in done.stderr


def test_tiny_rl_run_writes_metrics_and_figures(make_cfg, world_model, tmp_path):
    cfg = make_cfg(
        *RL,
        f"phase.init_from={world_model['prediction']}",
        "phase.reward_pretrain_steps=1",
        "phase.eval_every_n_steps=1",
        "phase.eval_episodes=2",
        "phase.test_episodes=3",
        "phase.max_epochs=2",
    )
    metrics = train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == metrics
    for key in (
        "test/return_policy",
        "test/return_random",
        "test/return_oracle",
        "test/gap_closed",
        "train/critic_loss",
        "train/reward_loss_predicted",  # phase.reward_on_predicted: the reward model also fits predicted latents
    ):
        assert np.isfinite(saved[key]), key
    assert saved["test/return_oracle"] > saved["test/return_random"]
    # callbacks.throughput counted a step of manual optimisation: frames/s and FLOP/s are logged
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        logged = [row for row in csv.DictReader(f) if row["train/device/flops_per_sec"]]
    assert logged and float(logged[-1]["train/device/samples_per_sec"]) > 0
    assert float(logged[-1]["train/device/flops_per_sec"]) > 0
    images = tmp_path / "run" / "images"
    for name in ("rl_training.png", "rl_trajectory.png"):
        assert Image.open(images / name).format == "PNG"
    gif = Image.open(images / "rl_episode.gif")
    # 101 observations at 80 ms; GIF merges identical consecutive frames (an agent at rest), adding durations.
    durations = []
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(gif.info["duration"])
    assert gif.format == "GIF" and 2 <= gif.n_frames <= 101 and sum(durations) == 101 * 80


def test_rl_fast_dev_run(make_cfg, world_model):
    cfg = make_cfg(
        *RL,
        f"phase.init_from={world_model['prediction']}",
        "trainer.fast_dev_run=true",
        "logger=none",
        "phase.reward_pretrain_steps=0",
        "phase.test_episodes=2",
    )
    metrics = train(cfg)
    assert "train/actor_loss" in metrics and "test/return_policy" in metrics


def test_planner_is_scored_beside_the_actor_on_the_same_seeds(make_cfg, world_model):
    cfg = make_cfg(
        *RL,
        f"phase.init_from={world_model['prediction']}",
        "trainer.fast_dev_run=true",
        "logger=none",
        "phase.reward_pretrain_steps=0",
        "phase.test_episodes=2",
        "phase.eval_policies=[actor,planner]",
        "phase.planner.horizon=3",
        "phase.planner.candidates=8",
        "phase.planner.elites=2",
        "phase.planner.iterations=2",
    )
    metrics = train(cfg)
    for policy in ("policy", "planner"):  # the actor keeps the keys it always had
        assert np.isfinite(metrics[f"test/return_{policy}"]) and metrics[f"test/{policy}_ms_per_action"] > 0
    assert np.isfinite(metrics["test/gap_closed_planner"]) and np.isfinite(metrics["test/planner_regret"])
    assert metrics["test/return_planner"] != metrics["test/return_policy"]  # two different policies played


def test_planner_policy_acts_through_the_model_with_its_settings(make_cfg, world_model):
    from physworld.envs.agent import PlannerPolicy

    _, phase, _ = _rl_phase(
        make_cfg,
        world_model,
        "phase.planner.horizon=4",
        "phase.planner.candidates=6",
        "phase.planner.elites=2",
    )
    phase.setup("fit")
    steps = []
    step = phase.dynamics.step
    phase.dynamics.step = lambda *a, **k: steps.append(a[0].shape[0]) or step(*a, **k)
    policy = PlannerPolicy(phase.eval())
    policy.reset(2)
    observations = np.zeros((2, 64, 64, 3), np.uint8)
    action = policy(observations, [{}, {}])
    assert action.shape == (2, 2) and np.abs(action).max() <= 1.0
    assert steps == [2 * 6] * (4 * phase.settings.planner.iterations)  # 2 envs x 6 candidates
    # warm start (the default): the next step's search starts from this plan shifted by one step; a new episode
    # starts from 0 again
    assert policy.mean.shape == (2, 4, 2) and (policy.mean[:, -1] == 0).all()
    seen = []
    plan = phase.plan
    phase.plan = lambda z, state, mean=None: seen.append(mean) or plan(z, state, mean)
    policy(observations, [{}, {}])
    assert seen[0] is not None and seen[0].shape == (2, 4, 2)
    policy.reset(2)
    policy(observations, [{}, {}])
    assert seen[1] is None
    phase.settings = replace(phase.settings, planner=replace(phase.settings.planner, warm_start=False))
    policy.reset(2)
    policy(observations, [{}, {}])
    policy(observations, [{}, {}])
    assert seen[2:] == [None, None] and policy.mean is None


def test_bad_rl_inputs_fail_with_one_line(make_cfg, world_model):
    with pytest.raises(ConfigError, match="dataset.name='pendulum' is not accepted: goal_reach"):
        check_config(make_cfg("phase=rl", "dataset=pendulum", f"phase.init_from={world_model['prediction']}"))
    with pytest.raises(ConfigError, match="phase.init_from=None"):
        check_config(make_cfg(*RL))
    good = (*RL, f"phase.init_from={world_model['prediction']}")
    for override, says in (
        ("phase.eval_policies=[actor,oracle]", r"phase.eval_policies=\['actor', 'oracle'\] is not accepted"),
        ("phase.eval_policies=[]", "a non-empty list"),
        ("phase.planner.elites=600", "at most phase.planner.candidates=16"),
        ("phase.planner.warm_start=1", "phase.planner.warm_start=1 is not accepted: true or false"),
        ("phase.eval_policies=[planner]", "phase.monitor='val/policy_regret' is not accepted"),
    ):
        with pytest.raises(ConfigError, match=says):
            check_config(make_cfg(*good, override))
    check_config(make_cfg(*good, "phase.eval_policies=[planner]", "phase.monitor=val/planner_regret"))
    with pytest.raises(ConfigError, match=r"phase.gamma=1.5"):
        check_config(make_cfg(*RL, f"phase.init_from={world_model['prediction']}", "phase.gamma=1.5"))
    _, phase, _ = _rl_phase(make_cfg, world_model)
    phase.settings = replace(phase.settings, init_from=str(world_model["reconstruction"]))
    with pytest.raises(CheckpointError, match="has no dynamics"):
        phase.setup("fit")
