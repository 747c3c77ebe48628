"""Measure physworld's speed side by side in one run: `python scripts/benchmark.py [--quick]` (`make bench`).

Writes outputs/benchmarks/<timestamp>.json and .md (a markdown table) with, for the default model and batch:
training frames/s of each world-model phase through Lightning and through a plain PyTorch loop over the same
model, batch and loss (their ratio is the framework's overhead); every fast path on and off; the prediction
phase trained on the token cache against encoding every batch, for latent and token dynamics; host reads per
training step; imagination latent steps/s; the DataModule's frames/s against what training consumes; scene
generation (benchmark/scenes.py's code, as scripts/benchmark_scenes.py runs it); peak host and device
memory, memory per batch size and the largest batch for a budget; FLOPs per training frame and, on a GPU,
the MFU; the evaluation's seconds per part (reconstruction, rollouts, probes, counterfactual) on pendulum's
test, ood_test and long_test splits; and which targets are met. The machine's load average is recorded with
every measurement: on a shared machine, compare within a run.

scripts/benchmark.py is the repository's wrapper of this module's main().
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

import torch

from physworld.benchmark import flops, memory, throughput
from physworld.benchmark.host_reads import StepWindow
from physworld.benchmark.imagination import IMAGINERS
from physworld.benchmark.report import markdown, targets
from physworld.benchmark.scenes import scene_configs, scene_rate
from physworld.benchmark.workloads import (
    ROOT,
    build,
    compose_config,
    datamodule,
    phase_config,
    synthetic_batch,
)
from physworld.devices import pick_device
from physworld.phases import phases_that
from physworld.resolve import native_bf16, resolve_precision

SECTIONS = (
    "training",
    "fast_paths",
    "token_cache",
    "loading",
    "imagination",
    "scenes",
    "memory",
    "flops",
    "evaluation",
    "gpu",
)
# Each fast path: the overrides with it on, and with it off (everything else at the defaults).
FAST_PATHS = {
    "channels_last": (["perf.channels_last=true"], ["perf.channels_last=false"]),
    "bf16-mixed": (["trainer.precision=bf16-mixed"], ["trainer.precision=32-true"]),
    "fused_adamw": (["perf.fused_adamw=true"], ["perf.fused_adamw=false"]),
    "compile": (["perf.compile=true"], ["perf.compile=false"]),
    "on_device data": (["data.on_device=true"], ["data.on_device=false"]),
    "2 persistent workers, pinned": (
        ["data.num_workers=2", "data.persistent_workers=true", "data.pin_memory=true"],
        ["data.num_workers=0", "data.persistent_workers=false", "data.pin_memory=false"],
    ),
    "sync_free": (["perf.sync_free=true"], ["perf.sync_free=false"]),
}


def main() -> None:
    args = parse_args()
    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available: ..." at every fit
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device, "--device")
    bench = Bench(args, device)
    report = {"settings": bench.settings(), "environment": environment(device)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for section in SECTIONS:
        if section in args.skip or (section == "gpu" and device.type != "cuda"):
            continue
        print(f"[benchmark] {section} ...", flush=True)
        report[section] = getattr(bench, section)()
        stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))  # so far
    report["peak_host_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        report["peak_device_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    report["environment"]["loadavg_end"] = os.getloadavg()
    report["targets"] = targets(report)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(f"[benchmark] wrote {stem}.json and {stem}.md")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short measurements, one repeat (tests, smoke runs)"
    )
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per measurement")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats of compared runs")
    world_models = phases_that("is_world_model")  # one optimizer and one loss: what the plain loop trains
    parser.add_argument("--phases", nargs="+", default=list(world_models), choices=world_models)
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS + ("compile",))
    parser.add_argument("--override", action="append", default=[], help="a config override for every run")
    parser.add_argument("--gpu-batch", type=int, default=256, help="batch of the GPU throughput target")
    parser.add_argument(
        "--gpu-train-sequences",
        type=int,
        default=1024,
        help="train split of the GPU run (epochs of many steps)",
    )
    parser.add_argument("--memory-budget-gb", type=float, default=16.0, help="the seed's M4: 16 GB")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "benchmarks"))
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "bench"), help="its small Moving MNIST set")
    args = parser.parse_args()
    args.seconds = args.seconds if args.seconds is not None else (0.5 if args.quick else 3.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def environment(device: torch.device) -> dict:
    import lightning

    env = {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "device": str(device),
        "cpu_bf16": native_bf16("cpu"),
        # GNU OpenMP spins while it waits: with other processes on the cores, torch threads > 1 can be ~8x
        # slower than 1 thread; OMP_WAIT_POLICY=PASSIVE (set before torch starts) avoids it.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "loadavg_start": os.getloadavg(),
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["device_memory_gb"] = torch.cuda.get_device_properties(device).total_memory / 1e9
    return env


def median_run(runs: list[dict]) -> dict:
    """The run with the median frames/s (the lower middle one for an even count)."""
    return sorted(runs, key=lambda m: m["frames_per_s"])[(len(runs) - 1) // 2]


def median_ratio(a: list[dict], b: list[dict]) -> float:
    """Median over the interleaved repeats of a[i] / b[i] (frames/s): each pair ran back to back, so a slow
    patch of a shared machine hits both sides of a pair rather than one side of the comparison."""
    return statistics.median(x["frames_per_s"] / y["frames_per_s"] for x, y in zip(a, b))


class Bench:
    """One method per report section; each returns plain values for the JSON report."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.args, self.device = args, device
        self.tmp = Path(tempfile.mkdtemp(prefix="physworld-bench-"))
        accelerator = {"cuda": "gpu", "cpu": "cpu", "mps": "mps"}[device.type]
        self.base = [f"trainer.accelerator={accelerator}", *args.override]
        self.warmup = 1 if args.quick else 2
        self.consumption: dict[str, float] = {}  # Lightning frames/s per phase, for the loader's comparison

    def settings(self) -> dict:
        a = self.args
        keys = ("quick", "seconds", "repeats", "phases", "skip", "override", "gpu_batch", "memory_budget_gb")
        keys += ("gpu_train_sequences",)
        return {k: getattr(a, k) for k in keys} | {"warmup_steps": self.warmup, "device": str(self.device)}

    # -- sections ------------------------------------------------------------------------------------------

    def evaluation(self) -> dict:
        """scripts/evaluate.py's scoring, part by part (evaluation/evaluate.Timings), of an untrained prediction
        model (the cost does not depend on the weights) on pendulum: its test split and ood_test with the state
        probes fitted once on train, then 50-step rollouts on long_test (as a pipeline's generalisation
        evaluation does). The data is generated first, outside the timings; the figures are not drawn."""
        from physworld.data.cache import ensure_split
        from physworld.data.plan import datasets_for
        from physworld.evaluation.evaluate import DataPlan, Timings, score_dataset
        from physworld.paths import compose

        n = 8 if self.args.quick else 32
        sizes = [f"dataset.sizes.{s}={n}" for s in ("test", "ood_test", "long_test")]
        overrides = ["phase=prediction", "logger=csv", "callbacks=none", "dataset=pendulum", *sizes]
        overrides += [f"dataset.sizes.train={2 * n}", f"dataset.sizes.val={n}", *self.base]
        data_dir = Path(self.args.data_dir) / "evaluation"
        cfg = compose_config(overrides, self.tmp / "evaluation", data_dir)
        phase = build(cfg).to(self.device).eval()
        (dataset,) = datasets_for(cfg)
        seed = int(cfg.data.seed)
        for split in ("train", "test", "ood_test", "long_test"):
            ensure_split(data_dir, dataset, split, seed)
        plan = DataPlan([dataset], str(data_dir), seed, "benchmark", "pendulum")
        fits: dict = {}
        out = {}
        for split, extra in (
            ("test", []),
            ("ood_test", []),
            ("long_test", ["evaluation.horizon=50", "evaluation.probes.enabled=false"]),
        ):
            ev = compose("evaluate", [f"evaluation.split={split}", f"evaluation.num_sequences={n}", *extra])
            timings = Timings()
            with timings.part("total"):
                score_dataset(phase, dataset, plan, ev.evaluation, self.device, None, split, timings, fits)
            out[split] = {k: round(v, 3) for k, v in timings.items()} | {"sequences": n} | self.stamp()
        return out

    def training(self) -> dict:
        """Each phase through Lightning and through the plain loop, interleaved; then its host reads."""
        out = {}
        for name in self.args.phases:
            runs = {"lightning": [], "plain": []}
            for _ in range(self.args.repeats):
                runs["lightning"].append(self.lightning(name, []))
                runs["plain"].append(self.plain(name, []))
            self.consumption[name] = median_run(runs["lightning"])["frames_per_s"]
            out[name] = {
                "lightning": median_run(runs["lightning"]),
                "plain": median_run(runs["plain"]),
                "overhead_ratio": median_ratio(runs["plain"], runs["lightning"]),
                "host_reads": self.host_reads(name, []),
                "all_runs": runs,
            }
        return out

    def fast_paths(self) -> dict:
        """Every fast path on and off through Lightning (reconstruction, default batch), interleaved."""
        out = {}
        name = self.args.phases[0]
        for path, (on, off) in FAST_PATHS.items():
            if path == "compile" and "compile" in self.args.skip:
                continue
            if path == "bf16-mixed" and not self.bf16():
                out[path] = {"skipped": "no bf16 on this device (CPUs: AVX512-BF16 or AMX)"}
                continue
            runs = {"on": [], "off": []}
            repeats = 1 if path == "compile" else self.args.repeats
            for _ in range(repeats):
                for state, overrides in (("on", on), ("off", off)):
                    runs[state].append(self.lightning(name, overrides))
            out[path] = {
                "phase": name,
                "on": median_run(runs["on"]),
                "off": median_run(runs["off"]),
                "speedup": median_ratio(runs["on"], runs["off"]),
                "all_runs": runs,
            }
            if path == "bf16-mixed":  # the same comparison without Lightning
                plain = {s: self.plain(name, o) for s, o in (("on", on), ("off", off))}
                out[path]["plain_speedup"] = plain["on"]["frames_per_s"] / plain["off"]["frames_per_s"]
                out[path]["plain"] = plain
            if path == "sync_free":
                out[path]["host_reads_on"] = self.host_reads(name, on)
                out[path]["host_reads_off"] = self.host_reads(name, off)
        return out

    def token_cache(self) -> dict:
        """The prediction phase on the token cache (data.token_cache=true: codes, no encoder) against encoding
        every batch (false), for each dynamics output, interleaved. The VQ-VAE is the frozen random one of
        phase_config; the cache is encoded once, before the first timed run (its cost is reported apart)."""
        out = {}
        for output in ("latent", "tokens"):
            extra = [f"model.dynamics.output={output}"]
            encode_s = self.encode_once(extra)
            runs = {"on": [], "off": []}
            for _ in range(self.args.repeats):
                for state in ("on", "off"):
                    runs[state].append(
                        self.lightning("prediction", [*extra, f"data.token_cache={state == 'on'}"])
                    )
            out[output] = {
                "phase": "prediction",
                "on": median_run(runs["on"]),
                "off": median_run(runs["off"]),
                "speedup": median_ratio(runs["on"], runs["off"]),
                "encode_once_s": encode_s,
                "all_runs": runs,
            }
        return out

    def encode_once(self, overrides: list[str]) -> float:
        """Seconds to encode the benchmark's training split into the token cache (0 when it is already there)."""
        import time

        cfg = self.cfg("prediction", overrides)
        dm = datamodule(cfg)
        phase = build(cfg).to(self.device)
        started = time.perf_counter()
        dm.attach_token_cache(phase.vqvae, self.device)
        return time.perf_counter() - started

    def loading(self) -> dict:
        """The DataModule alone (as configured, on the device, with workers) against training's consumption."""
        out = {}
        variants = {
            "configured": [],
            "on_device": ["data.on_device=true"],
            "2 persistent workers, pinned": FAST_PATHS["2 persistent workers, pinned"][0],
        }
        for name in self.args.phases:
            out[name] = {}
            for variant, overrides in variants.items():
                cfg = self.cfg(name, overrides)
                dm = datamodule(cfg)
                loader = dm.device_loader(self.device) if cfg.data.on_device else dm.train_dataloader()
                b, t = int(cfg.phase.batch_size), int(cfg.phase.seq_len)
                measured = throughput.loading(loader, self.device, b, t, self.args.seconds) | self.stamp()
                if name in self.consumption:
                    measured["x_training"] = measured["frames_per_s"] / self.consumption[name]
                out[name][variant] = measured
        return out

    def imagination(self) -> dict:
        cfg = self.cfg("reconstruction", [])
        starts, horizon = 64, 15  # configs/phase/rl.yaml: imagination_starts, imagination_horizon
        out = {}
        for name, builder in IMAGINERS.items():
            for precision in ("fp32", "bf16"):
                if precision == "bf16" and not self.bf16():
                    continue
                imagine = builder(cfg, self.device, starts, horizon)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    measured = throughput.imagination(imagine, self.device, self.args.seconds)
                out[f"{name} {precision}"] = measured | {"starts": starts, "horizon": horizon} | self.stamp()
        return out

    def scenes(self) -> dict:
        sequences = 2 if self.args.quick else 16
        out = {}
        for name, cfg in scene_configs().items():
            seq_per_s = scene_rate(name, cfg, sequences, repeats=1)
            out[name] = {
                "sequences_per_call": sequences,
                "sequences_per_s": seq_per_s,
                "frames_per_s": seq_per_s * cfg["num_frames"],
            }
        return out

    def memory(self) -> dict:
        """The seed's batch 16 x 5 frames, and the largest batch of 10-frame windows in the budget."""
        run = self.memory_point
        seed = run(16, 5)
        batches = (1, 2) if self.args.quick else (2, 4, 8)
        points = [run(b, 10) for b in batches]
        # On a CPU the step's memory (RSS growth) excludes the weights, already resident; the allocator's
        # peak on a GPU includes them.
        weights = 0.0 if self.device.type == "cuda" else self.weights_mb()
        fit = memory.largest_batch(points, self.args.memory_budget_gb * 1024 - weights)
        how = "CUDA allocator peak over two training steps, fresh process per point"
        if self.device.type != "cuda":
            how = (
                "CPU: peak RSS minus RSS before two training steps (fresh process per point) plus the weights; "
                "the largest batch is a straight-line extrapolation, not a measured run"
            )
        return {
            "phase": "comprehensive",
            "how": how,
            "weights_mb": weights,
            "seed_batch16_seq5": seed | {"device_estimate_mb": seed["step_mb"] + weights},
            "seq10_points": points,
            "seq10_fit": fit,
        }

    def flops(self) -> dict:
        out = {}
        for name in self.args.phases:
            cfg = self.cfg(name, [])
            phase = build(cfg).to(self.device)
            b, t = int(cfg.phase.batch_size), int(cfg.phase.seq_len)
            total = flops.training_flops(phase, synthetic_batch(b, t, self.device))
            out[name] = {"flops_per_step": total, "flops_per_frame": total / (b * t)}
            if name in self.consumption:
                precision = resolve_precision(cfg)
                out[name] |= flops.utilisation(
                    total / (b * t), self.consumption[name], self.device, precision
                )
        return out

    def gpu(self) -> dict:
        """The GPU target: batch --gpu-batch, bf16, every fast path (compile too unless skipped), MFU."""
        fast = [
            f"dataset.sizes.train={self.args.gpu_train_sequences}",
            f"phase.batch_size={self.args.gpu_batch}",
            "trainer.precision=bf16-mixed",
            "data.on_device=true",
            "perf.channels_last=true",
            "perf.fused_adamw=true",
            "perf.sync_free=true",
        ]
        variants = {"eager": fast}
        if "compile" not in self.args.skip:
            variants["compiled"] = [*fast, "perf.compile=true"]
        out = {}
        for name in self.args.phases:
            cfg = self.cfg(name, fast)
            phase = build(cfg).to(self.device)
            b, t = int(cfg.phase.batch_size), int(cfg.phase.seq_len)
            per_frame = flops.training_flops(phase, synthetic_batch(b, t, self.device)) / (b * t)
            for variant, overrides in variants.items():
                torch.cuda.reset_peak_memory_stats(self.device)
                measured = self.lightning(name, overrides)
                measured["device_peak_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
                measured |= flops.utilisation(per_frame, measured["frames_per_s"], self.device, "bf16-mixed")
                out[f"{name} {variant}"] = measured
            out[f"{name} host_reads"] = self.host_reads(name, fast)
        return out

    # -- helpers -------------------------------------------------------------------------------------------

    def cfg(self, name: str, overrides: list[str]):
        return phase_config(name, self.tmp / "run", self.args.data_dir, [*self.base, *overrides])

    def bf16(self) -> bool:
        return native_bf16(self.device.type)

    def stamp(self) -> dict:
        return {"loadavg_1min": round(os.getloadavg()[0], 2)}

    def lightning(self, name: str, overrides: list[str], on_window=None) -> dict:
        cfg = self.cfg(name, overrides)
        dm = datamodule(cfg)
        measured = throughput.lightning_training(
            cfg, build(cfg), dm, self.args.seconds, self.warmup, on_window=on_window
        )
        return measured | self.stamp()

    def plain(self, name: str, overrides: list[str]) -> dict:
        cfg = self.cfg(name, overrides)
        dm = datamodule(cfg)
        phase = build(cfg)
        if cfg.data.token_cache in (True, "auto") and phase.vqvae_frozen:  # as the phase's on_fit_start does
            dm.attach_token_cache(phase.vqvae, self.device)
        loader = dm.device_loader(self.device) if cfg.data.on_device else dm.train_dataloader()
        measured = throughput.plain_training(cfg, phase, loader, self.device, self.args.seconds, self.warmup)
        return measured | self.stamp()

    def host_reads(self, name: str, overrides: list[str]) -> dict:
        """Host reads (and CUDA syncs) per training step over a few Lightning steps, Lightning's included."""
        window = StepWindow(self.device)
        measured = self.lightning(name, overrides, on_window=window)
        return window.summary(measured["steps"])

    def memory_point(self, batch: int, seq_len: int) -> dict:
        precision = "32-true"
        return memory.in_fresh_process(
            "comprehensive", batch, seq_len, self.device.type, precision, torch.get_num_threads()
        )

    def weights_mb(self) -> float:
        """The float32 weights of the comprehensive phase (VQ-VAE + ConvGRU), in MB."""
        phase = build(self.cfg("comprehensive", []))
        return sum(p.numel() for p in phase.parameters()) * 4 / 2**20


if __name__ == "__main__":
    main()
