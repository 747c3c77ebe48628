"""Where a trained agent's gradient points (docs/results.md, "The agent's collapse: the critic's slope").

From real goal_reach windows (start state: frame 1, after the ConvGRU has consumed frame 0 and its action),
imagine `imagination_horizon` steps under fixed action sequences and under the policy itself, and split the
gradient of the lambda-return with respect to the imagined actions into its two linear parts: the predicted
rewards' (the lambda-return with the critic's values set to zero) and the target critic's bootstrap values'
(the rest). Each part is compared with the direction from the agent to the goal, which the true reward
(minus the agent-goal distance) points along, and with the policy's own mean action: an actor whose gradient
is mostly the critic's, pointing along its own actions and not at the goal, is following the critic's slope.
"""

from __future__ import annotations

import numpy as np
import torch

from physworld.errors import CheckpointError
from physworld.models.agent import split_lambda_returns
from physworld.phases import phases_that
from physworld.phases.checkpoints import checkpoint_phase, phase_from_checkpoint, read_checkpoint
from physworld.phases.rl import RLPhase

AGENT, GOAL = slice(0, 2), slice(4, 6)  # columns of goal_reach's states (scenes.goal_reach.STATE_NAMES)


def load_agent(path: str) -> RLPhase:
    """The RL phase of an rl checkpoint with its trained weights, or CheckpointError in one line."""
    ckpt = read_checkpoint(path, key="checkpoint")
    if checkpoint_phase(ckpt) not in phases_that("trains_agent"):
        raise CheckpointError(
            f"checkpoint={path!r} is a {checkpoint_phase(ckpt)!r} checkpoint: accepted an rl checkpoint "
            "(<run of phase=rl>/checkpoints/*.ckpt)"
        )
    return phase_from_checkpoint(ckpt, path, key="checkpoint")


def _start(phase: RLPhase, split: dict[str, np.ndarray], windows: int):
    frames = torch.from_numpy(np.array(split["frames"][:windows, :2])).permute(0, 1, 4, 2, 3).float() / 255
    actions = torch.from_numpy(np.array(split["actions"][:windows, :1])).float()
    states = torch.from_numpy(np.array(split["states"][:windows, 1])).float()
    z = phase.vqvae.encode(frames.flatten(0, 1))[0].unflatten(0, frames.shape[:2])
    hidden = phase.dynamics.advance(z[:, 0], actions[:, 0], None)
    goal = states[:, GOAL] - states[:, AGENT]
    return z[:, 1], hidden, goal / goal.norm(dim=1, keepdim=True).clamp_min(1e-6)


def _imagine(phase: RLPhase, z, hidden, actions=None):
    """Roll the frozen world model H steps under `actions` (H, N, A), or under the deterministic policy when
    None. Returns the predicted rewards (H, N), the target critic's values (H + 1, N) and the actions."""
    horizon = phase.settings.imagination_horizon
    state, rewards, values, taken = list(hidden), [], [], []
    for k in range(horizon + 1):
        features = torch.cat([z, state[-1]], dim=1)
        values.append(phase.target_critic(features))
        if k == horizon:
            break
        action = phase.actor.act(features) if actions is None else actions[k]
        taken.append(action)
        z, state = phase.dynamics.step(z, action, state, phase.codebook, feedback="straight_through")
        rewards.append(phase.reward_model(z))
    return torch.stack(rewards), torch.stack(values), torch.stack(taken)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())


def gradient_split(phase: RLPhase, split: dict[str, np.ndarray], windows: int = 64) -> dict:
    """The agent's gradient on the first `windows` windows of a goal_reach split (arrays with frames,
    actions, states). Returns {"policy": ..., "returns": ..., "rows": [...]}: the policy's own actions
    (cosine with the goal direction, fraction of saturated components), the imagined reward sum per start
    under four action sequences, and one row per (where the actions are, part) with the gradient's norm and
    its cosines with the goal direction and with the policy's mean action."""
    phase.eval()
    with torch.no_grad():
        z, hidden, goal = _start(phase, split, windows)
        own_rewards, _, own = _imagine(phase, z, hidden)
    horizon, n = own.shape[:2]
    mean_action = own.mean(dim=(0, 1))
    out = {
        "policy": {
            "cos_goal": _cos(own[0], goal),
            "saturated": float((own.abs() > 0.95).float().mean()),
            "mean_action": mean_action.tolist(),
        },
        "returns": {},
        "rows": [],
    }
    fixed = {"toward the goal": goal, "no push": torch.zeros_like(goal), "away from the goal": -goal}
    with torch.no_grad():
        for name, direction in fixed.items():
            rewards = _imagine(phase, z, hidden, direction.expand(horizon, n, -1))[0]
            out["returns"][name] = float(rewards.sum(0).mean())
    out["returns"]["the policy"] = float(own_rewards.sum(0).mean())
    for where, start in (("zero actions", torch.zeros_like(own)), ("its own actions", own)):
        actions = start.clone().requires_grad_(True)
        rewards, values, _ = _imagine(phase, z, hidden, actions)
        parts = split_lambda_returns(rewards, values, phase.settings.gamma, phase.settings.td_lambda)
        for part, g in zip(("rewards", "critic"), parts):
            # each window's own gradient (the mean over the horizon, summed over windows)
            (grad,) = torch.autograd.grad(g.mean(0).sum(), actions, retain_graph=True)
            total = grad.sum(0)  # (N, A): summed over the imagined actions
            out["rows"].append(
                {
                    "at": where,
                    "part": part,
                    "norm": float(total.norm(dim=1).mean()),
                    "cos_goal": _cos(total, goal),
                    "cos_policy": _cos(total, mean_action.expand(n, -1)),
                }
            )
    return out


def markdown(split: dict) -> str:
    """gradient_split's result as the text and table docs/results.md shows."""
    policy, returns = split["policy"], split["returns"]
    lines = [
        "policy: cosine of its first action with the goal direction {:+.2f}, saturated components {:.2f}, "
        "mean action {}".format(
            policy["cos_goal"], policy["saturated"], [round(a, 2) for a in policy["mean_action"]]
        ),
        "imagined reward sum per start: "
        + ", ".join(f"{name} {value:.2f}" for name, value in returns.items()),
        "",
        "| at | part | \\|g\\| | cos goal | cos policy's mean action |",
        "|---|---|---|---|---|",
    ]
    for row in split["rows"]:
        lines.append(
            f"| {row['at']} | {row['part']} | {row['norm']:.2f} | {row['cos_goal']:+.2f} | {row['cos_policy']:+.2f} |"
        )
    return "\n".join(lines)
