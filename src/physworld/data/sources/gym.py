"""dataset=gym: episodes recorded from any Gymnasium environment (`dataset.env_id`, default Pendulum-v1).

Each split's episodes are played by a behaviour policy (`dataset.policy`; `random`: actions uniform in the
model's range [-1, 1]), rendered with render_mode="rgb_array" and written in the episode format of
data/sources/episodes.py (kept in the split's `episodes/` folder, so they can be read back with dataset=episodes),
which the same loader then turns into the cache split:

  frames[t]   the rendered frame after reset (t = 0) or after step t - 1, resized to 64x64
  states[t]   the environment's observation at frame t (flattened), the state probes' target
  actions[t]  the policy's action at frame t, in [-1, 1] (padded with zeros to 2 columns); the environment gets
              it mapped linearly onto its action box (`to_env_action`); the last one is chosen but not played
  rewards[t]  the reward of the step that led to frame t (rewards[0] = 0: no step led to it)

An episode lasts `dataset.num_frames` frames, or ends sooner where the environment terminates (it is then too
short to be stored, and the manifest names it). Everything is drawn from data.seed: the reset seed of episode i
and the policy's stream, apart per split; the same id, seed and Gymnasium version give the same bytes. Gymnasium
environments that other packages register are named `module:Id` (Gymnasium imports the module first).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from physworld.data.cache import ACTION_DIM, SPLIT_STREAMS
from physworld.data.sources import episodes
from physworld.errors import ConfigError, DataError
from physworld.require import positive_int, require

VERSION = 1  # bump when the same id and seed give other bytes
POLICIES = ("random",)
ACCEPTED = (
    "a registered Gymnasium id with a continuous (Box) action space and rgb_array rendering, e.g. Pendulum-v1 or "
    "MountainCarContinuous-v0, or 'module:Id' for one that another package registers"
)
# Names of the observation's columns for the environments physworld is tried on (others: obs_0, obs_1, ...).
STATE_NAMES = {
    "Pendulum-v1": ("cos_angle", "sin_angle", "angular_velocity"),
    "MountainCarContinuous-v0": ("position", "velocity"),
}


def open_env(env_id: str, max_steps: int | None = None):
    """gym.make(env_id, render_mode="rgb_array"), or one ConfigError line naming the id and what is accepted."""
    # pygame (classic-control's renderer) draws off-screen for rgb_array; without a display, SDL's dummy drivers
    # keep it from looking for one (and from printing that it found none). A user's own setting is kept.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        import gymnasium as gym
    except ImportError:
        raise ConfigError("dataset=gym needs gymnasium: pip install 'physworld[gym]'") from None
    bad = f"dataset.env_id={env_id!r} is not accepted"
    try:
        with warnings.catch_warnings():  # an unsupported render mode only warns: it is checked below
            warnings.simplefilter("ignore")
            env = gym.make(
                env_id, render_mode="rgb_array", max_episode_steps=max_steps, disable_env_checker=True
            )
    except (gym.error.Error, ImportError) as err:
        raise ConfigError(f"{bad}: {str(err).splitlines()[0]} Accepted: {ACCEPTED}") from None
    except Exception as err:  # the environment's own constructor failed: its message, in one line
        raise ConfigError(
            f"{bad}: making it failed ({type(err).__name__}: {err}). Accepted: {ACCEPTED}"
        ) from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        env.close()
        raise ConfigError(f"{bad}: its action space is {space}. Accepted: {ACCEPTED}")
    if space.shape[0] > ACTION_DIM or not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        env.close()
        raise ConfigError(
            f"{bad}: its action space {space} is not a bounded box of at most {ACTION_DIM} actions (the model's "
            f"action size). Accepted: {ACCEPTED}"
        )
    if "rgb_array" not in (env.metadata.get("render_modes") or ()):
        env.close()
        raise ConfigError(
            f"{bad}: it has no rgb_array rendering (render modes {env.metadata.get('render_modes')}). "
            f"Accepted: {ACCEPTED}"
        )
    return env


def to_env_action(action: np.ndarray, space) -> np.ndarray:
    """A stored action (the model's range [-1, 1], padded to 2 columns) -> the environment's action box."""
    a = np.asarray(action, np.float64)[: space.shape[0]]
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    return (low + (a + 1.0) * 0.5 * (high - low)).astype(space.dtype)


def episode_seeds(seed: int, env_id: str, split: str, n: int) -> np.ndarray:
    """The reset seed of each of a split's n episodes, apart per (data seed, environment, split)."""
    sequence = np.random.SeedSequence([seed, zlib.crc32(env_id.encode()), SPLIT_STREAMS[split]])
    return sequence.generate_state(n, np.uint32)


def rendered(env) -> np.ndarray:
    """The environment's frame now, resized: uint8 (64, 64, 3)."""
    frame = env.render()
    if (
        not isinstance(frame, np.ndarray)
        or frame.ndim != 3
        or frame.shape[-1] != 3
        or frame.dtype != np.uint8
    ):
        raise DataError(
            f"dataset.env_id={env.spec.id!r}: render() returned {type(frame).__name__} "
            f"{getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}: accepted a uint8 RGB array (H, W, 3)"
        )
    return episodes.resize_frames(frame[None])[0]


def record_episode(env, reset_seed: int, num_frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Play one episode with the random policy: the arrays of the episode format (see the docstring)."""
    from gymnasium.spaces import flatten

    space = env.action_space
    obs, _ = env.reset(seed=int(reset_seed))
    frames, states, actions, rewards = [], [], [], [0.0]
    for _ in range(num_frames):
        frames.append(rendered(env))
        states.append(flatten(env.observation_space, obs).astype(np.float32))
        action = np.zeros(ACTION_DIM, np.float32)
        action[: space.shape[0]] = rng.uniform(-1.0, 1.0, space.shape[0])
        actions.append(action)
        if len(frames) == num_frames:
            break  # the last action is chosen, not played (as in every dataset)
        obs, reward, terminated, truncated, _ = env.step(to_env_action(action, space))
        rewards.append(float(reward))
        if terminated or truncated:  # the episode ends here: its last frame, with an action not played
            frames.append(rendered(env))
            states.append(flatten(env.observation_space, obs).astype(np.float32))
            actions.append(np.zeros(ACTION_DIM, np.float32))
            break
    return {
        "frames": np.stack(frames),
        "actions": np.stack(actions),
        "rewards": np.asarray(rewards, np.float32),
        "states": np.stack(states),
    }


# ---------------------------------------------------------------------------------------------------- source


def cache_name(dataset: dict) -> str:
    return "gym/" + re.sub(r"[^A-Za-z0-9._-]+", "_", str(dataset["env_id"]))


def check(dataset) -> None:
    require(dataset, "env_id", lambda v: isinstance(v, str) and v != "", f"{ACCEPTED}")
    require(dataset, "policy", lambda v: v in POLICIES, f"one of {list(POLICIES)}")
    require(dataset, "num_frames", positive_int, "a positive integer (frames per episode)")
    for split in episodes.SPLITS:
        require(dataset, f"sizes.{split}", positive_int, "a positive integer (episodes in the split)")
    open_env(dataset.env_id).close()  # an unknown id, a discrete action space, no rgb_array: refused here


def spec_for(dataset: dict, split: str, seed: int) -> dict:
    if split not in episodes.SPLITS:
        raise DataError(
            f"gym: split={split!r} is not accepted: one of {list(episodes.SPLITS)} (recorded episodes have no "
            "out-of-distribution or long split)"
        )
    try:
        import gymnasium
    except ImportError:
        raise ConfigError("dataset=gym needs gymnasium: pip install 'physworld[gym]'") from None
    return {
        "format": 1,
        "scene": dataset["name"],
        "version": VERSION,
        "env_id": str(dataset["env_id"]),
        "gymnasium": gymnasium.__version__,
        "policy": str(dataset["policy"]),
        "num_frames": int(dataset["num_frames"]),
        "num_sequences": int(dataset["sizes"][split]),  # episodes played
        "seed": int(seed),
        "split": split,
    }


def build(folder: Path, spec: dict, progress: bool) -> None:
    """Play the split's episodes into `folder`/episodes/ and build the split from them (see the cache)."""
    env_id, t, n = spec["env_id"], spec["num_frames"], spec["num_sequences"]
    env = open_env(env_id, max_steps=t)
    out = folder / "episodes"
    out.mkdir()
    rng = np.random.default_rng([spec["seed"], zlib.crc32(env_id.encode()), SPLIT_STREAMS[spec["split"]]])
    names = STATE_NAMES.get(env_id)
    with contextlib.closing(env):
        for i, reset_seed in enumerate(
            tqdm(
                episode_seeds(spec["seed"], env_id, spec["split"], n),
                desc=f"gym {env_id}/{spec['split']}",
                disable=not progress,
                leave=False,
            )
        ):
            arrays = record_episode(env, reset_seed, t, rng)
            s = arrays["states"].shape[1]
            state_names = names if names is not None and len(names) == s else [f"obs_{j}" for j in range(s)]
            episodes.save_episode(out / f"{i:06d}.npz", **arrays, state_names=state_names)
    source = {
        "env_id": env_id,
        "gymnasium": spec["gymnasium"],
        "seed": spec["seed"],
        "action_space": str(env.action_space),
        # episode i was played from env.reset(seed=reset_seeds[i]): a replay of its actions gives its states
        "reset_seeds": [int(s) for s in episode_seeds(spec["seed"], env_id, spec["split"], n)],
    }
    episodes.write_split(folder, sorted(out.glob("*.npz")), spec, progress, source)
