"""Figures of the RL phase (the seed's `rl_training.png` and `rl_trajectory.png`, plus an episode GIF).

- `rl_training.png`: reward-model, actor and critic losses, policy entropy, imagined return, and the real
  environment's return of the policy against the random and oracle baselines, per training step;
- `rl_trajectory.png`: the agent's paths to its goals in the test episodes (policy solid, oracle dotted);
- `rl_episode.gif`: the first test episode of the policy, as the environment draws it.

Written at the end of testing (or of fitting, when there is no test) on rank zero; a no-op for phases
without an agent.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from physworld.loggers import log_files

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
        if not pl_module.trains_agent:
            return
        step, every = int(pl_module.train_steps), pl_module.hparams.phase["eval_every_n_steps"]
        metrics = trainer.callback_metrics
        row = {k: float(metrics[k]) for k, _ in CURVES if k in metrics}
        if every and step % every == 0:  # the step of a real-environment evaluation
            row.update({k: float(metrics[k]) for k in REAL if k in metrics})
        if row and (step % trainer.log_every_n_steps == 0 or REAL[0] in row):
            self.history.append({"step": step, **row})

    def on_fit_end(self, trainer, pl_module):
        if pl_module.trains_agent:
            self._training_plot()
            self._log_files(trainer, "train", ["rl_training.png"])

    def on_test_end(self, trainer, pl_module):
        if pl_module.trains_agent and "policy" in pl_module.last_episodes:
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
        plt = _pyplot()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        fig, axes = plt.subplots(2, 3, figsize=(12, 6))
        for ax, (key, label) in zip(axes.flat, CURVES):
            points = [(h["step"], h[key]) for h in self.history if key in h]
            if points:
                ax.plot(*zip(*points), lw=1)
            ax.set(title=label, xlabel="training step")
        ax = axes.flat[-1]
        for key, style in zip(REAL, ("-o", "--", ":")):
            points = [(h["step"], h[key]) for h in self.history if key in h]
            if points:
                ax.plot(*zip(*points), style, ms=3, label=key.split("_")[-1])
        ax.set(title="real environment return", xlabel="training step")
        if ax.get_lines():
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.dirpath / "rl_training.png", dpi=100)
        plt.close(fig)

    @rank_zero_only
    def _episode_figures(self, episodes: dict) -> None:
        plt = _pyplot()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        policy, oracle = episodes["policy"], episodes.get("oracle")
        fig, ax = plt.subplots(figsize=(5, 5))
        for i in range(min(6, len(policy.returns))):
            colour = plt.cm.tab10(i)
            ax.plot(
                *policy.positions[i].T, "-", color=colour, lw=1.2, label=f"ep {i}: {policy.returns[i]:.1f}"
            )
            ax.plot(*policy.positions[i, 0], "o", color=colour, ms=4)
            ax.plot(*policy.goals[i], "*", color=colour, ms=12, mec="k")
            if oracle is not None and oracle.positions.shape[0] > i:
                ax.plot(*oracle.positions[i].T, ":", color=colour, lw=1)
        ax.set(xlim=(0, 64), ylim=(64, 0), aspect="equal", title="policy paths (dotted: oracle), * goal")
        ax.legend(fontsize=6, title="return", title_fontsize=7)
        fig.tight_layout()
        fig.savefig(self.dirpath / "rl_trajectory.png", dpi=110)
        plt.close(fig)
        frames = [Image.fromarray(np.repeat(np.repeat(f, 3, 0), 3, 1)) for f in policy.frames]
        frames[0].save(
            self.dirpath / "rl_episode.gif", save_all=True, append_images=frames[1:], duration=80, loop=0
        )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
