"""Gymnasium environments. Importing this package registers them:

import gymnasium, physworld.envs
env = gymnasium.make("physworld/GoalReach-v0")

or, without importing it first, name the module in the id and Gymnasium imports it (Gymnasium 1.0 removed
the plugin entry points that registered a package's environments when Gymnasium was imported):

env = gymnasium.make("physworld.envs:physworld/GoalReach-v0")
envs = gymnasium.make_vec("physworld.envs:physworld/GoalReach-v0", num_envs=4, vectorization_mode="async")
"""

import gymnasium

from physworld.envs.goal_reach import GoalReachEnv, oracle_action

__all__ = ["GOAL_REACH_ID", "GoalReachEnv", "oracle_action"]

GOAL_REACH_ID = "physworld/GoalReach-v0"

if GOAL_REACH_ID not in gymnasium.registry:  # a re-import (e.g. importlib.reload) must not register twice
    gymnasium.register(
        id=GOAL_REACH_ID,
        entry_point="physworld.envs.goal_reach:GoalReachEnv",
        max_episode_steps=100,  # the same as GoalReachEnv's own max_steps
    )
