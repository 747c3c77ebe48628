"""export_world_model(ckpt, out): a trained world model as a folder anyone can load without trusting a pickle.

    <out>/model.safetensors  the world model's tensors (`vqvae.*`, `dynamics.*`, `frame_head.*`), weights only
    <out>/config.json        what rebuilds the networks (the checkpoint's model config) and where they came from
    <out>/MODEL_CARD.md      the data and its generator versions, the training config, the test metrics next to
                             the baselines: read from the run's files (data manifests, .hydra/config.yaml,
                             metrics.json), never retyped

`physworld.load_world_model(<out>)` loads it (world_model.py). Only the world model is exported: an rl
checkpoint's reward model, actor and critic are not (the model card says which networks the folder holds).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import physworld
from physworld.atomic import check_new_folder, temp_name
from physworld.data.cache import SPLITS, cache_name, read_manifest, split_dir
from physworld.data.files import sha256_file
from physworld.data.plan import datasets_for
from physworld.errors import CheckpointError, os_error
from physworld.evaluation.runs import load_run_config, run_config_file, training_run_dir
from physworld.metrics.rollout import PREFIXES
from physworld.phases.checkpoints import NETWORKS, read_phase_checkpoint
from physworld.report.document import Code, Heading, Table, Text, fmt, to_markdown

FORMAT = "physworld.world_model"
FORMAT_VERSION = 1  # of the folder's layout and config.json; load_world_model accepts this version
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "MODEL_CARD.md"
HORIZON = re.compile(r"^test/(?P<name>[^/]+)(?P<dataset>/[^/]+)?/t(?P<t>\d+)$")
COLUMNS = {  # column label of each rollout prefix (metrics/rollout.py), in table order
    "model": "model",
    "copy_last": "copy-last",
    "const_vel": "constant velocity",
    "tokenizer": "tokenizer floor",
    "truth": "estimator floor",
}


def export_world_model(ckpt_path: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write model.safetensors, config.json and MODEL_CARD.md of `ckpt_path` into `out`, a new or empty folder
    (or, with `overwrite`, one whose files of these names are replaced; others are kept); return `out`.

    Each file is written under a temporary name first; the three are renamed into place once all are written,
    so a failed export (a full disk) leaves what the folder held before. OSError becomes FileSystemError."""
    ckpt_path, out = Path(ckpt_path), Path(out)
    check_new_folder(out, "out", overwrite)
    ckpt = read_phase_checkpoint(ckpt_path, "ckpt_path")  # safe: nothing in the file runs
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_export(ckpt, ckpt_path, out)
    except OSError as err:
        raise os_error(err, out) from None
    return out


def write_export(ckpt: dict, ckpt_path: Path, out: Path) -> None:
    from safetensors.torch import save_file

    hparams, state = ckpt["hyper_parameters"], ckpt["state_dict"]
    # safetensors stores dense row-major tensors: channels_last weights are made contiguous, values unchanged
    tensors = {k: v.contiguous() for k, v in state.items() if k.split(".", 1)[0] in NETWORKS}
    networks = [n for n in NETWORKS if any(k.startswith(f"{n}.") for k in tensors)]
    temps = {name: temp_name(out / name) for name in (WEIGHTS, CONFIG, CARD)}
    try:
        metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION)}
        save_file(tensors, str(temps[WEIGHTS]), metadata=metadata)
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "physworld_version": physworld.__version__,
            "networks": networks,
            "model": hparams[
                "model"
            ],  # configs/model as the run used it: rebuilds the networks (phases/base.py, prediction.py)
            "phase": hparams.get("phase") or {},  # the training phase's settings (context_frames, ...)
            "trained_on": hparams.get("dataset_names") or [],
            "source_checkpoint": str(ckpt_path.resolve()),
            "weights_sha256": sha256_file(temps[WEIGHTS]),  # read_export checks the weights against it
        }
        temps[CONFIG].write_text(json.dumps(config, indent=2) + "\n")
        temps[CARD].write_text(model_card(ckpt_path, config, out))
        for name, tmp in temps.items():
            os.replace(tmp, out / name)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def read_export(folder: Path, key: str = "path") -> tuple[dict, dict[str, torch.Tensor]]:
    """An exported folder's model config and tensors; CheckpointError (one line) when it is not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    missing = [name for name in (CONFIG, WEIGHTS) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{key}={str(folder)!r} is a folder without {', '.join(missing)}: accepted a checkpoint file or a "
            "folder written by scripts/export.py"
        )
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{key}={str(folder)!r}: {CONFIG} is not readable JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or "model" not in config:
        raise CheckpointError(f"{key}={str(folder)!r}: {CONFIG} is not a physworld world-model export")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{key}={str(folder)!r} has format_version={config.get('format_version')!r}: accepted {FORMAT_VERSION}"
        )
    expected = config.get("weights_sha256")  # exports written before the hash was stored have none
    if expected is not None and sha256_file(folder / WEIGHTS) != expected:
        raise CheckpointError(
            f"{key}={str(folder / WEIGHTS)!r} is corrupt: its sha256 does not match the one in {CONFIG}; export "
            "the checkpoint again (scripts/export.py)"
        )
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(f"{key}={str(folder)!r}: {WEIGHTS} is not readable ({detail})") from None
    return config["model"], tensors


# -- the model card -----------------------------------------------------------------------------------------


def model_card(ckpt_path: Path, config: dict, out: Path) -> str:
    run = training_run_dir(ckpt_path)
    config_file = run_config_file(run) if run else None
    metrics_file = run / "metrics.json" if run else None
    nets = " and ".join(
        {"vqvae": "The VQ-VAE", "dynamics": "the ConvGRU dynamics", "frame_head": "the frame head"}[n]
        for n in config["networks"]
    )
    phase = config["phase"].get("name", "?")
    blocks = [
        Heading(f"physworld world model: {phase} on {', '.join(config['trained_on']) or '?'}", 1),
        Text(
            f"{nets} of `{ckpt_path.resolve()}`, exported by physworld {config['physworld_version']}. "
            f"Load it with `physworld.load_world_model({str(out)!r})` (docs/guide.md, Python API); "
            f"`{WEIGHTS}` holds the weights only, `{CONFIG}` the model config that rebuilds the networks."
        ),
        Heading("Data", 2),
        *data_blocks(config_file),
        Heading("Training config", 2),
        *config_blocks(config_file, config),
        Heading("Test metrics", 2),
        *metric_blocks(metrics_file),
    ]
    return to_markdown(blocks, out)


def data_blocks(config_file: Path | None) -> list:
    """One row per dataset and split: its size and generator version from the split's manifest (as generated),
    or from the run's config when the data is not on this machine."""
    if config_file is None:
        return [Text("Unknown: the checkpoint is not in a training run folder (`<run>/checkpoints/`).")]
    cfg = load_run_config(config_file)
    try:
        datasets = datasets_for(cfg)
        data_dir = OmegaConf.select(cfg, "paths.data_dir", throw_on_missing=False)
        seed = OmegaConf.select(cfg, "data.seed", default=cfg.get("seed"))
    except (OmegaConfBaseException, KeyError, TypeError) as err:
        return [Text(f"The run's config ({config_file}) does not say which data ({err}).")]
    rows, read = [], 0
    for dataset in datasets:
        for split in SPLITS:
            manifest = read_manifest(split_dir(data_dir, cache_name(dataset), split)) if data_dir else {}
            spec = manifest.get("spec") or {}
            read += bool(spec)
            frames = (manifest.get("files") or {}).get("frames", {})
            rows.append(
                [
                    dataset["name"],
                    split,
                    str(spec.get("num_sequences", dataset["sizes"][split])),
                    str(spec.get("num_frames", dataset["num_frames"])),
                    str(spec.get("version", "-")),
                    str(spec.get("seed", seed)),
                    f"`{frames['sha256']}`" if frames.get("sha256") else "-",
                ]
            )
    source = (
        f"the manifests in `{data_dir}`" if read else f"the run's config (`{config_file}`): data not found"
    )
    return [
        Text(
            f"Generated by physworld's scene generators (`src/physworld/data/scenes/`); sizes, generator "
            f"versions, seeds and hashes from {source}."
        ),
        Table(
            [
                "dataset",
                "split",
                "sequences",
                "frames",
                "generator version",
                "data seed",
                "frames.npy sha256",
            ],
            rows,
        ),
    ]


def config_blocks(config_file: Path | None, config: dict) -> list:
    if config_file is not None:
        return [
            Text(f"The run's config, as saved (`{config_file}`):"),
            Code(config_file.read_text(), "config.yaml"),
        ]
    text = OmegaConf.to_yaml(OmegaConf.create({"model": config["model"], "phase": config["phase"]}))
    return [
        Text("No run folder beside the checkpoint: its hyperparameters instead."),
        Code(text, "hyperparameters"),
    ]


def metric_blocks(metrics_file: Path | None) -> list:
    """The run's test metrics: per rollout metric, a table of the model next to its baselines per horizon;
    then every other test metric. Values are metrics.json's, formatted as the reports format them."""
    if metrics_file is None or not metrics_file.is_file():
        return [Text("None: the run has no metrics.json.")]
    metrics = json.loads(metrics_file.read_text())
    tests = {k: v for k, v in metrics.items() if k.startswith("test/")}
    if not tests:
        return [Text(f"None: `{metrics_file}` has no test metrics (the run had test=false).")]
    tables: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    rest = {}
    by_length = sorted(PREFIXES.items(), key=lambda item: -len(item[1]))  # baseline_copy_last before ...
    for key, value in tests.items():
        match = HORIZON.match(key)
        column = metric = None
        if match:
            for label, prefix in by_length:
                if match["name"].startswith(f"{prefix}_"):
                    column, metric = label, match["name"][len(prefix) + 1 :]
                    break
        if column is None:
            rest[key] = value
            continue
        table = tables.setdefault((metric, (match["dataset"] or "").lstrip("/")), {})
        table.setdefault(int(match["t"]), {})[column] = value
    blocks = [Text(f"From `{metrics_file}`. Rollouts: frame t steps after the context, model and baselines.")]
    for (metric, dataset), steps in sorted(tables.items()):
        present = [c for c in COLUMNS if any(c in row for row in steps.values())]
        if "model" not in present:
            rest.update(
                {
                    f"test/{PREFIXES[c]}_{metric}/t{t:02d}": v
                    for t, row in steps.items()
                    for c, v in row.items()
                }
            )
            continue
        blocks.append(Heading(f"`{metric}`" + (f" on {dataset}" if dataset else ""), 3))
        rows = [[f"t{t:02d}"] + [fmt(steps[t].get(c)) for c in present] for t in sorted(steps)]
        blocks.append(Table(["horizon"] + [COLUMNS[c] for c in present], rows))
    if rest:
        blocks.append(Heading("Other test metrics", 3))
        blocks.append(Table(["metric", "value"], [[f"`{k}`", fmt(v)] for k, v in sorted(rest.items())]))
    return blocks


# -- the command line ----------------------------------------------------------------------------------------


def log_artifact(out: Path, project: str, wandb_dir: Path) -> str:
    """Log the exported folder's files as a W&B artifact of type "model" from a run of job type "export";
    offline (files under `wandb_dir`) unless the user chose a mode or has a key, as training's logger does."""
    import wandb

    if "WANDB_MODE" not in os.environ and "WANDB_API_KEY" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
    config = json.loads((out / CONFIG).read_text())
    wandb_dir.mkdir(parents=True, exist_ok=True)
    name = re.sub(
        r"[^\w.-]+",
        "-",
        f"world-model-{config['phase'].get('name', 'model')}-{'-'.join(config['trained_on'])}",
    )
    run = wandb.init(project=project, job_type="export", dir=str(wandb_dir), config=config)
    try:
        artifact = wandb.Artifact(
            name, type="model", description=f"exported from {config['source_checkpoint']}"
        )
        for file in (WEIGHTS, CONFIG, CARD):
            artifact.add_file(str(out / file))
        run.log_artifact(artifact)
    finally:
        run.finish()
    return name
