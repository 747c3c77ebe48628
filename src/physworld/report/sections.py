"""The report's sections: each training run (configuration, curves, final metrics, figures), the summary of
every run beside its baselines, each evaluation's tables, and the online rounds of a pipeline (report/build.py
puts them in order)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from physworld.evaluation.runs import run_config_file
from physworld.plots.curves import plot_training_curves
from physworld.report.curves import read_training_log
from physworld.report.document import Block, Code, Details, Figure, Heading, Table, Text, fmt
from physworld.report.folders import name_of, read_config, read_json, select, slug

# Figures the training callbacks write into <run>/images, in reading order; the first of each group found.
RUN_FIGURES = [
    (("recon_latest.png",), "Validation frames (top) and their reconstructions (bottom), last epoch."),
    (
        ("rollout_test.png", "rollout_val.png"),
        "Rollouts during training: truth above prediction, per dataset.",
    ),
    (
        ("rollout_test_error_vs_horizon.png", "rollout_val_error_vs_horizon.png"),
        "Rollout error against the horizon during training: model (solid) and copy-last (dashed).",
    ),
    (("rollout_test.gif", "rollout_val.gif"), "Rollout GIF: truth | prediction | copy-last."),
    (("rl_training.png",), "RL training: reward model, actor and critic losses, entropy, returns."),
    (("rl_trajectory.png",), "RL: the agent's paths to its goals in the real environment (oracle dotted)."),
    (("rl_episode.gif",), "RL: the first test episode of the policy."),
]
HORIZON = re.compile(r"^(.*)/t(\d+)$")


# -- training runs ------------------------------------------------------------------------------------------


def config_table(cfg: DictConfig) -> Table:
    """The keys that say what was trained: phase and model in full, the dataset's size, the data caps."""
    rows = [["seed", str(select(cfg, "seed"))]]
    for group in ("phase", "model"):
        node = cfg.get(group)
        if node is not None:
            flat = flatten(OmegaConf.to_container(node, resolve=False), group)
            rows += [[key, str(select(cfg, key))] for key in flat]
    for key in (
        "dataset.name",
        "dataset.num_frames",
        "dataset.sizes",
        "data.max_sequences",
        "data.max_frames",
    ):
        value = select(cfg, key)
        if value is not None:
            rows.append([key, str(OmegaConf.to_container(value) if isinstance(value, DictConfig) else value)])
    return Table(["key", "value"], rows)


def flatten(node, prefix: str) -> list[str]:
    if isinstance(node, dict):
        return [key for k, v in node.items() for key in flatten(v, f"{prefix}.{k}")]
    return [prefix]


def metrics_tables(metrics: dict[str, float]) -> list[Block]:
    """Scalars as key | value; per-horizon keys (`.../tNN`) as one row per metric, one column per horizon."""
    scalars = [[key, fmt(value)] for key, value in metrics.items() if not HORIZON.match(key)]
    horizons: dict[str, dict[int, float]] = {}
    for key, value in metrics.items():
        match = HORIZON.match(key)
        if match:
            horizons.setdefault(match[1], {})[int(match[2])] = value
    blocks: list[Block] = []
    if scalars:
        blocks.append(Table(["metric", "value"], scalars))
    if horizons:
        steps = sorted({t for values in horizons.values() for t in values})
        rows = [[name] + [fmt(values.get(t)) for t in steps] for name, values in sorted(horizons.items())]
        blocks.append(Table(["metric per horizon"] + [f"t{t:02d}" for t in steps], rows))
    return blocks


def run_section(run: Path, root: Path, files: Path) -> list[Block]:
    cfg = read_config(run)
    name = name_of(run, root)
    what = ""
    if cfg is not None:
        what = f" ({select(cfg, 'phase.name')} on {select(cfg, 'dataset.name')})"
    blocks: list[Block] = [Heading(f"Training run `{name}`{what}", 2)]
    if cfg is not None:
        file = run_config_file(run)
        table = config_table(cfg)
        blocks.append(
            Details(
                f"Configuration ({len(table.rows)} keys)",
                [table, Code(OmegaConf.to_yaml(cfg), f"full config ({os.path.relpath(file, run)})")],
                f"`{os.path.relpath(file, root)}`",
            )
        )
    series, source = read_training_log(run)
    blocks.append(Heading("Training curves", 3))
    curves = files / f"{slug(name)}_training_curves.png"
    if source is not None and plot_training_curves(series, curves, f"{name}: train (lines) and val (dots)"):
        blocks.append(Figure(curves, f"Training curves, from `{os.path.relpath(source, root)}`."))
    else:
        blocks.append(Text("No training log (csv/metrics.csv or a W&B offline run) with train/val metrics."))
    metrics = read_json(run / "metrics.json")
    if metrics:
        where = f"`{os.path.relpath(run / 'metrics.json', root)}`"
        blocks.append(
            Details(f"Final metrics of the run ({len(metrics)} keys)", metrics_tables(metrics), where)
        )
    figures = []
    for candidates, caption in RUN_FIGURES:
        found = next((run / "images" / c for c in candidates if (run / "images" / c).is_file()), None)
        if found is not None:
            figures.append(Figure(found, caption))
    if figures:
        blocks += [Heading("Figures written during training", 3), *figures]
    return blocks


# -- the summary screen -------------------------------------------------------------------------------------

SUMMARY_HORIZONS = (1, 5, 10)


def _pair(metrics: dict[str, float], model: str, baseline: str) -> str:
    """ "model / baseline" from a run's metrics, "-" where the run has neither."""
    a, b = metrics.get(model), metrics.get(baseline)
    return "-" if a is None and b is None else f"{fmt(a)} / {fmt(b)}"


def summary_section(runs: list[Path], root: Path) -> list[Block]:
    """The report's first screen: one row per training run with its headline test results next to their
    baselines (reconstruction PSNR; object position error and frame MSE of the rollouts against copy-last; the
    agent's share of the random-to-oracle gap, its actor's and its planner's), and the key pictures: the test
    rollouts of the last world model trained on the physics datasets and the agent's paths. Every figure comes
    from the run's metrics.json."""
    header = ["run", "phase on dataset", "recon PSNR (dB)"]
    header += [f"pos. err. t{t} (px), model / copy-last" for t in SUMMARY_HORIZONS]
    header += ["MSE t10, model / copy-last", "sharpness t1 / t10", "area ratio t1 / t10"]
    header += ["agent, actor: gap closed (actor / random / oracle return)"]
    header += ["agent, planner: gap closed (planner return, ms per action)"]
    rows, rollouts, paths = [], None, None
    for run in runs:
        metrics = read_json(run / "metrics.json")
        if not metrics:
            continue
        cfg = read_config(run)
        phase = select(cfg, "phase.name") if cfg is not None else None
        dataset = select(cfg, "dataset.name") if cfg is not None else None
        row = [f"`{name_of(run, root)}`", f"{phase} on {dataset}" if cfg is not None else "-"]
        row.append(fmt(metrics.get("test/recon_psnr")))
        for t in SUMMARY_HORIZONS:
            row.append(
                _pair(metrics, f"test/rollout_pos_err/t{t:02d}", f"test/baseline_copy_last_pos_err/t{t:02d}")
            )
        row.append(_pair(metrics, "test/rollout_mse/t10", "test/baseline_copy_last_mse/t10"))
        row.append(_pair(metrics, "test/rollout_sharpness/t01", "test/rollout_sharpness/t10"))
        row.append(_pair(metrics, "test/rollout_area_ratio/t01", "test/rollout_area_ratio/t10"))
        gap = metrics.get("test/gap_closed")
        row.append(
            "-"
            if gap is None
            else f"{fmt(gap)} ({fmt(metrics.get('test/return_policy'))} / {fmt(metrics.get('test/return_random'))}"
            f" / {fmt(metrics.get('test/return_oracle'))})"
        )
        planner = metrics.get("test/gap_closed_planner")
        row.append(
            "-"
            if planner is None
            else f"{fmt(planner)} ({fmt(metrics.get('test/return_planner'))}, "
            f"{fmt(metrics.get('test/planner_ms_per_action'))} ms)"
        )
        rows.append(row)
        image = run / "images" / "rollout_test.png"
        if image.is_file() and dataset != "goal_reach":
            rollouts = image
        if (run / "images" / "rl_trajectory.png").is_file():
            paths = run / "images" / "rl_trajectory.png"
    if not rows:
        return []
    blocks: list[Block] = [
        Heading("Summary", 2),
        Text(
            "Test results of each training run next to their baselines (`-`: the run has no such result). Position "
            "error: pixels between where an object is drawn and where the simulator put it, mean over datasets. "
            "Sharpness and area ratio of the predicted frames: their gradient energy and drawn-on area as fractions "
            "of the truth's (1 is right; area above 1: smeared or drawn twice, below 1: faded)."
        ),
        Table(header, rows),
    ]
    if rollouts is not None:
        blocks.append(
            Figure(
                rollouts,
                f"Test rollouts of `{name_of(rollouts.parents[1], root)}` (truth above, model below).",
            )
        )
    if paths is not None:
        blocks.append(
            Figure(paths, f"The agent's paths in the real environment (`{name_of(paths.parents[1], root)}`).")
        )
    return blocks


def online_section(root: Path, files: Path) -> list[Block]:
    """Learning online (pipeline.online): the real-environment return of each round against the environment steps
    collected so far, from the pipeline folder's metrics.json (physworld.online); nothing for other folders."""
    from physworld.online import curve
    from physworld.plots.rl import online_curve_plot

    if not (root / "pipeline.json").is_file():
        return []
    rows = curve(read_json(root / "metrics.json"))
    if not rows:
        return []
    keys = [
        (k, label)
        for k, label in (
            ("return_policy", "agent"),
            ("return_planner", "planner"),
            ("return_random", "random"),
            ("return_oracle", "reference"),
            ("gap_closed", "gap closed"),
        )
        if any(k in r for r in rows)
    ]
    figure = files / "online_return_vs_env_steps.png"
    online_curve_plot(rows, figure)
    return [
        Heading("Learning online", 2),
        Text(
            "Each round collected episodes in the real environment (round 0: random policy; later: the previous "
            "round's agent plus exploration noise), fine-tuned the world model on all of them and trained the "
            "agent in imagination; its return is the agent step's test/ evaluation in the real environment. "
            "Environment steps count every step played to collect data; policy steps those the agent chose. "
            "Read from the pipeline's `metrics.json`."
        ),
        Table(
            ["round", "environment steps", "policy steps", *[label for _, label in keys]],
            [
                [str(int(r["round"])), fmt(r.get("env_steps")), fmt(r.get("policy_steps"))]
                + [fmt(r.get(k)) for k, _ in keys]
                for r in rows
            ],
        ),
        Figure(figure, "Real-environment return after each round against the environment steps collected."),
    ]
