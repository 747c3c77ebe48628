"""Generate datasets once and keep them on disk, memory-mappable, verified, and never half-written.

Layout: `<data_dir>/<name>/<split>/` holds
  frames.npy   uint8   (N, T, 64, 64, 3)
  states.npy   float32 (N, T, S)      the physical state per frame (see the scene's STATE_NAMES)
  actions.npy  float32 (N, T, A)      zeros for passive scenes
  rewards.npy  float32 (N, T)         only for interactive scenes
  params.npz   per-sequence parameters drawn by the generator (leading axis N)
  manifest.json  the spec it was made from (scene, generator version, config, seed, split), shapes, sha256

A split is generated into a hidden temporary folder, in chunks streamed to .npy files and hashed as they
are written (peak memory is one chunk, whatever N), and only then renamed into place: a killed generation
leaves nothing that loads. A split whose manifest no longer matches the requested spec is regenerated.
A lock file serialises concurrent generators (DDP ranks, multirun jobs) of the same dataset.

Beside train/val/test, two evaluation-only splits (EVAL_SPLITS), generated only when asked for:
  ood_test   out-of-distribution: the dataset's `scene:` ranges with its `ood:` overrides (ranges disjoint from
             training's); its spec's `scene_params` are the merged ranges and `ood` the overrides
  long_test  the training distribution with `long_num_frames` frames per sequence, for long rollouts
Each has its own random stream (SPLIT_STREAMS), and the specs of train/val/test never mention either, so adding
them changes no existing split's bytes or manifest.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from physworld.atomic import remove_leftovers, temp_name
from physworld.data.files import NpyWriter, building, lock_file, replace_folder, sha256_file
from physworld.data.scenes import SCENES
from physworld.errors import DataError, os_error

FORMAT = 1  # version of this on-disk layout
SPLITS = ("train", "val", "test")  # the splits every dataset has (training, validation, test)
EVAL_SPLITS = ("ood_test", "long_test")  # evaluation-only splits, declared per dataset (see the docstring)
# The random stream of each split: train/val/test keep their positions in SPLITS, so their bytes never change.
SPLIT_STREAMS = {split: i for i, split in enumerate(SPLITS + EVAL_SPLITS)}
CHUNK = 256  # sequences generated per call to the scene; fixed, so output bytes never depend on it
ACTION_DIM = 2  # every dataset stores 2-D actions (the agent environment's force); zeros when passive
ARRAYS = ("frames", "states", "actions", "rewards")


def spec_for(dataset: dict, split: str, seed: int) -> dict:
    """Everything that determines a split's bytes. A stored split is reused only if this matches."""
    source = _source(dataset["name"])
    if source is not None:
        return source.spec_for(dataset, split, seed)
    scene = SCENES[dataset["name"]]
    if split not in SPLIT_STREAMS:
        raise DataError(f"split={split!r} is not accepted: one of {list(SPLIT_STREAMS)}")
    num_frames, scene_params, extra = int(dataset["num_frames"]), dict(dataset.get("scene") or {}), {}
    if split == "ood_test":
        ood = dataset.get("ood")
        if not ood:
            raise DataError(
                f"{dataset['name']}: split='ood_test' is not accepted: the dataset has no `ood:` block of "
                "out-of-distribution scene ranges (the physics scenes have one; see configs/dataset/pendulum.yaml)"
            )
        unknown = sorted(set(ood) - set(scene_params))
        if unknown:
            raise DataError(
                f"{dataset['name']}: ood.{unknown[0]} is not a scene parameter: one of {sorted(scene_params)}"
            )
        scene_params.update(ood)
        extra = {"ood": dict(ood)}
    if split == "long_test":
        if not dataset.get("long_num_frames"):
            raise DataError(
                f"{dataset['name']}: split='long_test' needs dataset.long_num_frames (frames per long sequence)"
            )
        num_frames = int(dataset["long_num_frames"])
    if split in EVAL_SPLITS and split not in (dataset.get("sizes") or {}):
        raise DataError(
            f"{dataset['name']}: split={split!r} needs dataset.sizes.{split} (sequences in the split); "
            f"the dataset sets sizes for {sorted(dataset.get('sizes') or {})}"
        )
    return {
        "format": FORMAT,
        "scene": dataset["name"],
        "version": int(scene.VERSION),
        "num_frames": num_frames,
        "num_sequences": int(dataset["sizes"][split]),
        "scene_params": scene_params,
        "seed": int(seed),
        "split": split,
        **extra,
    }


def split_dir(data_dir: str | Path, name: str, split: str) -> Path:
    return Path(data_dir) / name / split


# The command-line overrides that choose which data a command reads or makes (and so where, and at what size):
# a printed fix command keeps them, so it regenerates the same folder with the same spec.
DATA_OVERRIDES = ("debug=", "paths.", "data.", "experiment=", "local=", "+paths.", "+data.")
WRITTEN = {"manifest.json", "verified.json", "params.npz", *(f"{a}.npy" for a in ARRAYS)}  # a split's files
TOKEN_FILES = {"indices.npy", "manifest.json"}  # a token-cache folder's files (data/tokens.py)
SOURCE_FOLDERS = {
    "episodes"
}  # what a recorded-data source writes beside them (data/sources/gym.py's episodes)
VERIFY = ("auto", "always")  # data.verify: hash a file when its size or times changed, or at every load


def user_overrides() -> list[str]:
    """This command's overrides that choose the data (DATA_OVERRIDES); [] outside a Hydra command."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return []
    given = OmegaConf.select(HydraConfig.get(), "overrides.task", default=[]) or []
    return [o for o in given if o.startswith(DATA_OVERRIDES) and not o.startswith("data.verify")]


def regenerate_hint(name: str, data_dir: str | Path | None = None) -> str:
    """The command that regenerates dataset `name`, with the user's data overrides and its data folder."""
    keep = [o for o in user_overrides() if not o.startswith("paths.data_dir=")]
    where = [f"paths.data_dir={data_dir}"] if data_dir is not None else []
    return "regenerate it with: python scripts/generate_data.py " + " ".join(
        [f"dataset={name}", *keep, *where, "force=true"]
    )


def cache_name(dataset: dict) -> str:
    """The folder under the data dir that holds a dataset's splits: its name, or for recorded data
    (data/sources/) one folder per source (`gym/Pendulum-v1`), so two sources never replace each other's."""
    source = _source(dataset["name"])
    return dataset["name"] if source is None else source.cache_name(dataset)


def ensure_split(data_dir, dataset: dict, split: str, seed: int, force: bool = False, progress=True) -> Path:
    """Return the folder of a valid split matching the spec, generating it first if needed."""
    spec = spec_for(dataset, split, seed)
    path = split_dir(data_dir, cache_name(dataset), split)
    if not force and read_manifest(path).get("spec") == spec:
        return path
    check_own(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where the data folder should be (PHYSWORLD_DATA_DIR=<a file>), read-only
        raise os_error(err, path.parent) from None
    with lock_file(path.parent / f".{split}.lock"):
        # Under the lock no other process writes this split: temporary folders of killed generators are leftovers.
        remove_leftovers(path.parent, f".{split}.")
        # Another process may have generated it while we waited for the lock.
        if not force and read_manifest(path).get("spec") == spec:
            return path
        check_own(path)
        _generate(path, spec, progress=progress)
    return path


def _foreign(path: Path) -> list[str]:
    """What in a split folder the cache did not write: anything but its files (WRITTEN) and the token cache
    (data/tokens.py: `tokens/<fingerprint>/{indices.npy,manifest.json}`, with its hidden locks and temporary
    folders), as paths relative to `path`."""
    foreign = []
    spec = read_manifest(path).get("spec")
    recorded = isinstance(spec, dict) and _source(str(spec.get("scene"))) is not None
    for entry in sorted(path.iterdir()):
        if entry.name in WRITTEN and entry.is_file():
            continue
        if recorded and entry.name in SOURCE_FOLDERS and entry.is_dir() and not entry.is_symlink():
            continue  # a recorded source's own split (its manifest says so): written by the cache too
        if entry.name == "tokens" and entry.is_dir() and not entry.is_symlink():
            for cached in sorted(entry.iterdir()):
                held = (
                    {p.name for p in cached.iterdir()}
                    if cached.is_dir() and not cached.is_symlink()
                    else None
                )
                if not cached.name.startswith(".") and (held is None or not held <= TOKEN_FILES):
                    foreign.append(f"tokens/{cached.name}")
            continue
        foreign.append(entry.name)
    return foreign


def check_own(path: Path) -> None:
    """Raise DataError unless `path` is missing or holds only what the cache writes into a split (WRITTEN): the
    cache replaces only its own folders, never a user's files."""
    try:
        if not path.exists():
            return
        if not path.is_dir():
            raise DataError(
                f"{path}: is a file where the cache keeps a split: move it away, or choose another paths.data_dir"
            )
        foreign = _foreign(path)
    except OSError as err:
        raise os_error(err, path) from None
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DataError(
            f"{path}: holds {shown}, which the data cache did not write; it would replace the folder, so it "
            "stops: move those files away, or choose another paths.data_dir"
        )


def read_manifest(path: Path) -> dict:
    """The manifest of a split folder, or {} when there is none (or it is unreadable: then it is stale)."""
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}  # JSON but no object ([], "x", null): unreadable


def _check_files(path: Path, manifest: dict, name: str) -> dict:
    """The manifest's `files` entries, each with a shape (a list), a dtype and a sha256 (strings); DataError
    (one line naming the manifest) for anything else."""
    files = manifest.get("files")
    ok = (
        isinstance(files, dict)
        and files
        and all(
            isinstance(meta, dict)
            and isinstance(meta.get("shape"), list)
            and isinstance(meta.get("dtype"), str)
            and isinstance(meta.get("sha256"), str)
            for meta in files.values()
        )
    )
    if not ok or not set(files) <= set(ARRAYS):
        raise DataError(
            f"{path / 'manifest.json'}: not a manifest the data cache writes (its `files` need a shape, dtype "
            f"and sha256 each); {regenerate_hint(name, path.parent.parent)}"
        )
    return files


def load_split(path: str | Path, verify: bool | str = True) -> dict[str, np.ndarray]:
    """Memory-map a split's arrays after checking them against the manifest.

    Shapes and dtypes are always checked (a truncated file fails here, not deep in a worker). With `verify`
    (True or "auto"), the sha256 of each file is checked once and remembered in `verified.json` until the file's
    size, modification or change time or inode differ, so repeated loads stay cheap; with "always" (data.verify)
    it is checked at every load.
    """
    path = Path(path)
    manifest = read_manifest(path)
    spec = manifest.get("spec")
    name = spec.get("scene", path.parent.name) if isinstance(spec, dict) else path.parent.name
    if not manifest:
        raise DataError(f"{path}: no readable manifest.json; {regenerate_hint(name, path.parent.parent)}")
    arrays = {}
    for key, meta in _check_files(path, manifest, name).items():
        file = path / f"{key}.npy"
        try:
            arr = np.load(file, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise DataError(
                f"{file}: unreadable ({err}); {regenerate_hint(name, path.parent.parent)}"
            ) from None
        if list(arr.shape) != meta["shape"] or str(arr.dtype) != meta["dtype"]:
            raise DataError(
                f"{file}: shape {list(arr.shape)} {arr.dtype}, manifest says {meta['shape']} {meta['dtype']}; "
                f"{regenerate_hint(name, path.parent.parent)}"
            )
        arrays[key] = arr
    if verify:
        _verify_hashes(path, manifest, name, always=verify == "always")
    return arrays


def load_params(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(Path(path) / "params.npz") as params:
        return dict(params)


# ----------------------------------------------------------------------------------------------------------


def _generate(path: Path, spec: dict, progress: bool) -> None:
    source = _source(spec["scene"])
    if source is not None:
        with building(path) as tmp:
            source.build(tmp, spec, progress)
        return
    scene = SCENES[spec["scene"]]
    n, t = spec["num_sequences"], spec["num_frames"]
    tmp = temp_name(path)
    tmp.mkdir(parents=True)
    try:
        started = time.perf_counter()
        writers: dict[str, NpyWriter] = {}
        params: dict[str, list[np.ndarray]] = {}
        bar = tqdm(
            total=n,
            desc=f"generate {spec['scene']}/{spec['split']}",
            unit="seq",
            disable=not progress,
            leave=False,
        )
        for start in range(0, n, CHUNK):
            count = min(CHUNK, n - start)
            # One independent stream per (seed, scene, split, chunk): disjoint across splits and scenes.
            rng = np.random.default_rng(
                [
                    spec["seed"],
                    zlib.crc32(spec["scene"].encode()),
                    SPLIT_STREAMS[spec["split"]],
                    start // CHUNK,
                ]
            )
            batch = scene.generate(rng, count, t, spec["scene_params"])
            chunk = {
                "frames": batch.frames,
                "states": batch.states,
                "actions": (
                    batch.actions
                    if batch.actions is not None
                    else np.zeros((count, t, ACTION_DIM), np.float32)
                ),
                "rewards": batch.rewards,
            }
            for key, value in chunk.items():
                if value is None:
                    continue
                if key not in writers:
                    writers[key] = NpyWriter(tmp / f"{key}.npy", value.dtype, (n, *value.shape[1:]))
                writers[key].write(value)
            for key, value in batch.params.items():
                params.setdefault(key, []).append(np.asarray(value))
            bar.update(count)
        bar.close()
        files = {key: writer.close() for key, writer in writers.items()}
        np.savez(tmp / "params.npz", **{k: np.concatenate(v) for k, v in params.items()})
        manifest = {
            "spec": spec,
            "files": files,
            "state_names": list(scene.STATE_NAMES),
            "positions": [list(p) for p in scene.POSITIONS],
            "generated_in_s": round(time.perf_counter() - started, 2),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        replace_folder(tmp, path)
    except OSError as err:  # a full disk, a read-only folder: one line; the old split (if any) is untouched
        raise os_error(err, tmp) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _source(name: str):
    """The recorded-data source module (data/sources/) of a dataset name, None for a generated scene."""
    from physworld.data.sources import (
        SOURCES,
    )  # they write through this module: imported here, not at the top

    return SOURCES.get(name)


def _verify_hashes(path: Path, manifest: dict, name: str, always: bool = False) -> None:
    stamp_file = path / "verified.json"
    try:
        stamps = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        stamps = {}
    if not isinstance(stamps, dict):
        stamps = {}
    changed = False
    for key, meta in manifest["files"].items():
        st = (path / f"{key}.npy").stat()
        # The change time (ctime) moves with every write and cannot be set back, unlike the modification time: a
        # file rewritten with its size and mtime restored is hashed again.
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, meta["sha256"]]
        if stamps.get(key) == stamp and not always:
            continue
        if sha256_file(path / f"{key}.npy") != meta["sha256"]:
            raise DataError(
                f"{path / f'{key}.npy'}: sha256 does not match the manifest; "
                f"{regenerate_hint(name, path.parent.parent)}"
            )
        stamps[key] = stamp
        changed = True
    if changed:
        with contextlib.suppress(OSError):  # a read-only data dir still loads; it just hashes every time
            stamp_file.write_text(json.dumps(stamps))
