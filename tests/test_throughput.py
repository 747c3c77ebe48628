"""The training throughput callback (callbacks.throughput): frames/s, FLOP/s and MFU in the run's CSV log."""

from __future__ import annotations

import csv

import pytest
import torch

from physworld.benchmark import flops
from physworld.benchmark.workloads import synthetic_batch
from physworld.run import build_phase, train


def test_tiny_run_logs_frames_per_second_flops_and_mfu(make_cfg, tmp_path, monkeypatch):
    # A made-up peak, so that the MFU is logged on a CPU too (Lightning's table has no CPU).
    asked = []

    def available_flops(device, dtype):
        asked.append((device.type, dtype))
        return 1e12

    monkeypatch.setattr(flops, "get_available_flops", available_flops)
    cfg = make_cfg(
        "debug=tiny", "phase=comprehensive", "phase.max_epochs=2", "test=false", "callbacks.rollout=null"
    )
    train(cfg)
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row["train/device/samples_per_sec"]]
    value = lambda row, key: float(row[key])  # noqa: E731
    frames = cfg.phase.batch_size * cfg.phase.seq_len  # B*T: a sample is one frame, not one window
    assert len(rows) >= 3 and frames > cfg.phase.batch_size
    for row in rows:
        per_step = value(row, "train/device/samples_per_sec") / value(row, "train/device/batches_per_sec")
        assert per_step == pytest.approx(frames)
    last = rows[-1]
    # The FLOPs of a logged step are those of the same training step counted outside the run.
    step_flops = value(last, "train/device/flops_per_sec") / value(last, "train/device/batches_per_sec")
    phase = build_phase(cfg)
    batch = synthetic_batch(cfg.phase.batch_size, cfg.phase.seq_len, torch.device("cpu"))
    flops.training_flops(phase, batch)  # the first step also initialises the codes from the data
    assert step_flops == pytest.approx(flops.training_flops(phase, batch), rel=1e-6)
    assert value(last, "train/device/mfu") == pytest.approx(value(last, "train/device/flops_per_sec") / 1e12)
    assert asked == [("cpu", torch.float32)]  # trainer.precision=32-true
