"""Scene-generation throughput: `python scripts/benchmark_scenes.py` prints sequences/s per scene (one process,
CHUNK sequences per call, as the cache generates them) and the projected time for the seed's full sizes.

`--full DIR` also generates every dataset at its configured (full) size into DIR, through the same cache code
as training, and reports the wall time and the peak resident memory of that process.

`--episodes DIR` times dataset=episodes instead: it writes a folder of recorded episodes (200 of 50 frames at
96x96, moving discs on a noisy background, in the format of data/sources/episodes.py) into DIR and builds its
train/val/test cache splits from them, as training would, reporting the wall time of the build alone, then the
frames per second the prediction phase's training DataModule reads from that cache, beside the same for a
generated dataset (pendulum, as many sequences) in the same folder.

scripts/benchmark_scenes.py is the repository's wrapper of this module's main().
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from physworld.data.cache import CHUNK, SPLITS, ensure_split
from physworld.data.scenes import SCENES
from physworld.data.sources.episodes import save_episode
from physworld.paths import CONFIG_DIR

CONFIGS = CONFIG_DIR / "dataset"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def scene_configs() -> dict[str, dict]:
    """Every scene's dataset config (configs/dataset/<name>.yaml) as plain values."""
    return {name: yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()) for name in SCENES}


def scene_rate(name: str, cfg: dict, sequences: int = CHUNK, repeats: int = 2) -> float:
    """Sequences/s of one scene generating `sequences` sequences a call (best of `repeats` calls), after a
    warm-up call (e.g. the MNIST digits load). The benchmark's scenes section (benchmark.bench) reuses it."""
    SCENES[name].generate(np.random.default_rng(0), 2, 2, cfg["scene"])
    best = float("inf")
    for r in range(repeats):
        started = time.perf_counter()
        SCENES[name].generate(np.random.default_rng(r), sequences, cfg["num_frames"], cfg["scene"])
        best = min(best, time.perf_counter() - started)
    return sequences / best


def episodes_build_time(folder: Path, episodes: int = 200, frames: int = 50, size: int = 96) -> float:
    """Write `episodes` episodes of `frames` frames at size x size into folder/episodes, then build their cache
    splits into folder/data (dataset=episodes' defaults: 30-frame sequences, a seeded 80/10/10 split); returns
    the seconds the build took."""
    rng = np.random.default_rng(0)
    source = folder / "episodes"
    source.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(episodes):
        centre = rng.uniform(10, size - 10, 2) + np.cumsum(rng.normal(0, 1.5, (frames, 2)), axis=0)  # (T, 2)
        disc = (xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2 < 64  # (T, H, W)
        video = rng.integers(0, 40, (frames, size, size, 3), dtype=np.uint8)
        video[disc] = (230, 120, 40)
        save_episode(
            source / f"{i:04d}.npz",
            video,
            actions=rng.uniform(-1, 1, (frames, 2)),
            rewards=rng.normal(size=frames),
            states=np.concatenate([centre, np.gradient(centre, axis=0)], axis=1),
        )
    cfg = yaml.safe_load((CONFIGS / "episodes.yaml").read_text()) | {"path": str(source)}
    started = time.perf_counter()
    for split in SPLITS:
        ensure_split(folder / "data", cfg, split, seed=42, force=True, progress=False)
    return time.perf_counter() - started


def read_rates(folder: Path, seconds: float = 3.0) -> dict[str, float]:
    """Frames/s of the prediction phase's training DataModule (batch 16, 7-frame windows, data.stride=1) on the
    episodes built into folder/data by episodes_build_time (about 320 training sequences of 30 frames), and on a
    generated pendulum split of 320 sequences of 30 frames (generated there if missing)."""
    import torch

    from physworld.benchmark.throughput import loading
    from physworld.benchmark.workloads import datamodule
    from physworld.paths import compose

    base = ["phase=prediction", "data.stride=1", f"paths.data_dir={folder / 'data'}", "trainer=cpu"]
    rates = {}
    for name, extra in {
        "episodes": ["dataset=episodes", f"dataset.path={folder / 'episodes'}"],
        "pendulum": [
            "dataset=pendulum",
            "dataset.sizes.train=320",
            "dataset.sizes.val=40",
            "dataset.sizes.test=40",
        ],
    }.items():
        cfg = compose("train", [*base, *extra])
        dm = datamodule(cfg)
        measured = loading(dm.train_dataloader(), torch.device("cpu"), 16, int(cfg.phase.seq_len), seconds)
        rates[name] = measured["frames_per_s"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per scene (best is reported)")
    parser.add_argument("--full", type=Path, help="also generate all datasets at full size into this folder")
    parser.add_argument("--keep", action="store_true", help="keep the --full data instead of deleting it")
    parser.add_argument(
        "--episodes", type=Path, help="only time building dataset=episodes' cache from 200 recorded episodes"
    )
    args = parser.parse_args()
    if args.episodes:
        took = episodes_build_time(args.episodes)
        print(f"dataset=episodes: 200 episodes of 50 frames at 96x96 -> cache splits in {took:.1f} s")
        for name, rate in read_rates(args.episodes).items():
            print(f"training DataModule (phase=prediction, batch 16) on {name}: {rate:,.0f} frames/s")
        if not args.keep:
            shutil.rmtree(args.episodes)
        return

    configs = scene_configs()
    print(f"| scene | frames | seq/s ({CHUNK} a call) | full size (train+val+test) | projected |")
    print("|---|---|---|---|---|")
    projected_total = 0.0
    for name, cfg in configs.items():
        rate = scene_rate(name, cfg, CHUNK, args.repeats)
        total = sum(cfg["sizes"][split] for split in SPLITS)
        projected_total += total / rate
        print(f"| {name} | {cfg['num_frames']} | {rate:.0f} | {total} | {total / rate:.0f} s |")
    print(
        f"\nprojected generation time for all scenes at full size: {projected_total / 60:.1f} min (one process)"
    )

    if args.full:
        started = time.perf_counter()
        sequences = 0
        for name, cfg in configs.items():
            for split in SPLITS:
                ensure_split(args.full, cfg, split, seed=42, force=True)
                sequences += cfg["sizes"][split]
            print(f"{name}: done at {time.perf_counter() - started:.0f} s, peak RSS {peak_rss_mb():.0f} MB")
        took = time.perf_counter() - started
        size = sum(f.stat().st_size for f in args.full.rglob("*.npy")) / 1e9
        print(
            f"\nfull generation: {sequences} sequences, {size:.1f} GB, {took / 60:.1f} min "
            f"({sequences / took:.0f} seq/s), peak RSS {peak_rss_mb():.0f} MB"
        )
        if not args.keep:
            shutil.rmtree(args.full)


if __name__ == "__main__":
    main()
