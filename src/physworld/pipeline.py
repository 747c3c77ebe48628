"""Run an experiment's phases in order: `python scripts/pipeline.py experiment=<name> [overrides]`.

An experiment that defines `pipeline.steps` (configs/experiment/*.yaml) lists the runs to chain: each step
has a `name` (its folder under `pipeline.dir`), the train.py `overrides` that make it (phase, dataset, sizes,
...) and optionally `init_from`, the earlier step whose best checkpoint it starts from. The experiment's
`pipeline.common_overrides` (optional) apply to every step before the step's own, so what all steps share is
written once; the command-line overrides apply to every step after them (so `phase.max_epochs=1` shortens every
step).

When every step is done it evaluates the world-model steps (scripts/evaluate.py) and writes the pipeline's
report (`report.md`, `report.html`; `pipeline.report: false` skips both), the evaluations side by side in
`pipeline.evaluate_workers` processes. With `pipeline.generalisation: true` the evaluation of the last world-model
step of each dataset choice also scores the ood_test split beside test (`evaluation.ood_gap=true`, when its
datasets have one) and, with dynamics, rolls out `pipeline.long_horizon` steps on the long_test split: what the
report's Generalisation section shows. Those evaluations read each step's data from the current configs (the step's
composed `dataset` and `data`), not from the step's saved config.yaml, so they also work on steps trained before
the datasets had `ood:` and `long_num_frames`.

With `pipeline.online` (learning online in a Gymnasium environment, src/physworld/online.py), `pipeline.steps`
are the steps of one round, repeated `pipeline.online.rounds` times as `r<round>_<name>`, all on the episodes
collected so far (dataset=episodes of `<pipeline.dir>/episodes`). Before a round's first step its episodes are
collected with the previous round's agent (round 0: the random policy, collected before the checks, which read
the episodes); a step's `init_from` names a step of its round, `init_from_previous_round` one of the round before
(round 0: none), `first_round_overrides` apply in round 0 only. The pipeline folder's metrics.json then holds each
finished round's environment steps and real-environment returns.

The pipeline folder is stable (not timestamped), so rerunning the same command resumes: a step whose
`metrics.json` exists is done and skipped; a step with a `last.ckpt` but no metrics was killed and resumes
from it (`ckpt_path`); later steps start over. All datasets are generated (or verified) before the first
step, so a bad dataset config fails in seconds, not after an hour of training.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from physworld.choices import check_choices, group_options
from physworld.data.cache import SPLITS, ensure_split
from physworld.data.plan import datasets_for
from physworld.errors import ConfigError
from physworld.online import (
    EPISODES,
    OnlineSettings,
    agent_step,
    collect_before,
    collect_round,
    log_online_round,
    round_name,
    round_of,
    write_online_metrics,
)
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
    online = pipeline.get("online")
    if online is None:
        steps = [
            step_config(root, step, common, overrides, step.name, step.get("init_from"))
            for step in check_steps(pipeline.steps)
        ]
        return root, steps, pipeline
    settings = OnlineSettings.from_config(online)
    # Every step of every round reads the episodes collected so far, and evaluates its agent in their environment.
    common += ["dataset=episodes", f"dataset.path={root / EPISODES}", f"dataset.env_id={settings.env_id}"]
    round_steps = check_steps(pipeline.steps, online=True)
    steps = []
    for r in range(settings.rounds):
        for step in round_steps:
            first = list(step.get("first_round_overrides") or []) if r == 0 else []
            previous = step.get("init_from_previous_round")
            init = f"{round_name(r)}_{step.init_from}" if step.get("init_from") else None
            if init is None and previous is not None and r > 0:
                init = f"{round_name(r - 1)}_{previous}"
            steps.append(
                step_config(root, step, common, overrides, f"{round_name(r)}_{step.name}", init, first)
            )
    agent_step(steps, 0)  # a round without an agent has nothing to collect with: one line, now
    return root, steps, pipeline


def check_steps(steps, online: bool = False):
    """pipeline.steps, each step's init_from an earlier step (of the same round, online) and, online, its
    init_from_previous_round a step of the round; one ConfigError line otherwise."""
    names = []
    for step in steps:
        init = step.get("init_from")
        if init is not None and init not in names:
            raise ConfigError(
                f"pipeline step {step.name!r}: init_from={init!r} is not an earlier step ({names})"
            )
        names.append(step.name)
        extra = [k for k in ("init_from_previous_round", "first_round_overrides") if step.get(k) is not None]
        if extra and not online:
            raise ConfigError(
                f"pipeline step {step.name!r}: {extra[0]} is a key of online rounds (pipeline.online)"
            )
    if online:
        for step in steps:
            previous = step.get("init_from_previous_round")
            if previous is not None and previous not in names:
                raise ConfigError(
                    f"pipeline step {step.name!r}: init_from_previous_round={previous!r} is not a step of the "
                    f"round ({names})"
                )
    return steps


def step_config(
    root: Path, step, common: list[str], overrides: list[str], name: str, init: str | None, first=()
) -> tuple[str, DictConfig]:
    """A step's composed config (its overrides after `common`, then the round-0 ones `first`, then the command
    line's), run in root/`name`, starting from the best checkpoint of step `init` (None: from scratch)."""
    # Later overrides win: the step's own over the common ones, the command line (e.g. phase.max_epochs=1
    # for every step) over both.
    check_choices(list(step.overrides), CONFIG_DIR)
    check_choices(list(first), CONFIG_DIR)
    extra = [*common, *step.overrides, *first, *overrides]
    if init is not None:
        extra.append(f"phase.init_from={root / init / 'checkpoints' / 'best.ckpt'}")
    cfg = compose("train", extra)
    with open_dict(cfg):
        cfg.paths.output_dir = str(root / name)
        cfg.task_name = "pipeline"
    return name, cfg


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
    online = OnlineSettings.from_config(settings.online) if settings.get("online") is not None else None
    long_horizon = generalisation_horizon(settings)
    if online is not None:
        # The steps read the collected episodes (dataset=episodes), which their checks look at: round 0's
        # episodes are collected first (random policy: no checkpoint needed), once.
        root.mkdir(parents=True, exist_ok=True)
        collect_round(root, 0, online, int(steps[0][1].data.seed), None)
    # Fail on any bad value before generating or training anything, and before torch and Lightning are
    # imported (seconds): the plan and the checks need neither.
    for _, cfg in steps:
        check_config(cfg, files=False)
    from lightning.pytorch.utilities import rank_zero_info

    from physworld.run import train

    root.mkdir(parents=True, exist_ok=True)
    generate_all(steps)
    log = root / "pipeline.json"
    record = json.loads(log.read_text()) if log.is_file() else {}
    for index, (name, cfg) in enumerate(steps):
        folder = Path(cfg.paths.output_dir)
        if (folder / "metrics.json").is_file():
            rank_zero_info(f"pipeline: step {name} is done ({folder / 'metrics.json'}), skipping it")
            if online is not None:
                write_online_metrics(root, steps, online)
            continue
        if online is not None:
            collect_before(root, steps, index, online)
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
        train(cfg, values_checked=True)  # every step's values checked above
        record[name] = {
            "phase": cfg.phase.name,
            "dataset": cfg.dataset.name,
            "dir": str(folder),
            "seconds": round(time.perf_counter() - started, 1),
        }
        log.write_text(json.dumps(record, indent=2))
        if online is not None:
            rows = write_online_metrics(root, steps, online)
            if name == agent_step(steps, round_of(name))[0] and rows and rows[-1]["round"] == round_of(name):
                log_online_round(root, cfg, rows[-1])
    if settings.get("report", True):
        workers = evaluate_workers(settings)
        write_pipeline_report(root, steps, int(settings.get("evaluate_sequences", 32)), long_horizon, workers)
    if settings.get("table"):
        print_rollout_tables(steps, list(settings.table))
    return root


def print_rollout_tables(steps: list[tuple[str, DictConfig]], horizons: list[int]) -> None:
    """`pipeline.table` (a list of horizons): print the test rollout table (physworld.report.rollout_table)
    of the last step that trains dynamics, the mean over its datasets and each dataset's, at those horizons."""
    from physworld.report.rollout_table import table

    trained = [(name, cfg) for name, cfg in steps if declared(cfg.phase.name, "trains_dynamics")]
    if not trained:
        return
    name, cfg = trained[-1]
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    members = datasets_for(cfg)
    for dataset in [None, *(d["name"] for d in members)] if len(members) > 1 else [None]:
        print(f"\n{name}, test rollouts, {dataset or 'mean over the datasets'}:")
        print(table(metrics, "test", dataset, horizons))


def evaluate_workers(settings: DictConfig) -> int:
    """`pipeline.evaluate_workers`: the processes that run the end-of-pipeline evaluations side by side; "auto"
    (the default) is one per 4 CPU cores, 1 to 4 (an evaluation keeps about 2 threads busy: on 2 cores two
    one-thread workers were slower than one two-thread process, docs/results.md). A bad value fails with one
    line."""
    value = settings.get("evaluate_workers", "auto")
    if value == "auto":
        return max(1, min(4, (os.cpu_count() or 1) // 4))
    if not positive_int(value):
        raise ConfigError(f"pipeline.evaluate_workers={value!r} is not accepted: auto or a positive integer")
    return int(value)


def timings_line(folder: Path) -> str:
    """An evaluation folder and its seconds per part (evaluation.json's `timings`), in one line."""
    from physworld.evaluation.evaluate import Timings

    timings = Timings(json.loads((folder / "evaluation.json").read_text()).get("timings") or {})
    return f"{folder} ({timings.line()})"


def _evaluate_job(job: tuple) -> str:
    """One evaluation in a worker process (spawned: a fresh interpreter): evaluate_run with `threads` torch
    threads, so that the workers share the cores instead of each spinning on all of them."""
    import torch

    from physworld.evaluation.evaluate import evaluate_run

    folder, overrides, data_from, threads = job
    torch.set_num_threads(threads)
    return str(evaluate_run(folder, overrides, data_from=data_from)[0])


def write_pipeline_report(
    root: Path,
    steps: list[tuple[str, DictConfig]],
    sequences: int,
    long_horizon: int | None = None,
    workers: int = 1,
) -> Path:
    """Evaluate every world-model step once (architecture diagram, per-dataset figures and tables) and write
    `report.md` / `report.html` for the whole pipeline. With `long_horizon` (pipeline.generalisation), the
    evaluations of the Generalisation section too (step_evaluations), for the generalisation_steps. With
    `workers` > 1 and more than one evaluation to run, they run in that many spawned processes at once, the CPU
    threads shared among them."""
    from lightning.pytorch.utilities import rank_zero_info

    from physworld.evaluation.evaluate import evaluate_run
    from physworld.report.build import write_report

    jobs, final = [], generalisation_steps(steps)
    for name, cfg in steps:
        folder = Path(cfg.paths.output_dir)
        # evaluate.py scores world models; an agent's step (rl) makes its own figures
        if not declared(cfg.phase.name, "is_world_model"):
            continue
        done = [json.loads(f.read_text()) for f in sorted(folder.glob("evaluate/*/evaluation.json"))]
        horizon = long_horizon if name in final else None
        for kind, overrides in step_evaluations(cfg, sequences, horizon):
            if not any(kind in evaluation_kinds(record) for record in done):
                jobs.append((name, kind, folder, overrides, cfg if long_horizon else None))
    workers = min(workers, len(jobs))
    if workers <= 1:
        for name, kind, folder, overrides, data_from in jobs:
            rank_zero_info(f"pipeline: evaluating step {name} ({kind})")
            out, _ = evaluate_run(folder, overrides, data_from=data_from)
            rank_zero_info(f"pipeline: evaluated step {name} ({kind}): {timings_line(out)}")
    elif jobs:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import torch

        threads = max(1, torch.get_num_threads() // workers)
        rank_zero_info(
            f"pipeline: {len(jobs)} evaluations ({', '.join(f'{n} {k}' for n, k, *_ in jobs)}) in {workers} "
            f"processes of {threads} thread(s)"
        )
        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            args = [(folder, overrides, data_from, threads) for _, _, folder, overrides, data_from in jobs]
            for (name, kind, *_), out in zip(jobs, pool.map(_evaluate_job, args)):
                rank_zero_info(f"pipeline: evaluated step {name} ({kind}): {timings_line(Path(out))}")
        rank_zero_info(f"pipeline: evaluations done in {time.perf_counter() - started:.1f} s")
    markdown, page = write_report(root)
    rank_zero_info(f"pipeline: report {markdown} and {page}")
    return page


def generalisation_steps(steps: list[tuple[str, DictConfig]]) -> set[str]:
    """The steps the generalisation evaluations go to: the last world-model step of each dataset choice (the
    demo's 3_comprehensive for dataset=all and 4_agent_world for goal_reach). An earlier step on the same data
    is a stage the later one starts from or supersedes (the VQ-VAE of step 1, the dynamics of step 2): it gets
    the test evaluation only."""
    last: dict[str, str] = {}
    for name, cfg in steps:
        if declared(cfg.phase.name, "is_world_model"):
            last[str(cfg.dataset.name)] = name
    return set(last.values())


def step_evaluations(
    cfg: DictConfig, sequences: int, long_horizon: int | None
) -> list[tuple[str, list[str]]]:
    """The evaluations of a world-model step, as (kind, evaluate.py overrides): the test split ("test"); with
    `long_horizon`, that one beside ood_test ("ood_gap", when the step's datasets have an ood split) and, for a
    phase with dynamics, a `long_horizon`-step rollout on long_test ("long_test", without the probes and
    counterfactual actions)."""
    common = [f"evaluation.num_sequences={sequences}", f"paths.data_dir={cfg.paths.data_dir}"]
    if long_horizon is None:
        return [("test", common)]
    has_ood = any(d.get("ood") for d in datasets_for(cfg))
    out = [("ood_gap", [*common, "evaluation.ood_gap=true"]) if has_ood else ("test", common)]
    if declared(cfg.phase.name, "trains_dynamics"):
        # the report reads probes and counterfactual actions from the test evaluation only: not scored again here
        skip = ["evaluation.probes.enabled=false", "evaluation.counterfactual.enabled=false"]
        long = [*common, "evaluation.split=long_test", f"evaluation.horizon={long_horizon}", *skip]
        out.append(("long_test", long))
    return out


def evaluation_kinds(record: dict) -> set[str]:
    """What an evaluation folder holds in step_evaluations' terms, from its evaluation.json: its split, and
    "ood_gap" where it scored ood_test beside test."""
    return {str(record.get("split"))} | ({"ood_gap"} if record.get("ood_test") else set())
