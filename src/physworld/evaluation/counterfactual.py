"""Counterfactual actions on goal_reach: does the predicted outcome change with the actions as the world's does?

Protocol, for each of the first n sequences of the evaluated split, with c context frames and horizon K:

- the start: frames 0 .. c-1 with the recorded actions between them (the model warms up on them), and for the
  environment the true state of frame c-1 (`states.npy`: agent position and velocity, goal);
- two action sequences for the K steps after the context (actions c-1 .. c+K-2, each producing the next
  frame): the recorded one (A) and a counterfactual (B) made from it by `COUNTERFACTUALS[kind]`:
  `negate` (default: the push in the opposite direction, the largest change at the same strength),
  `rotate` (each push turned by 90 degrees, (x, y) -> (-y, x), clockwise on screen as y points down:
  tests direction, not only sign) or `zero` (no push: the agent coasts and drag stops it);
- the model rolls out K frames from the context under each (open loop, codes fed back by argmax as in the
  rollout scores) and the agent is located in every predicted frame by colour (metrics/positions.py, with the
  sequence's agent and goal colours, so the ring's pixels are not taken for the agent);
- the real environment (envs/goal_reach.GoalReachEnv with the dataset's physics) is reset to the state of
  frame c-1 (`reset(options=...)`) and stepped under each sequence: the true agent positions.

Scores per horizon t = 1 .. K (frame c + t - 1), with d = agent position under A - agent position under B:

- counterfactual_diff_err: mean |d_pred - d_real|, pixels, over the sequences whose agent was found in both
  predictions;
- counterfactual_diff_err_blind: the same for a model that ignores the actions (d_pred = 0), i.e. the mean
  |d_real| over the same sequences: the baseline the model must beat;
- counterfactual_cosine: mean cosine between d_pred and d_real over those of them with |d_real| >=
  MIN_DIFFERENCE (a direction needs a real difference; a d_pred of 0 counts as cosine 0);
- counterfactual_found: the fraction of sequences whose agent was found in both predictions.
"""

from __future__ import annotations

import numpy as np
import torch

from physworld.data.scenes import goal_reach as world
from physworld.envs.goal_reach import GoalReachEnv
from physworld.evaluation.scoring import to_frames
from physworld.metrics.positions import estimate_positions

SCENE = "goal_reach"  # the one dataset with actions that matter and an environment to replay them
MIN_DIFFERENCE = 1.0  # pixels: a real difference shorter than this has no direction to compare
COUNTERFACTUALS = {
    "negate": lambda a: -a,
    "rotate": lambda a: np.stack([-a[..., 1], a[..., 0]], axis=-1),
    "zero": np.zeros_like,
}
AGENT, VELOCITY, GOAL = (
    [world.STATE_NAMES.index(f"{obj}_{q}") for q in qs]
    for obj, qs in (("agent", "xy"), ("agent", ("vx", "vy")), ("goal", "xy"))
)  # state columns of the agent's position, its velocity and the goal's position


def counterfactual_actions(actions: np.ndarray, kind: str) -> np.ndarray:
    """The counterfactual (..., 2) float32 of recorded actions (..., 2)."""
    if kind not in COUNTERFACTUALS:
        raise ValueError(f"counterfactual actions {kind!r}: accepted one of {list(COUNTERFACTUALS)}")
    return np.asarray(COUNTERFACTUALS[kind](np.asarray(actions, np.float32)), np.float32)


def difference_scores(pred_a, pred_b, real_a, real_b) -> dict[str, np.ndarray]:
    """Agent positions (N, K, 2) predicted and real under sequences A and B -> per-horizon (K,) scores
    (module docstring): diff_err, diff_err_blind, cosine, found. NaN in a prediction means the agent was not
    found there; a horizon with no usable sequence scores NaN."""
    d_pred = np.asarray(pred_a, np.float64) - np.asarray(pred_b, np.float64)  # (N, K, 2)
    d_real = np.asarray(real_a, np.float64) - np.asarray(real_b, np.float64)
    found = np.isfinite(d_pred).all(-1)  # (N, K)
    err = np.linalg.norm(d_pred - d_real, axis=-1)
    blind = np.linalg.norm(d_real, axis=-1)
    norm_pred = np.linalg.norm(d_pred, axis=-1)
    directed = found & (blind >= MIN_DIFFERENCE)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (d_pred * d_real).sum(-1) / (norm_pred * blind)
    cosine = np.where(norm_pred > 0, cosine, 0.0)

    def mean(values, rows):
        count = rows.sum(0)
        total = np.where(rows, values, 0.0).sum(0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    return {
        "diff_err": mean(err, found),
        "diff_err_blind": mean(blind, found),
        "cosine": mean(cosine, directed),
        "found": found.mean(0),
    }


def replay(physics: world.Physics, start: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The real environment from each start state (N, S) (a goal_reach state row) under actions (N, K, 2)
    -> agent positions (N, K, 2) after each step."""
    env = GoalReachEnv(**physics._asdict(), max_steps=actions.shape[1])
    out = np.empty(actions.shape[:2] + (2,))
    for i, state in enumerate(np.asarray(start, np.float64)):
        options = {"agent_pos": state[AGENT], "agent_vel": state[VELOCITY], "goal_pos": state[GOAL]}
        env.reset(options=options)
        for t, action in enumerate(actions[i]):
            out[i, t] = env.step(action)[4]["agent_pos"]
    return out


@torch.no_grad()
def predicted_positions(phase, frames, actions, colors, c: int, k: int, device) -> np.ndarray:
    """The phase's open-loop rollout of k frames after c context frames (B, c, H, W, 3) uint8, actions
    (B, c + k - 1, 2) -> the agent located in each predicted frame (B, K, 2), NaN where not found."""
    x = to_frames(frames, device)  # (B, c, 3, H, W)
    a = torch.from_numpy(np.ascontiguousarray(actions)).to(device).float()
    z = phase.vqvae.encode(x.flatten(0, 1))[0].unflatten(0, x.shape[:2])  # (B, c, C, h, w)
    roll = phase.dynamics.rollout(z, a, horizon=k, codebook=phase.codebook, feedback="argmax")
    pred = phase.predicted_frames(roll.latents, z[:, -1], x[:, -1])[0].flatten(0, 1)  # (B K, 3, H, W)
    col = torch.as_tensor(np.repeat(np.asarray(colors, np.float32), k, axis=0), device=device)  # (B K, 2, 3)
    found = estimate_positions(pred.clamp(0, 1), col)[:, 0]  # (B K, 2): object 0 is the agent
    return found.view(x.shape[0], k, 2).cpu().numpy()


def score_counterfactuals(
    phase,
    arrays: dict,
    params: dict,
    scene_params: dict,
    n: int,
    c: int,
    k: int,
    kind: str,
    batch_size,
    device,
) -> dict[str, np.ndarray]:
    """The first n sequences of a goal_reach split (arrays and params of load_split / load_params), the
    dataset's scene parameters (its physics) -> difference_scores under the recorded and `kind` actions."""
    frames, states, recorded = (
        arrays["frames"],
        arrays["states"],
        np.asarray(arrays["actions"][:n, : c + k - 1]),
    )
    physics = world.physics_from(dict(scene_params))
    changed = recorded.copy()
    changed[:, c - 1 :] = counterfactual_actions(recorded[:, c - 1 :], kind)  # the context keeps its own
    colors = np.asarray(params["object_colors"][:n])  # (N, 2, 3) agent, goal
    pred = {"a": [], "b": []}
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        context = np.asarray(frames[rows, :c])
        pred["a"].append(predicted_positions(phase, context, recorded[rows], colors[rows], c, k, device))
        pred["b"].append(predicted_positions(phase, context, changed[rows], colors[rows], c, k, device))
    start_state = np.asarray(states[:n, c - 1])
    real_a = replay(physics, start_state, recorded[:, c - 1 :])
    real_b = replay(physics, start_state, changed[:, c - 1 :])
    return difference_scores(np.concatenate(pred["a"]), np.concatenate(pred["b"]), real_a, real_b)


def counterfactual_metrics(
    phase, dataset: dict, arrays: dict, params: dict, n: int, c: int, k: int, settings, batch_size, device
) -> dict[str, float]:
    """`evaluation.counterfactual` on one dataset's evaluated split -> {"counterfactual_<score>/goal_reach/tNN":
    value} (scores of the module docstring); {} when off or for any other dataset."""
    if not settings.enabled or dataset["name"] != SCENE:
        return {}
    scene_params = dict(dataset.get("scene") or {})
    scores = score_counterfactuals(
        phase, arrays, params, scene_params, n, c, k, settings.actions, batch_size, device
    )
    return {
        f"counterfactual_{name}/{SCENE}/t{t:02d}": float(v)
        for name, values in scores.items()
        for t, v in enumerate(values, start=1)
    }
