"""Peak memory of a training step per batch size, each measured in a fresh process, and the largest batch
that fits a memory budget, extrapolated from a straight-line fit.

`python -m physworld.benchmark.memory --phase comprehensive --batch 8 --seq-len 10 --device cpu` prints one
JSON line: the process's resident memory before the first step and at its peak (VmHWM) over two plain
training steps (the second has the AdamW state), and on CUDA the allocator's peak. On a CPU the step's
memory is the peak RSS minus the RSS before it; on a GPU it is the allocator's peak (weights included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

import torch

from physworld.phases import declared

MB = 2**20


def peak_rss() -> int:
    """The peak resident memory of this process image. Not ru_maxrss: a child started by a big parent
    inherits the parent's peak in it across fork and exec."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024  # kB


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def seq_overrides(phase: str, seq_len: int) -> list[str]:
    """A window of seq_len frames: the phases that train the dynamics keep 2 context frames and predict the rest."""
    if not declared(phase, "trains_dynamics"):
        return [f"phase.seq_len={seq_len}"]
    weights = [round(0.5**k, 4) for k in range(1, seq_len - 1)]  # any K = seq_len - 2 weights
    return [f"phase.seq_len={seq_len}", "phase.context_frames=2", f"phase.loss_weights={weights}"]


def measure_step(phase_name: str, batch_size: int, seq_len: int, device: str, precision: str) -> dict:
    """In this process: build the phase, then two plain training steps on a synthetic batch."""
    from physworld.benchmark.workloads import build, phase_config, synthetic_batch

    device = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = phase_config(
            phase_name, tmp, tmp, [f"phase.batch_size={batch_size}", *seq_overrides(phase_name, seq_len)]
        )
    phase = build(cfg).to(device)
    phase.configure_model()
    phase.train()
    optimizer = phase.configure_optimizers()
    batch = synthetic_batch(batch_size, seq_len, device)
    before = current_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        b = phase.on_after_batch_transfer(dict(batch), 0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
            loss = phase.compute_losses(b)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        del b, loss
    out = {
        "batch": batch_size,
        "seq_len": seq_len,
        "rss_before_mb": before / MB,
        "rss_peak_mb": peak_rss() / MB,
    }
    out["step_mb"] = out["rss_peak_mb"] - out["rss_before_mb"]
    if device.type == "cuda":
        out["device_peak_mb"] = torch.cuda.max_memory_allocated(device) / MB
        out["step_mb"] = out["device_peak_mb"]
    return out


def in_fresh_process(phase: str, batch: int, seq_len: int, device: str, precision: str, threads: int) -> dict:
    command = [sys.executable, "-m", "physworld.benchmark.memory", "--phase", phase, "--batch", str(batch)]
    command += [
        "--seq-len",
        str(seq_len),
        "--device",
        device,
        "--precision",
        precision,
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def largest_batch(points: list[dict], budget_mb: float) -> dict:
    """Least-squares line step_mb = a + b * batch through the points; the batch where it meets the budget."""
    xs = torch.tensor([p["batch"] for p in points], dtype=torch.double)
    ys = torch.tensor([p["step_mb"] for p in points], dtype=torch.double)
    slope = float(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum())
    intercept = float(ys.mean() - slope * xs.mean())
    return {
        "mb_per_sequence": slope,
        "intercept_mb": intercept,
        "budget_mb": budget_mb,
        "largest_batch": int((budget_mb - intercept) / slope + 1e-6) if slope > 0 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", default="comprehensive")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(measure_step(args.phase, args.batch, args.seq_len, args.device, args.precision)))


if __name__ == "__main__":
    main()
