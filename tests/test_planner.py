"""The CEM planner (models/planner.py) on toy models whose best action sequences are known."""

from __future__ import annotations

import pytest
import torch

from physworld.models.planner import PlannerSettings, cem_plan, shifted

SETTINGS = PlannerSettings(horizon=3, candidates=300, elites=30, iterations=6, gamma=1.0)


def _move(z, action, state):
    """A point that moves by a quarter of the action; state counts the steps taken."""
    return z + 0.25 * action, [state[0] + 1]


def test_each_environment_heads_for_its_own_goal():
    torch.manual_seed(0)
    goals = torch.tensor(
        [[0.75, -0.75], [-0.75, 0.25]]
    )  # three full pushes reach the first; the second needs less
    z = torch.zeros(2, 2)
    action = cem_plan(
        _move,
        lambda z: -(z - goals.repeat_interleave(300, 0)).pow(2).sum(-1),
        z,
        [torch.zeros(2)],
        2,
        SETTINGS,
    ).action
    assert action.shape == (2, 2)
    assert torch.allclose(action[0], torch.tensor([1.0, -1.0]), atol=0.1)  # the only sequence that reaches it
    assert action[1, 0] < -0.5 and action[1, 1] > 0.0  # towards (-0.75, 0.25)


def test_it_gives_up_an_early_reward_for_a_larger_later_one():
    """Rewards -0.5 x for the first two steps, 2 x at the third: the return is a1 + 1.5 a2 + 2 a3, so the best
    sequence pushes +1 throughout, though the first step alone would pay most for -1 (a greedy choice)."""
    torch.manual_seed(0)

    def reward(z):
        x, t = z[:, 0], z[:, 1]
        return torch.where(t >= 3, 2.0 * x, -0.5 * x)

    def step(z, action, state):
        return torch.stack([z[:, 0] + action[:, 0], z[:, 1] + 1], dim=1), state

    action = cem_plan(step, reward, torch.zeros(1, 2), [], 1, SETTINGS).action
    assert action.item() > 0.9


def test_the_terminal_value_decides_where_rewards_are_flat():
    torch.manual_seed(0)
    z, flat = torch.zeros(1, 1), lambda z: torch.zeros(z.shape[0])
    up = cem_plan(_move, flat, z, [torch.zeros(1)], 1, SETTINGS, value=lambda z, s: z[:, 0]).action
    down = cem_plan(_move, flat, z, [torch.zeros(1)], 1, SETTINGS, value=lambda z, s: -z[:, 0]).action
    assert up.item() > 0.9 and down.item() < -0.9


def test_actions_stay_in_range_and_state_reaches_every_step():
    torch.manual_seed(0)
    seen = []

    def step(z, action, state):
        seen.append((action.shape, state[0].shape))
        return z + action, state

    settings = PlannerSettings(horizon=4, candidates=16, elites=4, iterations=2)
    plan = cem_plan(step, lambda z: 10 * z.sum(-1), torch.zeros(3, 2), [torch.zeros(3, 5)], 2, settings)
    assert plan.action.shape == (3, 2) and plan.action.abs().max() <= 1.0
    assert plan.mean.shape == (3, 4, 2) and torch.equal(plan.mean[:, 0], plan.action)
    assert seen == [((48, 2), (48, 5))] * 8  # 3 environments x 16 candidates, H = 4 steps x 2 iterations


def test_more_elites_than_candidates_is_refused():
    with pytest.raises(ValueError, match="elites=9: accepted 1 to candidates=8"):
        PlannerSettings(candidates=8, elites=9)


def _toward(goal: torch.Tensor):
    """Reward of a point near `goal` at every step: -(squared distance), so the best sequence reaches it at once
    and stays."""
    return lambda z: -(z - goal).pow(2).sum(-1)


def test_a_warm_start_from_the_best_plan_keeps_it():
    """From (0, 0), goal (0.25, -0.125): the one best sequence is (1, -0.5) then standing still. A search of 8
    candidates and 1 iteration from 0 misses it; warm started from it, it keeps it (its mean is candidate 0)."""
    torch.manual_seed(0)
    goal, z = torch.tensor([0.25, -0.125]), torch.zeros(1, 2)
    settings = PlannerSettings(horizon=3, candidates=8, elites=1, iterations=1, gamma=1.0)
    best = torch.tensor([[[1.0, -0.5], [0.0, 0.0], [0.0, 0.0]]])  # (B, H, A)
    warm = cem_plan(_move, _toward(goal), z, [torch.zeros(1)], 2, settings, mean=best)
    assert torch.equal(warm.action, best[:, 0]) and torch.equal(warm.mean, best)
    cold = cem_plan(_move, _toward(goal), z, [torch.zeros(1)], 2, settings)
    assert (cold.action - best[:, 0]).abs().max() > 0.1


def test_warm_starts_carry_the_search_over_from_call_to_call():
    """The goal three full pushes away: one small search (16 candidates, 1 iteration) from 0 lands short of the
    best first action (1, -1); the same search repeated from each call's mean reaches it."""
    goal, z = torch.tensor([0.75, -0.75]), torch.zeros(1, 2)
    settings = PlannerSettings(horizon=3, candidates=16, elites=4, iterations=1, gamma=1.0)
    best = torch.tensor([1.0, -1.0])
    torch.manual_seed(0)
    cold = cem_plan(_move, _toward(goal), z, [torch.zeros(1)], 2, settings)
    torch.manual_seed(0)
    mean = None
    for _ in range(8):
        mean = cem_plan(_move, _toward(goal), z, [torch.zeros(1)], 2, settings, mean=mean).mean
    assert (mean[0, 0] - best).abs().max() < 0.1
    assert (cold.action[0] - best).abs().max() > 0.2


def test_shifted_drops_the_played_step_and_appends_zero():
    mean = torch.arange(12.0).view(2, 3, 2)  # (B, H, A)
    out = shifted(mean)
    assert torch.equal(out[:, :2], mean[:, 1:]) and torch.equal(out[:, 2], torch.zeros(2, 2))
