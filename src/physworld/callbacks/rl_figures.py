"""Figures of the RL phase (the seed's `rl_training.png` and `rl_trajectory.png`, plus an episode GIF).

- `rl_training.png`: reward-model, actor and critic losses, policy entropy, imagined return, and the real
  environment's return of the policy against the random and oracle baselines, per training step;
- `rl_trajectory.png`: the agent's paths to its goals in the test episodes (policy solid, oracle dotted);
- `rl_episode.gif`: the first test episode of the policy, as the environment draws it.

Written at the end of testing (or of fitting, when there is no test) on rank zero; a no-op for phases
without an agent. The callback collects the curves and decides when to draw; physworld.plots.rl draws.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only

from physworld.loggers import log_files
from physworld.plots.frames import write_gif
from physworld.plots.rl import rl_training_plot, rl_trajectory_plot

CURVES = (
    ("train/reward_loss", "reward model loss (MSE)"),
    ("train/actor_loss", "actor loss"),
    ("train/critic_loss", "critic loss"),
    ("train/entropy", "policy entropy (nats)"),
    ("train/imagined_return", "imagined return (H steps)"),
)
REAL = ("train/return_policy", "train/return_random", "train/return_oracle")


class RLFigures(L.Callback):
    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.history: list[dict[str, float]] = []  # a few floats per logged step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not pl_module.entry.trains_agent:
            return
        step, every = int(pl_module.train_steps), pl_module.settings.eval_every_n_steps
        metrics = trainer.callback_metrics
        row = {k: float(metrics[k]) for k, _ in CURVES if k in metrics}
        if every and step % every == 0:  # the step of a real-environment evaluation
            row.update({k: float(metrics[k]) for k in REAL if k in metrics})
        if row and (step % trainer.log_every_n_steps == 0 or REAL[0] in row):
            self.history.append({"step": step, **row})

    def on_fit_end(self, trainer, pl_module):
        if pl_module.entry.trains_agent:
            self._training_plot()
            self._log_files(trainer, "train", ["rl_training.png"])

    def on_test_end(self, trainer, pl_module):
        if pl_module.entry.trains_agent and "policy" in pl_module.last_episodes:
            self._episode_figures(pl_module.last_episodes)
            self._log_files(trainer, "test", ["rl_trajectory.png", "rl_episode.gif"])

    def _log_files(self, trainer, stage: str, names: list[str]) -> None:
        """To W&B (when it is a logger), as `<stage>/rl_training` etc., the files that were written."""
        for name in names:
            if (self.dirpath / name).is_file():
                log_files(trainer, f"{stage}/{name.split('.')[0]}", [self.dirpath / name])

    @rank_zero_only
    def _training_plot(self) -> None:
        if not self.history:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        rl_training_plot(self.history, CURVES, REAL, self.dirpath / "rl_training.png")

    @rank_zero_only
    def _episode_figures(self, episodes: dict) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        policy = episodes["policy"]
        if (
            policy.positions is not None
        ):  # GoalReach: where the agent went (other environments have no positions)
            rl_trajectory_plot(policy, episodes.get("oracle"), self.dirpath / "rl_trajectory.png")
        frames = [np.repeat(np.repeat(f, 3, 0), 3, 1) for f in policy.frames]  # 3x, as the seed's GIF
        write_gif(frames, self.dirpath / "rl_episode.gif", duration=80)
