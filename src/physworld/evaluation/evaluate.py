"""evaluate(cfg): score a trained world model on held-out data and write metrics and figures.

In a visible order: check the settings, rebuild the phase from its checkpoint, decide which data (the
training run's own, or `dataset=`), score every dataset, then write into the evaluation folder
`metrics.json` (flat `stage/metric/<dataset>[/tNN]` keys, plus `stage/metric[/tNN]` means over datasets,
as in a training run's metrics.json), `evaluation.json` (what was evaluated, with what, and the figure list),
`config.yaml` and the figures. A reconstruction checkpoint has no dynamics: reconstruction and codebook
scores only. With dynamics, also the state probes (`evaluation.probes`, evaluation/probes.py) and on goal_reach
the counterfactual actions (`evaluation.counterfactual`, evaluation/counterfactual.py).

Generalisation and long horizons (evaluation/generalisation.py defines the keys):
- `evaluation.split=ood_test` scores the out-of-distribution split alone (keys `ood_test/...`);
  `evaluation.split=long_test evaluation.horizon=50` rolls out 50 steps on the long sequences (`long_test/...`).
- `evaluation.ood_gap=true` (with split=test) scores `test` and `ood_test` side by side: `test/...` and
  `ood_test/...` keys, and `ood_gap/<metric>/<dataset>[/tNN]` (ood minus test) and `ood_ratio/...` (ood over test)
  for the model and for copy-last, constant velocity and the tokenizer floor each; datasets without an ood split
  (moving_mnist, goal_reach) are scored on test only.
- Always, per dataset with rollouts: `<split>/crossover_mse/<dataset>` and `<split>/crossover_pos_err/<dataset>`,
  the first horizon at which the model is no longer below copy-last, or "never".
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from physworld.callbacks.metrics_file import scalar_metrics
from physworld.data.cache import ensure_split, load_params, load_split
from physworld.data.plan import datasets_for
from physworld.devices import pick_device
from physworld.errors import ConfigError
from physworld.evaluation.architecture import architecture_diagram
from physworld.evaluation.checks import check_evaluation
from physworld.evaluation.counterfactual import counterfactual_metrics
from physworld.evaluation.figures import preview_figures, reconstruction_figures, rollout_figures
from physworld.evaluation.generalisation import crossover_metrics, gap_metrics, write_evaluation_metrics
from physworld.evaluation.probes import probe_metrics
from physworld.evaluation.runs import run_config_file, training_config, training_run_dir
from physworld.evaluation.scoring import DatasetScores, score_reconstruction, score_rollouts, to_frames
from physworld.log_handlers import drop_lightning_console_handler
from physworld.metrics.lpips import LPIPS, MIN_SIZE, build_lpips
from physworld.metrics.rollout import horizon_keys
from physworld.paths import compose
from physworld.phases.checkpoints import load_phase
from physworld.plots.horizon import error_vs_horizon_plot

log = logging.getLogger(__name__)


@dataclass
class DataPlan:
    """Which data is evaluated and where it comes from."""

    datasets: list[dict]  # plain dataset dicts, caps applied (as the datamodule gets them)
    data_dir: str
    seed: int
    source: str  # said in evaluation.json and the report
    label: str  # the dataset choice, for the folder name
    verify: str = "auto"  # data.verify: "always" hashes every data file before it is scored


def data_plan(cfg: DictConfig, ckpt_path: str) -> DataPlan:
    """`dataset=<name>|all` when given; otherwise the data of the run that wrote the checkpoint (check_evaluation
    has checked the `dataset` choice)."""
    dataset = cfg.get("dataset")
    if dataset is not None:
        seed = int(cfg.data.seed)
        source = f"dataset={dataset.name} (configs/dataset), data seed {seed}"
        verify = str(cfg.data.get("verify", "auto"))
        return DataPlan(datasets_for(cfg), str(cfg.paths.data_dir), seed, source, dataset.name, verify)
    found = training_config(ckpt_path)
    if found is None:
        raise ConfigError(
            f"dataset=None: {ckpt_path!r} has no training run config beside it (<run>/.hydra/config.yaml), "
            "so the data it was trained on is unknown: pass dataset=<name> or dataset=all"
        )
    train_cfg, file = found
    try:
        datasets = datasets_for(train_cfg)
        data_dir = str(train_cfg.paths.data_dir)
        seed = int(OmegaConf.select(train_cfg, "data.seed", default=train_cfg.seed))  # older runs: one seed
    except (OmegaConfBaseException, KeyError, TypeError) as err:
        raise ConfigError(f"{file}: cannot read its dataset ({err}); pass dataset=<name>") from None
    source = f"the training run's config ({file}), data seed {seed}"
    verify = str(OmegaConf.select(cfg, "data.verify", default="auto"))
    return DataPlan(datasets, data_dir, seed, source, str(train_cfg.dataset.name), verify)


class Timings(dict):
    """Wall seconds per part of an evaluation (reconstruction, rollouts, probes, counterfactual, ood_test,
    figures), summed over datasets: evaluation.json's `timings`, logged at the end, and `make bench`'s."""

    @contextmanager
    def part(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - start

    def line(self) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.items())


def output_dir(cfg: DictConfig, ckpt_path: str, label: str) -> Path:
    """`output_dir`, else `<run>/evaluate/<time>_<dataset>` for a checkpoint in a run's checkpoints/ folder
    (so the run's report finds it), else `<paths.log_dir>/evaluate/runs/<time>_<dataset>`."""
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    now = time.time()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"
    run = training_run_dir(ckpt_path)
    base = run / "evaluate" if run else Path(cfg.paths.log_dir) / "evaluate" / "runs"
    return base / f"{stamp}_{label}"


def score_dataset(
    phase,
    dataset: dict,
    plan: DataPlan,
    ev: DictConfig,
    device,
    lpips: LPIPS | None = None,
    split=None,
    timings: Timings | None = None,
    probe_fits: dict | None = None,
) -> DatasetScores:
    """Score one dataset's `split` (default: `evaluation.split`), each part's time added to `timings`;
    `probe_fits`: the state probes fitted so far for this model (probes.probe_metrics), reused and added to."""
    timings = Timings() if timings is None else timings
    path = ensure_split(plan.data_dir, dataset, split or ev.split, plan.seed)
    arrays, params = load_split(path, verify=plan.verify), load_params(path)
    total, t, h, w = arrays["frames"].shape[:4]  # (N, T, H, W, 3)
    if lpips is not None and min(h, w) < MIN_SIZE:
        raise ConfigError(
            f"evaluation.lpips=true is not accepted for {dataset['name']}: its frames are {h}x{w} and LPIPS's "
            f"AlexNet needs {MIN_SIZE}x{MIN_SIZE} or more (set evaluation.lpips=false)"
        )
    n = total if ev.num_sequences is None else min(ev.num_sequences, total)
    with timings.part("reconstruction"):
        recon, codebook, examples, encoded = score_reconstruction(
            phase, arrays, params, dataset["name"], n, ev.batch_size, device, ev.num_images, lpips
        )
    preview = to_frames(arrays["frames"][:4, ::2], torch.device("cpu"))[:, : ev.num_images]
    scores = DatasetScores(dataset["name"], n, t, recon, codebook, examples, preview)
    if not phase.entry.trains_dynamics:
        return scores  # a reconstruction checkpoint: no dynamics to roll out
    c = ev.context_frames or phase.context_frames
    k = min(ev.horizon, t - c)
    if k < 1:
        scores.notes.append(f"{t} frames stored, none left after {c} context frames: no rollout")
        return scores
    scores.context_frames = c
    with timings.part("rollouts"):
        scores.rollout, scores.examples = score_rollouts(
            phase, arrays, params, dataset["name"], n, c, k, ev.batch_size, device, lpips, encoded
        )
    if "pos_err" not in scores.rollout["model"]:
        scores.notes.append("no point-like objects drawn in known colours: no position error")
    with timings.part("probes"):
        scores.extra.update(
            probe_metrics(
                phase,
                dataset,
                arrays,
                n,
                c,
                ev.probes,
                plan.data_dir,
                plan.seed,
                ev.batch_size,
                device,
                probe_fits,
                encoded[0],
            )
        )
    with timings.part("counterfactual"):
        scores.extra.update(
            counterfactual_metrics(
                phase, dataset, arrays, params, n, c, k, ev.counterfactual, ev.batch_size, device
            )
        )
    return scores


def flat_metrics(scores: dict[str, DatasetScores], stage: str) -> dict[str, float]:
    """`stage/metric/<dataset>[/tNN]` per dataset, then `stage/metric[/tNN]`: the mean over datasets."""
    metrics: dict[str, float] = {}
    for name, s in scores.items():
        metrics.update({f"{stage}/recon_{k}/{name}": v for k, v in s.recon.items()})
        metrics.update({f"{stage}/codebook_{k}/{name}": v for k, v in s.codebook.items()})
        if s.rollout is not None:
            metrics.update({k: float(v) for k, v in horizon_keys(stage, s.rollout, dataset=name).items()})
        metrics.update({f"{stage}/{k}": v for k, v in s.extra.items()})
    metrics = scalar_metrics(metrics)  # drops NaN (e.g. a horizon where no object was found)
    groups: dict[str, list[float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")  # stage, metric, dataset[, tNN]
        groups.setdefault("/".join(parts[:2] + parts[3:]), []).append(value)
    metrics.update({key: sum(values) / len(values) for key, values in groups.items()})
    return dict(sorted(metrics.items()))


def evaluation_record(ckpt_path: str, phase, plan: DataPlan, scores: dict, stage: str, device) -> dict:
    """What was evaluated, on which data, with what (evaluation.json; the report reads it)."""
    run = training_run_dir(ckpt_path)
    return {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "phase": phase.hparams.phase["name"],
        "trained_on": list(phase.dataset_names),
        "training_run": str(run) if run and run_config_file(run) else None,
        "split": stage,
        "data_source": plan.source,
        "data_dir": str(Path(plan.data_dir).resolve()),
        "seed": plan.seed,
        "has_dynamics": phase.entry.trains_dynamics,
        "datasets": [
            {
                "name": s.name,
                "sequences": s.num_sequences,
                "frames": s.num_frames,
                "context_frames": s.context_frames or None,
                "horizon": len(s.rollout["model"]["mse"]) if s.rollout else None,
                "notes": s.notes,
            }
            for s in scores.values()
        ],
        "device": str(device),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def evaluate(cfg: DictConfig) -> tuple[Path, dict[str, float | int | str]]:
    """Evaluate `cfg.ckpt_path`; write the evaluation folder; return it and the flat metrics (numbers, and the
    crossover horizons: an int or "never")."""
    check_evaluation(cfg)
    drop_lightning_console_handler()  # under Hydra its console handler prints Lightning's lines already
    ev = cfg.evaluation
    lpips = build_lpips(ev.lpips, ev.lpips_backbone, "evaluation.lpips_backbone")  # None when off
    ckpt_path = str(cfg.ckpt_path)
    phase, _ = load_phase(ckpt_path)
    plan = data_plan(cfg, ckpt_path)
    device = pick_device(cfg.evaluation.device, "evaluation.device")
    out = output_dir(cfg, ckpt_path, plan.label)
    out.mkdir(parents=True, exist_ok=True)
    phase.to(device).eval()
    lpips = lpips.to(device) if lpips is not None else None
    name = phase.hparams.phase["name"]
    log.info(f"evaluate: {name} checkpoint {ckpt_path} on {[d['name'] for d in plan.datasets]}")

    timings, started, fits = Timings(), time.perf_counter(), {}
    scores = {
        d["name"]: score_dataset(phase, d, plan, ev, device, lpips, None, timings, fits)
        for d in plan.datasets
    }
    stage = cfg.evaluation.split
    metrics = flat_metrics(scores, stage)
    metrics.update(crossover_metrics(scores, stage))
    figures, ood = {}, {}
    if ev.ood_gap:
        with timings.part("ood_test"):  # all of its parts: the parts above are the evaluated split's
            ood = {
                d["name"]: score_dataset(phase, d, plan, ev, device, lpips, "ood_test", None, fits)
                for d in plan.datasets
                if d.get("ood")
            }
        if not ood:
            raise ConfigError(
                f"evaluation.ood_gap=true is not accepted for {[d['name'] for d in plan.datasets]}: "
                "none has an ood_test split (an `ood:` block in configs/dataset)"
            )
        ood_metrics = flat_metrics(ood, "ood_test")
        in_dist = flat_metrics({n: scores[n] for n in ood}, stage)  # the same datasets as the ood split
        metrics.update(ood_metrics)
        metrics.update(crossover_metrics(ood, "ood_test"))
        metrics.update(gap_metrics(in_dist, ood_metrics, stage, "ood_test"))
        rolled = {n: s.rollout for n, s in ood.items() if s.rollout is not None}
        if rolled:
            error_vs_horizon_plot(rolled, out / "ood_test_rollout_error_vs_horizon.png", "(ood_test)")
            figures["ood_test_rollout_error_vs_horizon.png"] = (
                "As rollout_error_vs_horizon.png, on the out-of-distribution split ood_test."
            )
    write_evaluation_metrics(out / "metrics.json", metrics)

    with timings.part("figures"):
        figures["architecture_diagram.png"] = "The model, traced: real output shapes and parameter counts."
        counts = architecture_diagram(
            phase, out / "architecture_diagram.png", f"physworld world model ({name})"
        )
        figures.update(reconstruction_figures(scores, out))
        figures.update(
            rollout_figures(scores, out, cfg.evaluation.num_examples, cfg.evaluation.num_gif_sequences)
        )
        figures.update(preview_figures(scores, out))
    timings["total"] = time.perf_counter() - started
    log.info(f"evaluate: {stage} of {[d['name'] for d in plan.datasets]} in {timings.line()}")

    record = evaluation_record(ckpt_path, phase, plan, scores, stage, device)
    settings = {k: ev[k] for k in ("ood_gap", "horizon", "num_sequences", "context_frames")}
    record.update(parameters=counts, figures=figures, settings=settings)  # settings: the report reads them
    record["timings"] = {k: round(v, 3) for k, v in timings.items()}
    if ood:
        record["ood_test"] = [
            {"name": s.name, "sequences": s.num_sequences, "notes": s.notes} for s in ood.values()
        ]
    (out / "evaluation.json").write_text(json.dumps(record, indent=2))
    OmegaConf.save(cfg, out / "config.yaml")
    return out, metrics


def evaluate_run(
    run: str | Path, overrides=(), checkpoint: str = "best.ckpt", data_from: DictConfig | None = None
) -> tuple[Path, dict[str, float]]:
    """Evaluate `<run>/checkpoints/<checkpoint>` as `python scripts/evaluate.py ckpt_path=... <overrides>`
    would, from Python (a pipeline evaluating its steps before writing its report). `data_from`: a composed
    training config whose `dataset` and `data` (seed and caps) are evaluated, as `dataset=<name>` would be, in
    place of the run's saved ones (a pipeline step's config composed now: the current dataset configs)."""
    cfg = compose("evaluate", overrides)
    with open_dict(cfg):
        cfg.ckpt_path = str(Path(run) / "checkpoints" / checkpoint)  # set, not parsed: any path works
        if data_from is not None:
            cfg.dataset = OmegaConf.create(OmegaConf.to_container(data_from.dataset, resolve=True))
            cfg.data = OmegaConf.create(OmegaConf.to_container(data_from.data, resolve=True))
    return evaluate(cfg)
