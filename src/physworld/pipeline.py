"""Run an experiment's phases in order: `python scripts/pipeline.py experiment=<name> [overrides]`.

An experiment that defines `pipeline.steps` (configs/experiment/*.yaml) lists the runs to chain: each step
has a `name` (its folder under `pipeline.dir`), the train.py `overrides` that make it (phase, dataset, sizes,
...) and optionally `init_from`, the earlier step whose best checkpoint it starts from. The experiment's
`pipeline.common_overrides` (optional) apply to every step before the step's own, so what all steps share is
written once; the command-line overrides apply to every step after them (so `phase.max_epochs=1` shortens every
step).

When every step is done it evaluates the world-model steps (scripts/evaluate.py) and writes the pipeline's
report (`report.md`, `report.html`; `pipeline.report: false` skips both). With `pipeline.generalisation: true` that
evaluation also scores the ood_test split beside test (`evaluation.ood_gap=true`, when a step's datasets have one)
and, for steps with dynamics, rolls out `pipeline.long_horizon` steps on the long_test split: what the report's
Generalisation section shows. Those evaluations read each step's data from the current configs (the step's
composed `dataset` and `data`), not from the step's saved config.yaml, so they also work on steps trained before
the datasets had `ood:` and `long_num_frames`.

The pipeline folder is stable (not timestamped), so rerunning the same command resumes: a step whose
`metrics.json` exists is done and skipped; a step with a `last.ckpt` but no metrics was killed and resumes
from it (`ckpt_path`); later steps start over. All datasets are generated (or verified) before the first
step, so a bad dataset config fails in seconds, not after an hour of training.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from physworld.choices import check_choices, group_options
from physworld.data.cache import SPLITS, ensure_split
from physworld.data.plan import datasets_for
from physworld.errors import ConfigError
from physworld.paths import CONFIG_DIR, compose
from physworld.phases import declared
from physworld.require import positive_int


def has_steps(experiment: str) -> bool:
    """Whether configs/experiment/<experiment>.yaml defines pipeline.steps (so scripts/pipeline.py can run it)."""
    node = OmegaConf.load(CONFIG_DIR / "experiment" / f"{experiment}.yaml")
    return bool(OmegaConf.select(node, "pipeline.steps"))


def plan(overrides: list[str]) -> tuple[Path, list[tuple[str, DictConfig]], DictConfig]:
    """The pipeline folder, each step's composed config (with its run folder and starting checkpoint) and the
    experiment's `pipeline` node."""
    check_choices(overrides, CONFIG_DIR)  # experiment=demoo: one line naming the experiments there are
    base = compose("train", overrides)
    pipeline = base.get("pipeline")
    if not pipeline or not pipeline.get("steps"):
        with_steps = [name for name in group_options(CONFIG_DIR, "experiment") if has_steps(name)]
        raise ConfigError(
            f"experiment={HydraConfig.get().runtime.choices.get('experiment')!r} has no pipeline.steps: "
            f"accepted an experiment that defines them, one of {with_steps}"
        )
    root = Path(pipeline.dir)
    common = list(pipeline.get("common_overrides") or [])
    check_choices(common, CONFIG_DIR)
    steps, names = [], []
    for step in pipeline.steps:
        name = step.name
        init = step.get("init_from")
        if init is not None and init not in names:
            raise ConfigError(f"pipeline step {name!r}: init_from={init!r} is not an earlier step ({names})")
        # Later overrides win: the step's own over the common ones, the command line (e.g. phase.max_epochs=1
        # for every step) over both.
        extra = [*common, *step.overrides, *overrides]
        check_choices(list(step.overrides), CONFIG_DIR)
        if init is not None:
            extra.append(f"phase.init_from={root / init / 'checkpoints' / 'best.ckpt'}")
        cfg = compose("train", extra)
        with open_dict(cfg):
            cfg.paths.output_dir = str(root / name)
            cfg.task_name = "pipeline"
        steps.append((name, cfg))
        names.append(name)
    return root, steps, pipeline


def generate_all(steps: list[tuple[str, DictConfig]]) -> None:
    seen = set()
    for _, cfg in steps:
        for dataset in datasets_for(cfg):
            key = json.dumps([cfg.paths.data_dir, dataset, cfg.data.seed], sort_keys=True)
            if key not in seen:
                seen.add(key)
                for split in SPLITS:
                    ensure_split(cfg.paths.data_dir, dataset, split, cfg.data.seed)


def generalisation_horizon(settings: DictConfig) -> int | None:
    """`pipeline.long_horizon` (default 50) when `pipeline.generalisation` is true, else None; a bad value of
    either fails with one line."""
    on, horizon = settings.get("generalisation", False), settings.get("long_horizon", 50)
    if not isinstance(on, bool):
        raise ConfigError(f"pipeline.generalisation={on!r} is not accepted: true or false")
    if not positive_int(horizon):
        raise ConfigError(f"pipeline.long_horizon={horizon!r} is not accepted: a positive integer")
    return horizon if on else None


def run_pipeline(overrides: list[str]) -> Path:
    """Run (or resume) every step; return the pipeline folder. Each step writes its own run folder."""
    from physworld.checks import RUN_RESULTS, check_config

    root, steps, settings = plan(overrides)
    # Fail on any bad value before generating or training anything, and before torch and Lightning are
    # imported (seconds): the plan and the checks need neither.
    for _, cfg in steps:
        check_config(cfg, files=False)
    long_horizon = generalisation_horizon(settings)
    from lightning.pytorch.utilities import rank_zero_info

    from physworld.run import train

    root.mkdir(parents=True, exist_ok=True)
    generate_all(steps)
    log = root / "pipeline.json"
    record = json.loads(log.read_text()) if log.is_file() else {}
    for name, cfg in steps:
        folder = Path(cfg.paths.output_dir)
        if (folder / "metrics.json").is_file():
            rank_zero_info(f"pipeline: step {name} is done ({folder / 'metrics.json'}), skipping it")
            continue
        last = folder / "checkpoints" / "last.ckpt"
        if last.is_file():
            rank_zero_info(f"pipeline: step {name} was interrupted, resuming from {last}")
            with open_dict(cfg):
                cfg.ckpt_path = str(last)
        elif any((folder / result).exists() for result in RUN_RESULTS):
            # interrupted before its first checkpoint: nothing to resume; its logs are kept beside the new run
            kept = folder.with_name(f"{folder.name}.interrupted-{time.strftime('%Y-%m-%d_%H-%M-%S')}")
            folder.rename(kept)
            rank_zero_info(f"pipeline: step {name} stopped before its first checkpoint; kept it as {kept}")
        rank_zero_info(f"pipeline: step {name}: {cfg.phase.name} on {cfg.dataset.name} -> {folder}")
        started = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        train(cfg)
        record[name] = {
            "phase": cfg.phase.name,
            "dataset": cfg.dataset.name,
            "dir": str(folder),
            "seconds": round(time.perf_counter() - started, 1),
        }
        log.write_text(json.dumps(record, indent=2))
    if settings.get("report", True):
        write_pipeline_report(root, steps, int(settings.get("evaluate_sequences", 32)), long_horizon)
    if settings.get("table"):
        print_rollout_tables(steps, list(settings.table))
    return root


def print_rollout_tables(steps: list[tuple[str, DictConfig]], horizons: list[int]) -> None:
    """`pipeline.table` (a list of horizons): print the test rollout table (physworld.evaluation.rollout_table)
    of the last step that trains dynamics, the mean over its datasets and each dataset's, at those horizons."""
    from physworld.evaluation.rollout_table import table

    trained = [(name, cfg) for name, cfg in steps if declared(cfg.phase.name, "trains_dynamics")]
    if not trained:
        return
    name, cfg = trained[-1]
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    members = datasets_for(cfg)
    for dataset in [None, *(d["name"] for d in members)] if len(members) > 1 else [None]:
        print(f"\n{name}, test rollouts, {dataset or 'mean over the datasets'}:")
        print(table(metrics, "test", dataset, horizons))


def write_pipeline_report(
    root: Path, steps: list[tuple[str, DictConfig]], sequences: int, long_horizon: int | None = None
) -> Path:
    """Evaluate every world-model step once (architecture diagram, per-dataset figures and tables) and write
    `report.md` / `report.html` for the whole pipeline. With `long_horizon` (pipeline.generalisation), the
    evaluations of the Generalisation section too (step_evaluations)."""
    from lightning.pytorch.utilities import rank_zero_info

    from physworld.evaluation.evaluate import evaluate_run
    from physworld.evaluation.report import write_report

    for name, cfg in steps:
        folder = Path(cfg.paths.output_dir)
        # evaluate.py scores world models; an agent's step (rl) makes its own figures
        if not declared(cfg.phase.name, "is_world_model"):
            continue
        done = [json.loads(f.read_text()) for f in sorted(folder.glob("evaluate/*/evaluation.json"))]
        for kind, overrides in step_evaluations(cfg, sequences, long_horizon):
            if not any(kind in evaluation_kinds(record) for record in done):
                rank_zero_info(f"pipeline: evaluating step {name} ({kind})")
                evaluate_run(folder, overrides, data_from=cfg if long_horizon else None)
    markdown, page = write_report(root)
    rank_zero_info(f"pipeline: report {markdown} and {page}")
    return page


def step_evaluations(
    cfg: DictConfig, sequences: int, long_horizon: int | None
) -> list[tuple[str, list[str]]]:
    """The evaluations of a world-model step, as (kind, evaluate.py overrides): the test split ("test"); with
    `long_horizon`, that one beside ood_test ("ood_gap", when the step's datasets have an ood split) and, for a
    phase with dynamics, a `long_horizon`-step rollout on long_test ("long_test")."""
    common = [f"evaluation.num_sequences={sequences}", f"paths.data_dir={cfg.paths.data_dir}"]
    if long_horizon is None:
        return [("test", common)]
    has_ood = any(d.get("ood") for d in datasets_for(cfg))
    out = [("ood_gap", [*common, "evaluation.ood_gap=true"]) if has_ood else ("test", common)]
    if declared(cfg.phase.name, "trains_dynamics"):
        out.append(
            ("long_test", [*common, "evaluation.split=long_test", f"evaluation.horizon={long_horizon}"])
        )
    return out


def evaluation_kinds(record: dict) -> set[str]:
    """What an evaluation folder holds in step_evaluations' terms, from its evaluation.json: its split, and
    "ood_gap" where it scored ood_test beside test."""
    return {str(record.get("split"))} | ({"ood_gap"} if record.get("ood_test") else set())
