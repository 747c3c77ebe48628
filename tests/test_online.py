"""Learning online (pipeline.online, src/physworld/online.py): rounds that collect Pendulum-v1 episodes with the
previous round's agent, grow the dataset, train on it and resume without collecting again."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from physworld.errors import ConfigError
from physworld.online import OnlineSettings, collect_round, curve, play, random_policy
from tests.conftest import run

pytest.importorskip("gymnasium")

TINY = [
    "scripts/pipeline.py",
    "experiment=gym_pendulum",
    "debug=tiny",
    "pipeline.online.rounds=2",
    "pipeline.online.episode_frames=12",  # 11 steps an episode
    "pipeline.online.first_episodes=4",
    "pipeline.online.episodes_per_round=2",
    "pipeline.online.val_episodes=1",
    "pipeline.online.test_episodes=1",
    "dataset.num_frames=8",
    "phase.max_epochs=1",
    "++phase.reward_pretrain_steps=1",  # ++: the agent step's keys, which the world step's phase lacks
    "++phase.eval_episodes=1",
    "++phase.test_episodes=2",
    "++phase.eval_max_steps=10",
    "pipeline.evaluate_sequences=2",
]


def test_online_rounds_collect_with_the_agent_grow_the_dataset_and_resume(tmp_path):
    args = [*TINY, f"paths.data_dir={tmp_path / 'data'}"]  # debug=tiny's data folder is the repository's
    first = run(args, tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    root = tmp_path / "outputs" / "pipelines" / "gym_pendulum"
    assert list(json.loads((root / "pipeline.json").read_text())) == [
        "r00_world",
        "r00_agent",
        "r01_world",
        "r01_agent",
    ]
    r0 = json.loads((root / "rounds" / "r00.json").read_text())
    r1 = json.loads((root / "rounds" / "r01.json").read_text())
    assert r0["policy"] == "random" and r0["policy_steps"] == 0 and r0["env_steps"] == 6 * 11
    assert r1["policy"] == str(root / "r00_agent" / "checkpoints" / "best.ckpt")
    assert r1["env_steps"] == r1["policy_steps"] == 2 * 11 and r1["exploration_noise"] == 0.3
    train = sorted(p.name for p in (root / "episodes" / "train").iterdir())
    assert train == [f"r00_{i:05d}.npz" for i in range(4)] + ["r01_00000.npz", "r01_00001.npz"]
    assert [len(list((root / "episodes" / s).iterdir())) for s in ("val", "test")] == [1, 1]
    # round 1's world model trained on the grown dataset: its cache split holds round 1's episodes too
    manifests = [json.loads(m.read_text()) for m in (tmp_path / "data").rglob("train/manifest.json")]
    assert any(sorted(m["source"]["episodes"]) == train for m in manifests)
    assert (
        "r00_world/checkpoints/best.ckpt"
        in OmegaConf.load(root / "r01_world" / "config.yaml").phase.init_from
    )
    # the pipeline's metrics.json: each round's return against environment and policy steps
    metrics = json.loads((root / "metrics.json").read_text())
    rows = curve(metrics)
    assert [(r["round"], r["env_steps"], r["policy_steps"]) for r in rows] == [(0, 66, 0), (1, 88, 22)]
    agent = json.loads((root / "r01_agent" / "metrics.json").read_text())
    assert rows[1]["return_policy"] == agent["test/return_policy"]
    assert metrics["online/best_return_policy"] == max(r["return_policy"] for r in rows)
    # ... and the loggers' (logger=csv here): each round once, at its environment steps
    with open(root / "csv" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert [(int(r["step"]), float(r["online/return_policy"])) for r in logged] == [
        (66, rows[0]["return_policy"]),
        (88, rows[1]["return_policy"]),
    ]
    report = (root / "report.md").read_text()
    assert (
        "## Learning online" in report
        and (root / "report_files" / "online_return_vs_env_steps.png").is_file()
    )
    assert "Training run `.`" not in report  # the pipeline folder's metrics.json is not a run's

    # A rerun: every round is done, nothing is collected again
    stamps = {p: p.stat().st_mtime_ns for p in (root / "episodes").rglob("*.npz")}
    again = run(args, tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "collecting" not in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in (root / "episodes").rglob("*.npz")} == stamps
    assert json.loads((root / "metrics.json").read_text()) == metrics
    assert len((root / "csv" / "metrics.csv").read_text().splitlines()) == 3  # the header, a row per round

    # Killed while collecting round 1 (its record not written) after its agent step: the rerun removes round 1's
    # files, collects it again with round 0's agent and runs the round's steps
    (root / "rounds" / "r01.json").unlink()
    (root / "episodes" / "train" / "r01_00001.npz").unlink()
    for step in ("r01_world", "r01_agent"):
        (root / step / "metrics.json").unlink()
        for ckpt in (root / step / "checkpoints").glob("*.ckpt"):
            ckpt.unlink()
    resumed = run(args, tmp_path, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "round 1: collecting episodes with the agent of r00_agent" in resumed.stdout + resumed.stderr
    assert sorted(p.name for p in (root / "episodes" / "train").iterdir()) == train
    assert json.loads((root / "rounds" / "r01.json").read_text())["env_steps"] == 22
    for p, stamp in stamps.items():  # round 0's episodes untouched
        if p.name.startswith("r00"):
            assert p.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pipeline.online.rounds=0", "pipeline.online.rounds=0 is not accepted: a positive integer"),
        ("pipeline.online.episode_frames=1", "pipeline.online.episode_frames=1 is not accepted: 2 or more"),
        ("pipeline.online.exploration_noise=-1", "pipeline.online.exploration_noise=-1 is not accepted"),
        ("+pipeline.online.episodes=3", "pipeline.online.episodes is not a setting"),
        ("pipeline.online.env_id=CartPole-v1", "pipeline.online.env_id='CartPole-v1' is not accepted"),
    ],
)
def test_bad_online_settings_are_one_line(tmp_path, override, message):
    args = [
        "scripts/pipeline.py",
        "experiment=gym_pendulum",
        "debug=tiny",
        f"paths.data_dir={tmp_path}",
        override,
    ]
    result = run(args, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not list((tmp_path / "outputs").rglob("*.npz"))  # refused before collecting anything


def test_a_round_without_an_agent_is_refused_in_one_line(tmp_path):
    steps = "pipeline.steps=[{name: world, overrides: ['phase=prediction']}]"
    args = [
        "scripts/pipeline.py",
        "experiment=gym_pendulum",
        "debug=tiny",
        f"paths.data_dir={tmp_path}",
        steps,
    ]
    result = run(args, tmp_path)
    assert result.returncode == 2 and "no step of a round trains an agent" in result.stderr


def test_rl_refuses_episodes_without_an_environment(make_cfg):
    from physworld.checks import check_rl

    cfg = make_cfg("phase=rl", "dataset=episodes", "dataset.path=/nowhere", "phase.init_from=/x.ckpt")
    with pytest.raises(
        ConfigError, match="dataset.name='episodes' is not accepted: goal_reach, gym, or episodes"
    ):
        check_rl(cfg)
    cfg.dataset.env_id = "Pendulum-v1"
    check_rl(cfg)  # played in Pendulum-v1: accepted


def test_play_records_the_episode_format_with_clipped_noise():
    policy = random_policy(0, 0, "Pendulum-v1")
    rng = np.random.default_rng(0)
    episodes = play("Pendulum-v1", policy, [3, 4], frames=6, noise=5.0, rng=rng)
    assert len(episodes) == 2
    for e in episodes:
        assert e["frames"].shape == (6, 64, 64, 3) and e["frames"].dtype == np.uint8
        assert e["actions"].shape == (6, 2) and np.abs(e["actions"]).max() <= 1.0
        assert np.all(e["actions"][:, 1] == 0)  # Pendulum-v1 plays one column: the other stays 0
        assert e["rewards"].shape == (6,) and e["rewards"][0] == 0 and np.all(e["rewards"][1:] < 0)
        assert e["states"].shape == (6, 3)
    assert not np.array_equal(episodes[0]["states"], episodes[1]["states"])  # their own reset seeds


def test_played_frames_are_the_frames_the_environment_rendered_at_each_step():
    # Replayed with the recorded actions, the environment renders the recorded frames, one by one (each frame
    # its own: recorded as a view of the batch of observations, every frame became the episode's last).
    from physworld.envs.gym_pixels import PixelEnv

    policy, rng = random_policy(0, 0, "Pendulum-v1"), np.random.default_rng(0)
    (episode,) = play("Pendulum-v1", policy, [3], frames=6, noise=0.0, rng=rng)
    env = PixelEnv("Pendulum-v1", max_steps=6)
    frames = [env.reset(seed=3)[0]]
    for action in episode["actions"][:-1]:
        frames.append(env.step(action)[0])
    env.close()
    np.testing.assert_array_equal(episode["frames"], np.stack(frames))
    assert len({f.tobytes() for f in episode["frames"]}) == 6  # the pendulum moves: no two frames alike


def test_a_collected_round_is_not_collected_again(tmp_path):
    settings = OnlineSettings.from_config(
        OmegaConf.create(
            {
                "env_id": "Pendulum-v1",
                "rounds": 1,
                "episode_frames": 4,
                "first_episodes": 2,
                "episodes_per_round": 1,
                "val_episodes": 1,
                "test_episodes": 1,
                "exploration_noise": 0.1,
            }
        )
    )
    record = collect_round(tmp_path, 0, settings, seed=0, agent=None)
    assert record["env_steps"] == 4 * 3 and record["episodes"] == {"train": 2, "val": 1, "test": 1}
    file = tmp_path / "episodes" / "train" / "r00_00000.npz"
    stamp = file.stat().st_mtime_ns
    assert collect_round(tmp_path, 0, settings, seed=0, agent=None) == record
    assert file.stat().st_mtime_ns == stamp
    # the same seed plays the same episodes elsewhere; another seed others
    for other, same in ((tmp_path / "again", True), (tmp_path / "seed1", False)):
        collect_round(other, 0, settings, seed=0 if same else 1, agent=None)
        a, b = (np.load(root / "episodes" / "train" / "r00_00001.npz") for root in (tmp_path, other))
        assert np.array_equal(a["states"], b["states"]) == same
        assert np.array_equal(a["actions"], b["actions"]) == same
