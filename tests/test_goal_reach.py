"""goal_reach: the agent environment (physworld/GoalReach-v0) and its dataset share physics and pixels."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

import physworld.envs
from physworld.data.scenes import goal_reach
from physworld.envs import GOAL_REACH_ID, GoalReachEnv, oracle_action
from physworld.paths import CONFIG_DIR

PARAMS = yaml.safe_load((CONFIG_DIR / "dataset" / "goal_reach.yaml").read_text())["scene"]
N, T = 16, 30


@pytest.fixture(scope="module")
def scene():
    return goal_reach.generate(np.random.default_rng(0), N, T, PARAMS)


def episode_return(env, seed: int, policy) -> float:
    _, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(policy(info))
        total += reward
        done = terminated or truncated
    return total


def test_check_env_passes():
    for render_mode in (None, "rgb_array"):
        env = gymnasium.make(GOAL_REACH_ID, render_mode=render_mode)
        check_env(env.unwrapped)
        with pytest.warns(UserWarning, match="different from the unwrapped"):
            check_env(env)  # the registered wrappers (TimeLimit, order enforcing) pass too


def test_make_and_register_once():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(physworld.envs)  # registering again must be a no-op, not an error or a warning
    env = gymnasium.make(GOAL_REACH_ID)
    assert env.spec.max_episode_steps == 100
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and obs in env.observation_space


def test_seeded_reset_is_reproducible():
    env = GoalReachEnv()
    a, info_a = env.reset(seed=3)
    b, info_b = env.reset(seed=3)
    c, info_c = env.reset(seed=4)
    assert a.tobytes() == b.tobytes() and np.array_equal(info_a["goal_pos"], info_b["goal_pos"])
    assert a.tobytes() != c.tobytes() and not np.array_equal(info_a["goal_pos"], info_c["goal_pos"])
    assert np.array_equal(info_a["agent_vel"], [0.0, 0.0])


def test_reward_is_minus_distance_over_box_side_and_episode_truncates_at_100():
    env = gymnasium.make(GOAL_REACH_ID)
    _, info = env.reset(seed=1)
    env.action_space.seed(1)
    for t in range(1, 101):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        distance = np.hypot(*(info["agent_pos"] - info["goal_pos"]))
        assert reward == pytest.approx(-distance / 64, abs=1e-12)
        assert not terminated and truncated == (t == 100)


@pytest.mark.parametrize("action", [(1, 1), (-1, -1), (1, -1), (-5, 7)])
def test_agent_stays_inside_under_extreme_actions(action):
    env = GoalReachEnv()
    _, info = env.reset(seed=0)
    r = env.physics.agent_radius
    for _ in range(100):
        _, _, _, _, info = env.step(np.asarray(action, np.float32))
        assert ((info["agent_pos"] >= r) & (info["agent_pos"] <= 64 - r)).all()
        assert np.hypot(*info["agent_vel"]) <= env.physics.max_speed + 1e-9
    # Pushed into a corner, it rests there.
    corner = [64 - r if a > 0 else r for a in action]
    np.testing.assert_allclose(info["agent_pos"], corner, atol=0.1)


def test_dynamics_respond_to_force():
    physics = goal_reach.Physics()
    pos, vel = np.array([[10.0, 32.0]]), np.zeros((1, 2))
    vx = []
    for _ in range(12):
        pos, vel = goal_reach.step(pos, vel, np.array([[1.0, 0.0]]), physics)
        vx.append(vel[0, 0])
        assert vel[0, 1] == 0.0
    assert np.all(np.diff(vx) > 0) and 0 < vx[-1] <= physics.max_speed
    # The terminal speed of a one-axis push is force_scale / (mass drag) = 3 < max_speed.
    for _ in range(200):
        pos, vel = goal_reach.step(pos, vel, np.array([[0.0, 0.0]]), physics)  # drag alone stops it
    assert np.abs(vel).max() < 1e-3
    fast = np.array([[0.0, 0.0]])
    for _ in range(60):
        _, fast = goal_reach.step(np.array([[32.0, 32.0]]), fast, np.array([[1.0, 1.0]]), physics)
    assert np.hypot(*fast[0]) == pytest.approx(physics.max_speed)  # the diagonal push is capped


def test_oracle_beats_random_by_a_wide_margin():
    env = gymnasium.make(GOAL_REACH_ID)
    oracle = [
        episode_return(env, s, lambda i: oracle_action(i["agent_pos"], i["agent_vel"], i["goal_pos"]))
        for s in range(5)
    ]
    random = [episode_return(env, s, lambda i: env.action_space.sample()) for s in range(5)]
    assert np.mean(oracle) > -12 and np.mean(random) < -30
    assert np.mean(oracle) > np.mean(random) + 20


@pytest.mark.parametrize(
    "physics",
    [
        goal_reach.Physics(),
        goal_reach.Physics(drag=0.1, force_scale=0.25, max_speed=3.0),
        goal_reach.Physics(mass=3.0),
    ],
)
def test_oracle_gains_follow_the_physics(physics):
    """Critically damped near the goal for any physics, and the oracle then reaches the goal and stays."""
    kp, kd = goal_reach.oracle_gains(physics)
    per_unit = physics.force_scale / physics.mass
    assert kp * per_unit == pytest.approx(goal_reach.ORACLE_STIFFNESS)
    assert kd * per_unit + physics.drag == pytest.approx(2 * np.sqrt(goal_reach.ORACLE_STIFFNESS))
    pos, vel, goal = np.array([[10.0, 12.0]]), np.zeros((1, 2)), np.array([[40.0, 45.0]])
    for _ in range(100):
        pos, vel = goal_reach.step(pos, vel, oracle_action(pos, vel, goal, physics), physics)
    assert np.hypot(*(pos - goal)[0]) < 1.0


def test_oracle_action_is_bounded_and_points_at_the_goal():
    pos, goal = np.array([[10.0, 10.0], [50.0, 20.0]]), np.array([[60.0, 35.0], [48.0, 20.5]])
    u = oracle_action(pos, np.zeros((2, 2)), goal)
    assert u.dtype == np.float32 and np.abs(u).max() <= 1.0 and np.abs(u[0]).max() == 1.0
    np.testing.assert_allclose(u[0, 1] / u[0, 0], 25 / 50, rtol=1e-6)  # scaled, never rotated


def test_scene_shapes_and_dtypes(scene):
    assert scene.frames.shape == (N, T, 64, 64, 3) and scene.frames.dtype == np.uint8
    assert scene.states.shape == (N, T, 6) and scene.states.dtype == np.float32
    assert scene.actions.shape == (N, T, 2) and scene.actions.dtype == np.float32
    assert scene.rewards.shape == (N, T) and scene.rewards.dtype == np.float32
    assert scene.params["object_colors"].shape == (N, 2, 3)
    assert np.abs(scene.actions).max() <= 1.0 and scene.params["scripted"].any()
    travelled = np.hypot(*np.moveaxis(scene.states[:, -1, :2] - scene.states[:, 0, :2], -1, 0))
    assert np.median(travelled) > 5.0  # the policies really move the agent


def test_scene_is_deterministic():
    a, b, c = (goal_reach.generate(np.random.default_rng(seed), 3, 6, PARAMS) for seed in (5, 5, 6))
    for key in ("frames", "states", "actions", "rewards"):
        assert getattr(a, key).tobytes() == getattr(b, key).tobytes(), key
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.frames.tobytes() != c.frames.tobytes() and not np.array_equal(a.actions, c.actions)


def test_scene_rewards_match_states(scene):
    distance = np.hypot(*np.moveaxis(scene.states[..., 0:2] - scene.states[..., 4:6], -1, 0))
    np.testing.assert_allclose(scene.rewards, -distance / 64, atol=1e-5)
    assert (scene.states[..., 4:6] == scene.states[:, :1, 4:6]).all()  # the goal stays put


def test_config_physics_are_the_env_defaults():
    assert goal_reach.physics_from(PARAMS) == GoalReachEnv().physics == goal_reach.Physics()


def test_env_replays_a_scene_sequence_byte_for_byte(scene):
    """actions[t] acts after frame t: stepping the env with them reproduces frames 1.. and rewards 1..."""
    env = GoalReachEnv()
    # The exact float64 start: generate() draws it first from its rng (states hold float32 copies).
    pos, vel, goal = goal_reach.initial_state(np.random.default_rng(0), N, env.physics)
    for i in (int(np.argmin(scene.params["scripted"])), int(np.argmax(scene.params["scripted"]))):
        start = {"agent_pos": pos[i], "agent_vel": vel[i], "goal_pos": goal[i]}
        obs, _ = env.reset(seed=0, options=start)
        assert obs.tobytes() == scene.frames[i, 0].tobytes()
        for t in range(T - 1):
            obs, reward, _, _, info = env.step(scene.actions[i, t])
            assert obs.tobytes() == scene.frames[i, t + 1].tobytes()
            assert reward == pytest.approx(scene.rewards[i, t + 1], abs=1e-5)
            np.testing.assert_allclose(info["agent_pos"], scene.states[i, t + 1, 0:2], atol=1e-4)


def test_make_imports_the_package_itself_in_a_fresh_interpreter():
    # Gymnasium 1.x has no plugin entry points: `module:id` makes gymnasium import the registering module.
    code = (
        "import sys, gymnasium\n"
        "assert 'physworld.envs' not in sys.modules\n"
        f"env = gymnasium.make('physworld.envs:{GOAL_REACH_ID}')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(obs.shape, env.spec.max_episode_steps)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[0] == "(64, 64, 3) 100"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_with_4_envs_steps_like_4_single_envs(mode):
    vec = gymnasium.make_vec(f"physworld.envs:{GOAL_REACH_ID}", num_envs=4, vectorization_mode=mode)
    singles = [gymnasium.make(GOAL_REACH_ID) for _ in range(4)]
    seeds = [10, 11, 12, 13]
    try:
        obs, info = vec.reset(seed=seeds)
        assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
        for i, (env, seed) in enumerate(zip(singles, seeds)):
            single, single_info = env.reset(seed=seed)
            assert obs[i].tobytes() == single.tobytes()
            np.testing.assert_array_equal(info["goal_pos"][i], single_info["goal_pos"])
        actions = np.random.default_rng(0).uniform(-1, 1, (20, 4, 2)).astype(np.float32)
        for t, action in enumerate(actions):
            obs, reward, terminated, truncated, info = vec.step(action)
            assert obs.shape == (4, 64, 64, 3) and reward.shape == (4,)
            for i, env in enumerate(singles):
                single, r, term, trunc, single_info = env.step(action[i])
                assert obs[i].tobytes() == single.tobytes(), (t, i)
                assert reward[i] == r and terminated[i] == term and truncated[i] == trunc
                np.testing.assert_array_equal(info["agent_pos"][i], single_info["agent_pos"])
        assert len({obs[i].tobytes() for i in range(4)}) == 4  # four different episodes, not one copied
    finally:
        vec.close()
