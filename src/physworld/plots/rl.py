"""The RL phase's figures (the seed's `rl_training.png` and `rl_trajectory.png`): its training curves, and
the agent's paths to its goals in test episodes."""

from __future__ import annotations

from pathlib import Path

from physworld.plots import pyplot


def rl_training_plot(history: list[dict], curves: tuple, real: tuple, path: Path) -> None:
    """A panel per (key, title) of `curves`, then one panel of the real environment's returns (`real`: the
    policy's, the random and the oracle baselines' keys) against the training step.
    history: [{"step": int, key: value, ...}], each row with the keys logged at its step."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, (key, label) in zip(axes.flat, curves):
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points), lw=1)
        ax.set(title=label, xlabel="training step")
    ax = axes.flat[-1]
    for key, style in zip(real, ("-o", "--", ":")):
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points), style, ms=3, label=key.split("_")[-1])
    ax.set(title="real environment return", xlabel="training step")
    if ax.get_lines():
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def rl_trajectory_plot(policy, oracle, path: Path) -> None:
    """The first six test episodes on the 64 x 64 canvas: the policy's path (solid, from a dot), its goal (a
    star) and the oracle's path (dotted; oracle may be None). policy, oracle: episodes with `positions`
    (N, T, 2), `goals` (N, 2) and `returns` (N,)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for i in range(min(6, len(policy.returns))):
        colour = plt.cm.tab10(i)
        ax.plot(*policy.positions[i].T, "-", color=colour, lw=1.2, label=f"ep {i}: {policy.returns[i]:.1f}")
        ax.plot(*policy.positions[i, 0], "o", color=colour, ms=4)
        ax.plot(*policy.goals[i], "*", color=colour, ms=12, mec="k")
        if oracle is not None and oracle.positions.shape[0] > i:
            ax.plot(*oracle.positions[i].T, ":", color=colour, lw=1)
    ax.set(xlim=(0, 64), ylim=(64, 0), aspect="equal", title="policy paths (dotted: oracle), * goal")
    ax.legend(fontsize=6, title="return", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def online_curve_plot(rows: list[dict], path: Path) -> None:
    """Learning online (physworld.online.curve's rows): the agent's real-environment return after each round
    against the environment steps collected so far, beside the random policy's and the reference controller's
    returns on the same evaluation episodes; the top axis counts the steps the learned agent chose."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = [r["env_steps"] for r in rows]
    for key, style, label in (
        ("return_policy", "-o", "agent (actor)"),
        ("return_planner", "-s", "planner"),
        ("return_random", "--", "random"),
        ("return_oracle", ":", "reference controller"),
    ):
        points = [(r["env_steps"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points), style, ms=4, label=label)
    ax.set(xlabel="environment steps collected", ylabel="real-environment return (test episodes)")
    for r in rows:
        ax.annotate(f"r{int(r['round'])}", (r["env_steps"], r.get("return_policy", 0.0)), fontsize=6)
    if steps:
        top = ax.secondary_xaxis("top")
        top.set_xticks(steps, [f"{int(r.get('policy_steps', 0))}" for r in rows], fontsize=6)
        top.set_xlabel("of them chosen by the agent (policy steps)", fontsize=7)
    if ax.get_lines():
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
