"""write_report(folder): `report.md` and `report.html` for a run or a pipeline folder.

Everything under the folder is found by what it holds: a training run has `csv/metrics.csv`, `checkpoints/`
or a config with a phase (`.hydra/config.yaml`, or `config.yaml` in a pipeline step); an evaluation
(scripts/evaluate.py) has `evaluation.json`. Each training run gets its configuration, training curves (CSV
log, or W&B offline log), final metrics and the figures its callbacks wrote (image grids, rollouts, and the
RL phase's `rl_training.png` / `rl_trajectory.png`), followed by its evaluations: metrics tables read from
the evaluation's own metrics.json, and its figures. A pipeline's `pipeline.json` gives a table of its steps.
After the Summary, the Generalisation section (evaluation/generalisation_report.py): out-of-distribution gap,
long-rollout error growth, counterfactual actions and state probes of every evaluated model with dynamics.
Generated figures (training curves) go to `<folder>/report_files/`, and so do copies of the figures too large
to inline in report.html (document.INLINE_LIMIT), which links them there.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm.auto import tqdm

from physworld.errors import PhysworldError
from physworld.evaluation.curves import read_training_log
from physworld.evaluation.document import (
    Block,
    Code,
    Details,
    Figure,
    Heading,
    Table,
    Text,
    fmt,
    to_html,
    to_markdown,
)
from physworld.evaluation.generalisation_report import Evaluated, generalisation_section
from physworld.evaluation.runs import load_run_config, run_config_file
from physworld.plots.curves import plot_training_curves

SKIP = {"wandb", "checkpoints", "csv", "images", ".hydra", "report_files", "__pycache__"}
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
RECON_COLUMNS = [
    ("recon_l1", "L1"),
    ("recon_mse", "MSE"),
    ("recon_psnr", "PSNR (dB)"),
    ("recon_ssim", "SSIM"),
    ("recon_sharpness", "sharpness"),
    ("recon_lpips", "LPIPS"),  # shown only where some dataset has it (evaluation.lpips=true)
    ("recon_pos_err", "position error (px)"),
    ("codebook_perplexity", "codebook perplexity"),
    ("codebook_dead_codes", "dead codes"),
    ("codebook_used_fraction", "codes used"),
]
FRAME_COLUMNS = [
    ("rollout_mse", "MSE model"),
    ("baseline_copy_last_mse", "MSE copy-last"),
    ("tokenizer_floor_mse", "MSE tokenizer floor"),
    ("rollout_psnr", "PSNR model"),
    ("baseline_copy_last_psnr", "PSNR copy-last"),
    ("rollout_ssim", "SSIM model"),
    ("baseline_copy_last_ssim", "SSIM copy-last"),
    ("rollout_sharpness", "sharpness model"),
    ("tokenizer_floor_sharpness", "sharpness tokenizer floor"),
    ("rollout_area_ratio", "area ratio model"),
    ("tokenizer_floor_area_ratio", "area ratio tokenizer floor"),
    ("rollout_lpips", "LPIPS model"),  # the LPIPS columns: only in evaluations with evaluation.lpips=true
    ("baseline_copy_last_lpips", "LPIPS copy-last"),
    ("tokenizer_floor_lpips", "LPIPS tokenizer floor"),
]
PHYSICS_COLUMNS = [
    ("rollout_pos_err", "position error model (px)"),
    ("baseline_copy_last_pos_err", "copy-last (px)"),
    ("baseline_const_vel_pos_err", "const. velocity (px)"),
    ("tokenizer_floor_pos_err", "tokenizer floor (px)"),
    ("truth_pos_err", "estimator floor (px)"),
    ("rollout_pos_found", "objects found"),
    ("rollout_token_acc", "codes right model"),
    ("baseline_copy_last_token_acc", "codes right copy-last"),
]
OPT_IN = {"recon_lpips"}  # reconstruction columns of metrics that are off by default
HORIZON = re.compile(r"^(.*)/t(\d+)$")


def discover(root: Path) -> tuple[list[Path], list[Path]]:
    """Training runs and evaluation folders under `root` (itself included), sorted by path."""
    runs, evaluations = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        if "evaluation.json" in filenames:
            evaluations.append(folder)
        elif is_training_run(folder):
            runs.append(folder)
    return runs, evaluations


def is_training_run(folder: Path) -> bool:
    """A run with something to report: a CSV log, checkpoints or metrics. A folder with only its config is a
    run that stopped at start-up (a bad value, a crash before the first checkpoint): nothing to show."""
    results = ("csv/metrics.csv", "checkpoints", "metrics.json")
    # A pipeline folder is not a run: its metrics.json holds its online rounds (online_section).
    if (folder / "pipeline.json").is_file():
        return False
    return any((folder / name).exists() for name in results)


def read_config(run: Path) -> DictConfig | None:
    file = run_config_file(run)
    return load_run_config(file) if file else None


def select(cfg: DictConfig, key: str):
    """A config value, resolved where it can be (`${hydra:...}` cannot outside Hydra), else as written."""
    try:
        return OmegaConf.select(cfg, key)
    except OmegaConfBaseException:  # an interpolation that only resolves in the original run: as written
        node = OmegaConf.to_container(cfg, resolve=False)
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def name_of(folder: Path, root: Path) -> str:
    rel = os.path.relpath(folder, root)
    return folder.name if rel == "." else rel


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


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


# -- evaluations --------------------------------------------------------------------------------------------


def per_dataset(metrics: dict[str, float], split: str, key: str, name: str, t: int | None = None):
    suffix = f"/t{t:02d}" if t is not None else ""
    return metrics.get(f"{split}/{key}/{name}{suffix}")


def evaluation_section(folder: Path, root: Path) -> list[Block]:
    record = read_json(folder / "evaluation.json")
    metrics = read_json(folder / "metrics.json")
    split = record.get("split", "test")
    names = [d["name"] for d in record.get("datasets", [])]
    blocks: list[Block] = [
        Heading(f"Evaluation `{name_of(folder, root)}` ({record.get('phase')} checkpoint, {split} split)", 2),
        Text(
            f"Checkpoint `{record.get('checkpoint')}`, trained on {', '.join(record.get('trained_on', []))}; "
            f"evaluated on the {split} split of {', '.join(names)}, data from {record.get('data_source')} "
            f"(`{record.get('data_dir')}`), on {record.get('device')}, {record.get('created')}. "
            "Numbers below are read from this evaluation's `metrics.json`."
        ),
        Table(
            ["dataset", "sequences", "frames", "context frames", "horizon", "notes"],
            [
                [
                    d["name"],
                    str(d["sequences"]),
                    str(d["frames"]),
                    str(d.get("context_frames") or "-"),
                    str(d.get("horizon") or "-"),
                    "; ".join(d.get("notes", [])),
                ]
                for d in record.get("datasets", [])
            ],
        ),
    ]
    counts = record.get("parameters") or {}
    if counts:
        blocks.append(Table(["component", "parameters"], [[k, f"{v:,}"] for k, v in counts.items()]))
    blocks.append(Heading("Reconstruction and codebook usage", 3))
    recon_columns = [
        (key, label)
        for key, label in RECON_COLUMNS
        if key not in OPT_IN or any(per_dataset(metrics, split, key, n) is not None for n in names)
    ]
    blocks.append(
        Table(
            ["dataset"] + [label for _, label in recon_columns],
            [[n] + [fmt(per_dataset(metrics, split, key, n)) for key, _ in recon_columns] for n in names],
        )
    )
    if not record.get("has_dynamics"):
        blocks.append(
            Text(
                f"This is a {record.get('phase')} checkpoint: the model has no dynamics yet, so there are no "
                "rollouts, no comparison with the copy-last baseline and no position error. Evaluate a "
                "prediction or comprehensive checkpoint for those."
            )
        )
    else:
        blocks += rollout_tables(metrics, split, names)
    figures = [
        Figure(folder / file, caption)
        for file, caption in (record.get("figures") or {}).items()
        if (folder / file).is_file()
    ]
    if figures:
        blocks += [Heading("Figures", 3), *figures]
    return blocks


def rollout_steps(metrics: dict[str, float], split: str, name: str) -> list[int]:
    prefix = f"{split}/rollout_mse/{name}/t"
    return sorted(int(key[len(prefix) :]) for key in metrics if key.startswith(prefix))


def rollout_tables(metrics: dict[str, float], split: str, names: list[str]) -> list[Block]:
    """The first and last horizon of every dataset in one table, each dataset's every horizon folded."""
    blocks: list[Block] = [
        Heading("Rollouts against the copy-last-frame baseline", 3),
        Text(
            "Open-loop rollouts: the model sees the context frames, then predicts every later frame from its "
            "own predictions. The copy-last baseline repeats the last context frame; a model that learned "
            "the physics beats it; constant velocity moves the true object positions on at their last velocity; "
            "the tokenizer floor decodes the codes of the true future frames, the best a dynamics can show "
            "through this VQ-VAE. Position errors locate each object by its colour in the predicted frame "
            "and measure the distance to the simulator's position (moving_mnist: to the position read off the "
            "true frame, as its stored position is the digit's box, not its ink); the estimator floor is the same "
            "measurement on the true frames, and `objects found` the share of objects located at all. Sharpness "
            "is the frames' gradient energy as a fraction of the true frames' (1: as crisp as the truth)."
        ),
    ]
    if any(key.startswith(f"{split}/rollout_lpips/") for key in metrics):
        blocks.append(
            Text(
                "LPIPS is the learned perceptual distance of Zhang et al. (2018), AlexNet version, per frame "
                "(0: the same frame; larger: less alike)."
            )
        )
    horizons = {name: rollout_steps(metrics, split, name) for name in names}
    glance = [
        *FRAME_COLUMNS[:3],
        *PHYSICS_COLUMNS[:4],
        ("rollout_pos_found", "objects found"),
        FRAME_COLUMNS[7],
    ]
    rows = []
    for name, steps in horizons.items():
        for t in sorted({steps[0], steps[-1]}) if steps else []:
            rows.append(
                [name, f"t{t:02d}"] + [fmt(per_dataset(metrics, split, k, name, t)) for k, _ in glance]
            )
    if rows:  # the first and the last horizon of every dataset, before the full tables
        blocks.append(Table(["dataset", "horizon"] + [label for _, label in glance], rows))
    for name, steps in horizons.items():
        if not steps:
            continue
        detail: list[Block] = []
        for columns in (FRAME_COLUMNS, PHYSICS_COLUMNS):
            # A column is shown when any horizon has it; the model's position error also when it is NaN
            # everywhere (no object found in any prediction), which `objects found` then explains.
            shown = {
                k
                for k, _ in columns
                if any(per_dataset(metrics, split, k, name, t) is not None for t in steps)
            }
            if "rollout_pos_found" in shown:
                shown.add("rollout_pos_err")
            present = [(k, label) for k, label in columns if k in shown]
            if present:
                detail.append(
                    Table(
                        ["horizon"] + [label for _, label in present],
                        [
                            [f"t{t:02d}"] + [fmt(per_dataset(metrics, split, k, name, t)) for k, _ in present]
                            for t in steps
                        ],
                    )
                )
        blocks.append(Details(f"{name}: every horizon", [Heading(name, 4), *detail]))
    return blocks


# -- the report ---------------------------------------------------------------------------------------------


def build(root: Path) -> list[Block]:
    runs, evaluations = discover(root)
    if not runs and not evaluations:
        raise PhysworldError(
            f"{root}: no training run with results (csv/metrics.csv, checkpoints/ or metrics.json) or evaluation "
            "(evaluation.json) in it: pass a run folder, a pipeline folder or an evaluation folder"
        )
    # An evaluation reached directly still shows the run it evaluated, when that run exists.
    for folder in evaluations:
        trained = read_json(folder / "evaluation.json").get("training_run")
        if trained and Path(trained).is_dir() and Path(trained).resolve() not in [r.resolve() for r in runs]:
            runs.append(Path(trained))
    owner = {}
    for folder in evaluations:
        trained = read_json(folder / "evaluation.json").get("training_run")
        owner[folder] = next((r for r in runs if trained and r.resolve() == Path(trained).resolve()), None)
    files = root / "report_files"
    files.mkdir(exist_ok=True)
    blocks: list[Block] = [
        Heading(f"physworld report: {root.name}", 1),
        Text(
            f"Generated by `scripts/report.py` on {time.strftime('%Y-%m-%d %H:%M')} from `{root}`: "
            f"{len(runs)} training run(s), {len(evaluations)} evaluation(s)."
        ),
    ]
    blocks += summary_section(runs, root)
    if runs or evaluations:  # after the summary: the generalisation of every evaluated model
        read = [
            Evaluated(f, read_json(f / "evaluation.json"), read_json(f / "metrics.json")) for f in evaluations
        ]
        blocks += generalisation_section(read, lambda folder: name_of(folder, root))
    blocks += online_section(root, files)
    steps = read_json(root / "pipeline.json")
    if steps:
        blocks += [
            Heading("Pipeline steps", 2),
            Table(
                ["step", "phase", "dataset", "seconds"],
                [
                    [n, str(s.get("phase")), str(s.get("dataset")), fmt(s.get("seconds"))]
                    for n, s in steps.items()
                ],
            ),
        ]
    for run in tqdm(runs, desc="report: runs", unit="run", leave=False):  # curves and figures of each run
        blocks += run_section(run, root, files)
        for folder in evaluations:
            if owner[folder] == run:
                blocks += evaluation_section(folder, root)
    for folder in evaluations:
        if owner[folder] is None:
            blocks += evaluation_section(folder, root)
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


def write_report(folder: str | Path) -> tuple[Path, Path]:
    """Write `<folder>/report.md` and `<folder>/report.html`; return their paths."""
    root = Path(folder).resolve()
    if root.is_file():  # e.g. a checkpoint: a report reads run folders, it never loads a checkpoint
        raise PhysworldError(f"{folder}: a file, not a folder (pass a run, pipeline or evaluation folder)")
    if not root.is_dir():
        raise PhysworldError(f"{folder}: no such folder (pass a run, pipeline or evaluation folder)")
    blocks = build(root)
    md, page = root / "report.md", root / "report.html"
    md.write_text(to_markdown(blocks, root))
    page.write_text(to_html(blocks, f"physworld report: {root.name}", files=root / "report_files"))
    return md, page
