"""The fast paths (perf.*, trainer.precision, data.on_device) give the losses and windows of the plain paths,
step logging can stay off the host, and scripts/benchmark.py runs and writes its report. No timings are
asserted: speed is what the benchmark reports, not what a test on a shared machine can check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physworld.benchmark.host_reads import HostReads
from physworld.benchmark.memory import largest_batch
from physworld.benchmark.workloads import synthetic_batch
from physworld.checks import check_config
from physworld.data.device_windows import DeviceWindowLoader
from physworld.errors import ConfigError
from physworld.run import build_datamodule, build_phase, train

ROOT = Path(__file__).resolve().parents[1]
DYNAMICS = ["phase=comprehensive"]  # dynamics + VQ-VAE, both trained: no init_from needed


def _phase(make_cfg, *overrides, perf=None):
    cfg = make_cfg("debug=tiny", *overrides)
    torch.manual_seed(0)
    phase = build_phase(cfg)
    phase.use_fast_paths(perf or {})
    phase.configure_model()
    return phase.train()


def _losses(phase, batch, steps: int = 3, bf16: bool = False) -> list[float]:
    """Losses of `steps` AdamW steps on one batch (the phase's own optimiser)."""
    optimizer = phase.configure_optimizers()
    torch.manual_seed(1)  # the codebook's data initialisation draws random rows at the first step
    out = []
    for _ in range(steps):
        b = phase.on_after_batch_transfer(dict(batch), 0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = phase.compute_losses(b)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


@pytest.mark.parametrize("overrides", [[], DYNAMICS], ids=["reconstruction", "comprehensive"])
def test_channels_last_gives_the_same_losses(make_cfg, overrides):
    seq = 1 if not overrides else 7
    batch = synthetic_batch(2, seq, torch.device("cpu"))
    on = _phase(make_cfg, *overrides, perf={"channels_last": True})
    off = _phase(make_cfg, *overrides, perf={"channels_last": False})
    assert on.vqvae.encoder.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert off.vqvae.encoder.convs[0].weight.is_contiguous()
    assert (
        on.on_after_batch_transfer(dict(batch), 0)["frames"]
        .flatten(0, 1)
        .is_contiguous(memory_format=torch.channels_last)
    )
    assert off.on_after_batch_transfer(dict(batch), 0)["frames"].is_contiguous()
    assert _losses(on, batch) == pytest.approx(_losses(off, batch), rel=1e-4)


def test_fused_adamw_gives_the_same_losses(make_cfg):
    batch = synthetic_batch(2, 1, torch.device("cpu"))
    fused = _phase(make_cfg, perf={"fused_adamw": True})
    assert fused.configure_optimizers().defaults["fused"] is True
    plain = _phase(make_cfg, perf={"fused_adamw": False})
    assert not plain.configure_optimizers().defaults["fused"]
    assert _losses(fused, batch, steps=4) == pytest.approx(_losses(plain, batch, steps=4), rel=1e-4)


def test_bf16_autocast_loss_is_close_to_fp32(make_cfg):
    batch = synthetic_batch(2, 1, torch.device("cpu"))
    fp32 = _losses(_phase(make_cfg), batch, steps=1)[0]
    bf16 = _losses(_phase(make_cfg), batch, steps=1, bf16=True)[0]
    assert bf16 == pytest.approx(fp32, rel=0.05)


@pytest.mark.parametrize("fused", ["true", "false"])
def test_bf16_mixed_trains_through_lightning_with_clipping(make_cfg, monkeypatch, fused):
    # Lightning's mixed-precision plugin refuses to clip for a fused optimizer; bf16 has no scaler, so the
    # phase clips itself (the CUDA default: fused_adamw auto, bf16-mixed, gradient_clip_val 1).
    cfg = make_cfg(
        "debug=tiny",
        "trainer.fast_dev_run=true",
        "logger=none",
        "trainer.precision=bf16-mixed",
        f"perf.fused_adamw={fused}",
        "trainer.gradient_clip_val=1e-6",
    )
    clip, norms = torch.nn.utils.clip_grad_norm_, []

    def clip_and_record(params, max_norm, *args, **kwargs):
        params = list(params)
        out = clip(params, max_norm, *args, **kwargs)
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        return out

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_and_record)
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert norms and max(norms) <= 1.01e-6


@pytest.mark.slow  # compiling the networks: about 20 s cold (no inductor cache) on 2 CPU cores
def test_compile_gives_the_same_losses_and_checkpoint_keys(make_cfg):
    batch = synthetic_batch(2, 1, torch.device("cpu"))
    compiled = _phase(make_cfg, perf={"compile": True})
    eager = _phase(make_cfg, perf={"compile": False})
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # no "_orig_mod." prefixes
    assert _losses(compiled, batch) == pytest.approx(_losses(eager, batch), rel=1e-3)


def test_device_loader_yields_the_dataloaders_batches(make_cfg):
    cfg = make_cfg("debug=tiny", "phase=comprehensive", "data.stride=1")
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    parts = dm.splits["train"]
    # In order, against the DataModule's own unshuffled loader.
    in_order = DeviceWindowLoader(parts, batch_size=dm.batch_size, device="cpu")
    _assert_same_batches(in_order, dm._loader(parts[0], shuffle=False))
    # Shuffled: the training loader's batches, in its order, epoch after epoch.
    on_device = DeviceWindowLoader(parts, dm.batch_size, "cpu", sampler=dm.train_sampler())
    loader = dm.train_dataloader()
    for epoch in range(2):
        on_device.sampler.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        _assert_same_batches(on_device, loader)
    dm.on_device = True
    assert isinstance(dm.train_dataloader(), DeviceWindowLoader)


def test_device_loader_shards_ranks_and_follows_mixture_weights(make_cfg):
    cfg = make_cfg("debug=tiny", "dataset=all", "phase.seq_len=2")
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    parts = dm.splits["train"]
    ranks = [DeviceWindowLoader(parts, 4, "cpu", dm.train_sampler(), rank=r, world_size=3) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1  # every rank runs the same number of steps
    seen = torch.cat([b["dataset"] for r in ranks for b in r])
    assert len(seen) >= sum(len(p) for p in parts)
    dm.weights = [0.0] * len(parts)
    dm.weights[2] = 1.0
    only = DeviceWindowLoader(parts, 8, "cpu", sampler=dm.train_sampler())
    assert all((b["dataset"] == 2).all() for b in only)


def test_on_device_data_trains_through_lightning(make_cfg):
    cfg = make_cfg("debug=tiny", "trainer.fast_dev_run=true", "logger=none", "data.on_device=true")
    metrics = train(cfg)
    assert "train/loss" in metrics and "test/recon_psnr" in metrics


def test_sync_free_keeps_step_metrics_off_the_host(make_cfg):
    def fit(sync_free: bool):
        flag = str(sync_free).lower()
        cfg = make_cfg(
            "debug=tiny",
            "test=false",
            "callbacks=none",
            # the NaN check, the one callback that reads a training value back in every step
            "+callbacks.stop_on_non_finite._target_=physworld.callbacks.faults.StopOnNonFiniteLoss",
            "trainer.limit_val_batches=0",
            "trainer.log_every_n_steps=100",  # no logger writes in these 16 steps
            f"perf.sync_free={flag}",
        )
        cfg.paths.output_dir = (
            f"{cfg.paths.output_dir}_{flag}"  # a run folder each: a rerun into one is refused
        )
        reads = HostReads()
        with reads:
            train(cfg)
        steps = 16  # debug=tiny: 8 sequences x 8 frames, batch 4
        return {site for site, n in reads.sites.items() if n >= steps}  # the reads of every step

    free, synced = fit(True), fit(False)
    assert any("logger_connector/result.py" in s for s in synced)  # Lightning's prog_bar .item()
    assert any("callbacks/faults.py" in s for s in synced)  # the NaN check's read, every step
    assert not free, free  # with sync_free, no host read happens in every step


def test_perf_keys_are_checked_at_start_up(make_cfg):
    with pytest.raises(ConfigError, match=r"perf.channels_last='maybe' is not accepted: true, false or auto"):
        check_config(make_cfg("debug=tiny", "perf.channels_last=maybe"))
    with pytest.raises(ConfigError, match=r"data.on_device='auto' is not accepted"):
        check_config(make_cfg("debug=tiny", "data.on_device=auto"))
    with pytest.raises(ConfigError, match=r"perf.turbo"):
        check_config(make_cfg("debug=tiny", "+perf.turbo=true"))
    with pytest.raises(KeyError, match="turbo"):
        _phase(make_cfg, perf={"turbo": True})


def test_largest_batch_extrapolates_a_straight_line():
    points = [{"batch": b, "step_mb": 100 + 30 * b} for b in (2, 4, 8)]
    fit = largest_batch(points, budget_mb=1000)
    assert fit["mb_per_sequence"] == pytest.approx(30) and fit["largest_batch"] == 30


def test_benchmark_quick_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "benchmark.py"),
        "--quick",
        "--threads=1",
        "--phases=reconstruction",
        "--skip",
        "fast_paths",
        "scenes",
        "memory",
        "--override=model=small",
        "--override=phase.batch_size=4",
        f"--out={out}",
        f"--data-dir={tmp_path / 'data'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(command, check=True, capture_output=True, text=True, env=env, timeout=600)
    report = json.loads(next(out.glob("*.json")).read_text())
    training = report["training"]["reconstruction"]
    assert training["lightning"]["frames_per_s"] > 0 and training["overhead_ratio"] > 0
    assert "host_reads_per_step" in training["host_reads"]
    assert report["loading"]["reconstruction"]["on_device"]["frames_per_s"] > 0
    assert report["imagination"]["dynamics fp32"]["latent_steps_per_s"] > 0
    for output in ("latent", "tokens"):  # the prediction phase on the token cache and encoding every batch
        cache = report["token_cache"][output]
        assert cache["on"]["frames_per_s"] > 0 and cache["off"]["frames_per_s"] > 0 and cache["speedup"] > 0
    assert report["flops"]["reconstruction"]["flops_per_frame"] > 0
    assert report["flops"]["reconstruction"]["achieved_tflops"] > 0
    assert report["flops"]["reconstruction"]["mfu"] is None  # a CPU: Lightning knows no peak for it
    assert len(report["environment"]["loadavg_start"]) == 3
    evaluation = report["evaluation"]  # seconds per part of each split's scoring
    assert set(evaluation) == {"test", "ood_test", "long_test"}
    for split, parts in evaluation.items():
        assert parts["total"] >= parts["reconstruction"] + parts["rollouts"] > 0, split
    assert parts["probes"] < evaluation["test"]["probes"]  # long_test: probes off, as a pipeline runs it
    assert any(t["met"] is None and t["target"].startswith("GPU") for t in report["targets"])
    table = next(out.glob("*.md")).read_text()
    assert "| reconstruction |" in table and "## Targets" in table and "token cache" in table
    assert "| ood_test |" in table


@pytest.mark.parametrize(
    "precision, dtype",
    [("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16), ("32-true", torch.float32)],
)
def test_benchmark_mfu_is_achieved_over_lightnings_peak(monkeypatch, precision, dtype):
    from physworld.benchmark import flops

    asked = []

    def available_flops(device, dtype):
        asked.append((device, dtype))
        return 4e12

    monkeypatch.setattr(flops, "get_available_flops", available_flops)
    device = torch.device("cuda", 0)  # only looked up in the (replaced) table, never used
    out = flops.utilisation(2e9, 500.0, device, precision)  # 2 GFLOP a frame at 500 frames/s: 1 TFLOP/s
    assert asked == [(device, dtype)]
    assert out["achieved_tflops"] == pytest.approx(1.0)
    assert out["mfu"] == pytest.approx(1e12 / 4e12) and out["peak_tflops"] == pytest.approx(4.0)
    # Where Lightning knows no peak (CPUs, GPUs missing from its table) there is no MFU, and no failure.
    monkeypatch.setattr(flops, "get_available_flops", lambda device, dtype: None)
    assert flops.utilisation(2e9, 500.0, device, precision)["mfu"] is None
    with pytest.raises(ValueError, match="precision='fp8'"):
        flops.peak_flops(device, "fp8")


@pytest.mark.slow
def test_benchmark_quick_runs_every_section(tmp_path):
    out = tmp_path / "bench"
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick", "--threads=1"]
    command += ["--override=model=small", "--skip", "compile", f"--out={out}", f"--data-dir={tmp_path / 'd'}"]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
    report = json.loads(next(out.glob("*.json")).read_text())
    for section in ("training", "fast_paths", "loading", "imagination", "scenes", "memory", "flops"):
        assert report[section], section
    assert report["memory"]["seq10_fit"]["largest_batch"] > 0


def _assert_same_batches(mine, theirs) -> None:
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in b:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_precision_is_checked_and_auto_follows_the_hardware(make_cfg, monkeypatch):
    import physworld.resolve as resolve

    with pytest.raises(
        ConfigError, match=r"trainer.precision='fp8' is not accepted: one of \['auto', '32-true'"
    ):
        check_config(make_cfg("debug=tiny", "trainer.precision=fp8"))
    for native, expected in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(resolve, "native_bf16", lambda accelerator="auto", native=native: native)
        cfg = make_cfg("debug=tiny", "trainer.precision=auto")
        check_config(cfg)
        assert resolve.resolve_precision(cfg) == expected and cfg.trainer.precision == expected
    cfg = make_cfg("debug=tiny", "trainer.precision=16-mixed")  # anything but auto is left as written
    assert resolve.resolve_precision(cfg) == "16-mixed"


def test_native_bf16_on_cpu_matches_the_cpu_flags():
    from physworld.resolve import native_bf16

    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        pytest.skip("no /proc/cpuinfo to compare with (not Linux)")
    expected = "avx512_bf16" in flags or "amx_tile" in flags
    assert native_bf16("cpu") is expected
