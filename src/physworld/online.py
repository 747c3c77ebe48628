"""Learning online in a Gymnasium environment: rounds of collecting episodes with the current agent, fine-tuning
the world model on all episodes so far and training the agent in imagination (`pipeline.online`, run by
physworld.pipeline; e.g. `python scripts/pipeline.py experiment=gym_pendulum`).

Round r, in the pipeline folder:

1. collect: play `pipeline.online.episodes_per_round` training episodes in the environment (round 0:
   `first_episodes`, with the random policy, and also the `val_episodes` and `test_episodes` the world model is
   validated and tested on, which stay fixed) with the agent of round r - 1 (its best.ckpt: the actor's
   tanh(mean) on the encoded frames, as evaluated in phase=rl) plus Gaussian exploration noise of std
   `exploration_noise` in the model's action range, clipped to [-1, 1]. The episodes go to
   `episodes/{train,val,test}/r<round>_<i>.npz` in the episode format of data/sources/episodes.py, which every
   step reads as dataset=episodes; then `rounds/r<round>.json` records what was collected. That file is written
   last: a round that has it is never collected again, one without it (killed while collecting) has its files
   removed and is collected afresh;
2. the round's steps (`pipeline.steps`, run folders `r<round>_<name>`): typically the world model, fine-tuned
   from the previous round's (`init_from_previous_round`), and the agent, trained in imagination and evaluated
   in the real environment (its test/ returns);
3. the pipeline's metrics.json gets the round's row (`round_metrics`): environment steps so far, policy steps so
   far and the agent's real-environment returns.

Environment steps count every env.step() that collected data (all policies, val and test episodes included;
evaluation episodes are not collected and not counted); policy steps count those whose action the learned agent
chose (from round 1 on): the two are told apart as in sheeprl.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, open_dict

from physworld.atomic import write_text_atomic
from physworld.data.cache import ACTION_DIM
from physworld.errors import ConfigError
from physworld.phases import declared
from physworld.require import non_negative_int, non_negative_number, positive_int, require

EPISODES = "episodes"  # the folder of collected episodes in the pipeline folder (dataset.path of every step)
ROUNDS = "rounds"  # the folder of each round's collection record
SPLITS = ("train", "val", "test")
# The agent step's test metrics copied into the pipeline's metrics.json for each round (those it has).
RETURNS = (
    "return_policy",
    "return_random",
    "return_oracle",
    "gap_closed",
    "return_planner",
    "gap_closed_planner",
)


@dataclass(frozen=True)
class OnlineSettings:
    env_id: str  # the Gymnasium environment (as dataset=gym's dataset.env_id)
    rounds: int  # collect-train-evaluate rounds
    episode_frames: int  # frames per collected episode (one more than its steps)
    first_episodes: int  # training episodes of round 0, played by the random policy
    episodes_per_round: int  # training episodes of every later round, played by the previous round's agent
    val_episodes: int  # validation episodes of the world model (round 0, random policy)
    test_episodes: int  # test episodes of the world model (round 0, random policy)
    exploration_noise: float  # std of the Gaussian noise added to the agent's actions while collecting

    @classmethod
    def from_config(cls, node: DictConfig) -> OnlineSettings:
        """The settings of `pipeline.online`, or one ConfigError line naming the first bad key."""
        cfg = DictConfig({"pipeline": {"online": node}})
        require(cfg, "pipeline.online.env_id", lambda v: isinstance(v, str) and v != "", "a Gymnasium id")
        for key in ("rounds", "episode_frames", "first_episodes", "val_episodes", "test_episodes"):
            require(cfg, f"pipeline.online.{key}", positive_int, "a positive integer")
        require(cfg, "pipeline.online.episodes_per_round", non_negative_int, "a non-negative integer")
        require(cfg, "pipeline.online.exploration_noise", non_negative_number, "a non-negative number")
        if node.episode_frames < 2:
            raise ConfigError(
                f"pipeline.online.episode_frames={node.episode_frames} is not accepted: 2 or more (an episode "
                "of one frame has no step)"
            )
        from physworld.data.sources.gym import open_env

        try:  # an unknown id, a discrete action space, no rgb_array: refused before anything is collected
            open_env(node.env_id).close()
        except ConfigError as err:
            raise ConfigError(str(err).replace("dataset.env_id", "pipeline.online.env_id", 1)) from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(node) - known)
        if unknown:
            raise ConfigError(f"pipeline.online.{unknown[0]} is not a setting: accepted {sorted(known)}")
        return cls(**{key: node[key] for key in known})

    def episodes(self, round_index: int) -> dict[str, int]:
        """Episodes collected per split in a round."""
        if round_index == 0:
            return {"train": self.first_episodes, "val": self.val_episodes, "test": self.test_episodes}
        return {"train": self.episodes_per_round, "val": 0, "test": 0}


def round_name(round_index: int) -> str:
    return f"r{round_index:02d}"


def collected(root: Path, round_index: int) -> dict | None:
    """The collection record of a round (rounds/r<round>.json), None when it has not been collected."""
    file = root / ROUNDS / f"{round_name(round_index)}.json"
    return json.loads(file.read_text()) if file.is_file() else None


def collect_round(
    root: Path, round_index: int, settings: OnlineSettings, seed: int, agent: Path | None
) -> dict:
    """Collect round `round_index`'s episodes into root/episodes (see the module docstring) unless its record
    exists; return the record. `agent`: the checkpoint whose actor plays (None: the random policy)."""
    done = collected(root, round_index)
    if done is not None:
        return done
    name = round_name(round_index)
    for split in SPLITS:  # a collection killed before its record: its files are removed, it starts again
        for leftover in (root / EPISODES / split).glob(f"{name}_*.npz"):
            leftover.unlink()
    staging = root / EPISODES / f".{name}-collecting"  # hidden: dataset=episodes ignores it
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    policy = random_policy(seed, round_index, settings.env_id) if agent is None else agent_policy(agent)
    noise = 0.0 if agent is None else settings.exploration_noise
    counts, env_steps = settings.episodes(round_index), 0
    for split, n in counts.items():
        (staging / split).mkdir(parents=True, exist_ok=True)
        if n == 0:
            continue
        seeds, rng = streams(seed, settings.env_id, round_index, split, n)
        for i, arrays in enumerate(play(settings.env_id, policy, seeds, settings.episode_frames, noise, rng)):
            save(staging / split / f"{name}_{i:05d}.npz", arrays, settings.env_id)
            env_steps += len(arrays["frames"]) - 1
    for split in SPLITS:  # every file moved into place, then the record: the round is collected
        (root / EPISODES / split).mkdir(parents=True, exist_ok=True)
        for file in sorted((staging / split).glob("*.npz")):
            file.replace(root / EPISODES / split / file.name)
    shutil.rmtree(staging)
    record = {
        "round": round_index,
        "policy": "random" if agent is None else str(agent),
        "exploration_noise": noise,
        "episodes": counts,
        "env_steps": env_steps,  # every step played to collect this round
        "policy_steps": 0 if agent is None else env_steps,  # of them, chosen by the learned agent
        "seconds": round(time.perf_counter() - started, 1),
    }
    (root / ROUNDS).mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / ROUNDS / f"{name}.json", json.dumps(record, indent=2))
    return record


def streams(
    seed: int, env_id: str, round_index: int, split: str, n: int
) -> tuple[list[int], np.random.Generator]:
    """The reset seeds of a round's n episodes of a split and the generator of their exploration noise, both
    drawn from one seed sequence apart per (data seed, environment, round, split)."""
    sequence = np.random.SeedSequence([seed, zlib.crc32(env_id.encode()), round_index, SPLITS.index(split)])
    seeds = [int(s) for s in sequence.generate_state(n, np.uint32)]
    return seeds, np.random.default_rng(sequence.spawn(1)[0])


def random_policy(seed: int, round_index: int, env_id: str):
    """The random policy of dataset=gym (actions uniform in [-1, 1]) on the environment's action columns."""
    from physworld.envs.episodes import RandomPolicy
    from physworld.envs.gym_pixels import PixelEnv

    env = PixelEnv(env_id)
    mask = np.zeros(ACTION_DIM, np.float32)
    mask[: env.action_dim] = 1.0
    env.close()
    return RandomPolicy(seed * 1000 + round_index, mask)


def agent_policy(checkpoint: Path):
    """The actor of an rl checkpoint (phase=rl's LatentPolicy: encoded frames in, tanh(mean) out)."""
    from physworld.envs.agent import LatentPolicy
    from physworld.phases.checkpoints import checkpoint_phase, phase_from_checkpoint, read_checkpoint

    key = "pipeline.online (the previous round's agent)"
    ckpt = read_checkpoint(checkpoint, key=key)
    if checkpoint_phase(ckpt) != "rl":
        raise ConfigError(f"{key}={str(checkpoint)!r}: a {checkpoint_phase(ckpt)} checkpoint, not an rl one")
    return LatentPolicy(phase_from_checkpoint(ckpt, str(checkpoint), key))


def play(
    env_id: str, policy, seeds: list[int], frames: int, noise: float, rng
) -> list[dict[str, np.ndarray]]:
    """One episode per seed, the environments stepped together so that the policy sees a batch, each recorded
    as dataset=gym records (data/sources/gym.py: frames[t] after reset or step t - 1, actions[t] chosen at frame t,
    the last one not played, rewards[0] = 0) for `frames` frames or until it terminates. The policy's actions get
    N(0, noise) added, clipped to [-1, 1], on the environment's columns only."""
    import torch

    from physworld.envs.gym_pixels import PixelEnv

    envs = [PixelEnv(env_id, max_steps=frames) for _ in seeds]
    with contextlib.ExitStack() as stack:
        for env in envs:
            stack.callback(env.close)
        mask = np.zeros(ACTION_DIM, np.float32)
        mask[: envs[0].action_dim] = 1.0
        pairs = [env.reset(seed=s) for env, s in zip(envs, seeds)]
        observations = np.stack([p[0] for p in pairs])
        infos = [p[1] for p in pairs]
        out = [{"frames": [], "actions": [], "rewards": [0.0], "states": []} for _ in envs]
        active = [True] * len(envs)
        policy.reset(len(envs))
        for t in range(frames):
            with torch.no_grad():
                actions = np.asarray(policy(observations, infos), np.float32)
            actions = np.clip(actions + noise * rng.standard_normal(actions.shape), -1.0, 1.0) * mask
            for e, env in enumerate(envs):
                if not active[e]:
                    continue
                record = out[e]
                record["frames"].append(observations[e].copy())  # a view would follow the next frames
                record["states"].append(infos[e]["state"].astype(np.float32))
                record["actions"].append(actions[e].astype(np.float32))
                if t == frames - 1:
                    continue  # the last action is chosen, not played
                frame, reward, terminated, truncated, info = env.step(actions[e])
                record["rewards"].append(reward)
                observations[e], infos[e] = frame, info
                if terminated or truncated:  # its last frame, with an action not played
                    record["frames"].append(frame)
                    record["states"].append(info["state"].astype(np.float32))
                    record["actions"].append(np.zeros(ACTION_DIM, np.float32))
                    active[e] = False
            if not any(active):
                break
    return [
        {
            "frames": np.stack(r["frames"]),
            "actions": np.stack(r["actions"]),
            "rewards": np.asarray(r["rewards"], np.float32),
            "states": np.stack(r["states"]),
        }
        for r in out
    ]


def save(path: Path, arrays: dict[str, np.ndarray], env_id: str) -> None:
    from physworld.data.sources.episodes import save_episode
    from physworld.data.sources.gym import STATE_NAMES

    s = arrays["states"].shape[1]
    names = STATE_NAMES.get(env_id)
    state_names = names if names is not None and len(names) == s else [f"obs_{j}" for j in range(s)]
    save_episode(path, **arrays, state_names=state_names)


def round_metrics(round_index: int, records: list[dict], agent_metrics: dict) -> dict[str, float]:
    """The pipeline metrics.json keys of one round: online/r<round>/env_steps and policy_steps (so far, rounds
    0..round_index collected), and the agent step's test/ returns (RETURNS, those it has)."""
    prefix = f"online/{round_name(round_index)}"
    out = {
        f"{prefix}/env_steps": float(sum(r["env_steps"] for r in records[: round_index + 1])),
        f"{prefix}/policy_steps": float(sum(r["policy_steps"] for r in records[: round_index + 1])),
    }
    for key in RETURNS:
        if f"test/{key}" in agent_metrics:
            out[f"{prefix}/{key}"] = float(agent_metrics[f"test/{key}"])
    return out


def curve(metrics: dict[str, float]) -> list[dict[str, float]]:
    """The rounds of a pipeline's metrics.json (round_metrics' keys) as rows, in round order."""
    rows: dict[int, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "online" and parts[1].startswith("r") and parts[1][1:].isdigit():
            rows.setdefault(int(parts[1][1:]), {"round": int(parts[1][1:])})[parts[2]] = value
    return [rows[r] for r in sorted(rows)]


def best_round(rows: list[dict[str, float]]) -> dict[str, float]:
    """online/best_return_policy (the best round's real-environment return) and its round; the gap it closes where
    the environment has a reference controller."""
    scored = [r for r in rows if "return_policy" in r]
    if not scored:
        return {}
    best = max(scored, key=lambda r: r["return_policy"])
    out = {"online/best_round": float(best["round"]), "online/best_return_policy": best["return_policy"]}
    if "gap_closed" in best:
        out["online/best_gap_closed"] = best["gap_closed"]
    return out


# -- the rounds in a pipeline (physworld.pipeline runs them) ---------------------------------------------


def round_of(name: str) -> int:
    """The round of an online step's name, r<round>_<step>."""
    return int(name.split("_", 1)[0][1:])


def agent_step(steps: list[tuple[str, DictConfig]], round_index: int) -> tuple[str, DictConfig]:
    """The last step of a round that trains an agent: its actor collects the next round, its test returns are
    the round's."""
    mine = [(n, c) for n, c in steps if round_of(n) == round_index and declared(c.phase.name, "trains_agent")]
    if not mine:
        raise ConfigError(
            "pipeline.online: no step of a round trains an agent (phase=rl): accepted pipeline.steps with one"
        )
    return mine[-1]


def collect_before(
    root: Path, steps: list[tuple[str, DictConfig]], index: int, online: OnlineSettings
) -> None:
    """Collect the round of steps[index] with the previous round's agent, before the round's first step runs
    (once: collect_round skips a collected round)."""
    from lightning.pytorch.utilities import rank_zero_info

    name, cfg = steps[index]
    r = round_of(name)
    if r == 0 or collected(root, r) is not None:
        return
    previous, _ = agent_step(steps, r - 1)
    checkpoint = root / previous / "checkpoints" / "best.ckpt"
    rank_zero_info(f"pipeline: round {r}: collecting episodes with the agent of {previous} ({checkpoint})")
    done = collect_round(root, r, online, int(cfg.data.seed), checkpoint)
    rank_zero_info(f"pipeline: round {r}: {done['episodes']} episodes, {done['env_steps']} environment steps")


def write_online_metrics(
    root: Path, steps: list[tuple[str, DictConfig]], online: OnlineSettings
) -> list[dict[str, float]]:
    """The pipeline folder's metrics.json: each finished round's environment and policy steps so far and its
    agent's real-environment returns (physworld.online.round_metrics), and the best round's. Returns the rounds'
    rows (physworld.online.curve)."""
    from physworld.callbacks.metrics_file import write_metrics

    records, metrics = [], {}
    for r in range(online.rounds):
        record = collected(root, r)
        if record is None:
            break
        records.append(record)
        name, _ = agent_step(steps, r)
        done = root / name / "metrics.json"
        if not done.is_file():
            break
        metrics.update(round_metrics(r, records, json.loads(done.read_text())))
    rows = curve(metrics)
    metrics.update(best_round(rows))
    write_metrics(root / "metrics.json", metrics)
    return rows


def log_online_round(root: Path, cfg: DictConfig, row: dict[str, float]) -> None:
    """A finished round's row to the loggers of the step's config (logger=csv, tensorboard, wandb), written into
    the pipeline folder (csv/metrics.csv, ...), as online/<key> against the environment steps collected so far:
    the curve on the dashboard."""
    from physworld.loggers import build_loggers, finish_wandb

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.paths.output_dir = str(root)
    loggers = build_loggers(cfg)
    values = {f"online/{k}": v for k, v in row.items() if k != "env_steps"}
    for logger in loggers:
        logger.log_metrics(values, step=int(row["env_steps"]))
        logger.finalize("success")
    finish_wandb(loggers)
