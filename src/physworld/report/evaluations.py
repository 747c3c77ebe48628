"""The report's tables of one evaluation (scripts/evaluate.py's folder): reconstruction and codebook per dataset,
and the rollouts per horizon, the model beside its baselines (copy-last, constant velocity, the tokenizer
floor) and the object-level metrics."""

from __future__ import annotations

from pathlib import Path

from physworld.report.document import Block, Details, Figure, Heading, Table, Text, fmt
from physworld.report.folders import name_of, read_json

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
