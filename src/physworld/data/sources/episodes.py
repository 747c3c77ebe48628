"""dataset=episodes: your own recorded episodes as a dataset (`dataset.path=DIR`).

The episode format: one `.npz` file an episode (`save_episode`, or `np.savez`), holding

  frames       uint8   (T, H, W, 3)  any size: resized to 64x64 when the cache is built (squashed, not cropped,
                                     when H != W)
  actions      float   (T, A)        optional; actions[t] acts after frame t; A <= 2, in [-1, 1] (the model's
                                     range); fewer than 2 columns are padded with zeros; absent: zeros
  rewards      float   (T,)          optional; rewards[t] scores frame t
  states       float   (T, S)        optional; the true state per frame, which the evaluation's state probes
                                     read (a column named theta* is an angle: probed as its sine and cosine)
  state_names  str     (S,)          optional; the names of the states' columns (default state_0, state_1, ...)

Every episode of a folder holds the same arrays (the same A and S). DIR holds the episodes, or train/, val/ and
test/ sub-folders of them; without sub-folders the episodes are split by `dataset.val_fraction` and
`dataset.test_fraction`, shuffled by data.seed (whole episodes: no split sees another's frames).

Each episode is cut into sequences of `dataset.num_frames` frames, starting every num_frames frames, plus one
ending at its last frame when its length is not a multiple (so every frame is in a sequence); episodes shorter
than num_frames are left out (the manifest lists them). The phases then cut their windows from the sequences as
from any dataset.

Files are untrusted: nothing in one runs code. Arrays are read with allow_pickle=False, and every array's .npy
header is checked (rank, dtype, length) before any data is read, so a pickled object is refused unread and a bad
file is one line naming it and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import OmegaConf
from PIL import Image
from tqdm.auto import tqdm

from physworld.data.cache import ACTION_DIM
from physworld.data.files import NpyWriter
from physworld.data.render import SIZE
from physworld.errors import ConfigError, DataError
from physworld.require import positive_int, require

VERSION = 1  # bump when the same files give other bytes
SPLITS = ("train", "val", "test")  # the splits a folder of episodes gives (no ood_test or long_test)
OPTIONAL = ("actions", "rewards", "states", "state_names")
FORMAT_HINT = (
    "an episode (.npz) holds frames (T, H, W, 3) uint8 and optionally actions (T, A), rewards (T,), "
    "states (T, S) float and state_names (S,) str"
)


class Header(NamedTuple):
    """What an episode file holds, read from its arrays' .npy headers (no data read)."""

    file: Path
    num_frames: int  # T
    frame_size: tuple[int, int]  # (H, W) as stored
    action_dim: int | None  # A, None without actions
    state_dim: int | None  # S, None without states
    keys: frozenset  # the optional arrays present


def save_episode(file: str | Path, frames, actions=None, rewards=None, states=None, state_names=None) -> None:
    """Write one episode in the format above (the arrays that are not None), zip-compressed."""
    arrays = {"frames": np.asarray(frames, np.uint8)}
    for key, value in (("actions", actions), ("rewards", rewards), ("states", states)):
        if value is not None:
            arrays[key] = np.asarray(value, np.float32)
    if state_names is not None:
        arrays["state_names"] = np.asarray(state_names, dtype=str)
    np.savez_compressed(file, **arrays)  # compressed: rendered frames are mostly background


def resize_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, 64, 64, 3); bilinear, which Pillow widens into an area filter when it
    shrinks (thin lines fade instead of breaking up)."""
    if frames.shape[1:3] == (SIZE, SIZE):
        return np.ascontiguousarray(frames)
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((SIZE, SIZE), Image.Resampling.BILINEAR)) for f in frames]
    )


def read_header(file: Path) -> Header:
    """Check an episode file from its .npy headers: the arrays it holds, their ranks, dtypes and lengths."""
    shapes = _array_headers(file)
    if "frames" not in shapes:
        raise DataError(f"{file}: no `frames` array (it holds {sorted(shapes)}); {FORMAT_HINT}")
    unknown = sorted(set(shapes) - {"frames", *OPTIONAL})
    if unknown:
        raise DataError(f"{file}: holds `{unknown[0]}`, not part of an episode; {FORMAT_HINT}")
    shape, dtype = shapes["frames"]
    if len(shape) != 4 or shape[-1] != 3:
        raise DataError(f"{file}: frames of shape {shape}: accepted (T, H, W, 3) (RGB)")
    if dtype != np.uint8:
        raise DataError(f"{file}: frames of dtype {dtype}: accepted uint8 (0-255)")
    t = shape[0]
    if t == 0 or shape[1] == 0 or shape[2] == 0:
        raise DataError(f"{file}: frames of shape {shape}: an episode needs at least one frame")
    forms = {
        "actions": ("(T, A)", 2),
        "rewards": ("(T,)", 1),
        "states": ("(T, S)", 2),
        "state_names": ("(S,)", 1),
    }
    for key in OPTIONAL:
        if key not in shapes:
            continue
        shape, dtype = shapes[key]
        names = key == "state_names"
        form, rank = forms[key]
        if len(shape) != rank:
            raise DataError(f"{file}: {key} of shape {shape}: accepted {form}")
        if names and dtype.kind != "U":
            raise DataError(f"{file}: state_names of dtype {dtype}: accepted strings (S,)")
        if not names and dtype.kind not in "fiu":
            raise DataError(f"{file}: {key} of dtype {dtype}: accepted a float (or integer) array")
        if not names and shape[0] != t:
            raise DataError(f"{file}: {key} has {shape[0]} rows for {t} frames: accepted one row per frame")
    action_dim = shapes["actions"][0][1] if "actions" in shapes else None
    if action_dim is not None and not 1 <= action_dim <= ACTION_DIM:
        raise DataError(
            f"{file}: actions have {action_dim} columns: accepted 1 to {ACTION_DIM} (the model's action size)"
        )
    state_dim = shapes["states"][0][1] if "states" in shapes else None
    if "state_names" in shapes and shapes["state_names"][0][0] != state_dim:
        raise DataError(
            f"{file}: {shapes['state_names'][0][0]} state_names for {state_dim} state columns: "
            "accepted one name a column"
        )
    keys = frozenset(k for k in OPTIONAL if k in shapes)
    return Header(file, t, tuple(shapes["frames"][0][1:3]), action_dim, state_dim, keys)


def read_episode(file: Path) -> dict[str, np.ndarray]:
    """The arrays of a checked episode file (read_header first), loaded without pickle."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{file}: unreadable ({err}); {FORMAT_HINT}") from None


# ---------------------------------------------------------------------------------------------------- source


def cache_name(dataset: dict) -> str:
    folder = _folder(dataset)
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]  # two folders of the same name stay apart
    return f"episodes/{folder.name}-{digest}"


def check(dataset) -> None:
    if OmegaConf.is_missing(dataset, "path"):
        raise ConfigError(
            "dataset.path is missing: dataset=episodes needs dataset.path=DIR, a folder of episodes (.npz)"
        )
    require(dataset, "path", lambda v: isinstance(v, str) and v != "", "the folder of your episodes (.npz)")
    require(dataset, "num_frames", positive_int, "a positive integer (frames per stored sequence)")
    for split in SPLITS:
        require(
            dataset, f"sizes.{split}", lambda v: v is None or positive_int(v), "null or a positive integer"
        )
    for key in ("val_fraction", "test_fraction"):
        require(dataset, key, lambda v: isinstance(v, (int, float)) and 0 < v < 1, "a number in (0, 1)")
    if dataset.val_fraction + dataset.test_fraction >= 1:
        raise ConfigError(
            f"dataset.val_fraction + dataset.test_fraction = {dataset.val_fraction + dataset.test_fraction}: "
            "accepted below 1 (the rest trains)"
        )
    # Every file's headers (not its data): a bad episode is one line now, before any work.
    for files in _discover(_folder(dataset)).values():
        _check_alike([read_header(f) for f in files])


def spec_for(dataset: dict, split: str, seed: int) -> dict:
    if split not in SPLITS:
        raise DataError(
            f"{dataset['name']}: split={split!r} is not accepted: one of {list(SPLITS)} (recorded episodes "
            "have no out-of-distribution or long split)"
        )
    folder = _folder(dataset)
    found = _discover(folder)
    seeded = "all" in found
    return {
        "format": 1,
        "scene": dataset["name"],
        "version": VERSION,
        "path": str(folder),
        "files": _fingerprint(folder, [f for files in found.values() for f in files]),
        "num_frames": int(dataset["num_frames"]),
        "num_sequences": (dataset.get("sizes") or {}).get(split),  # a cap; None: every sequence
        "fractions": [float(dataset["val_fraction"]), float(dataset["test_fraction"])] if seeded else None,
        "seed": int(seed),
        "split": split,
    }


def build(folder: Path, spec: dict, progress: bool) -> None:
    """Write the split of `spec` from the episode folder `spec["path"]` into `folder` (see the cache)."""
    folder_in = Path(spec["path"])
    for found in _discover(folder_in).values():  # every episode checked, whichever split it falls in
        _check_alike([read_header(f) for f in found])
    files = _split_files(folder_in, spec["split"], spec["seed"], spec["fractions"])
    write_split(folder, files, spec, progress, {"path": spec["path"]})


def write_split(folder: Path, files: list[Path], spec: dict, progress: bool, source: dict) -> None:
    """Cut the episodes `files` into sequences of spec["num_frames"] frames and write them as a cache split
    (frames, actions, rewards and states .npy, params.npz, manifest.json) into `folder`."""
    started = time.perf_counter()
    headers = [read_header(f) for f in files]  # every file checked before anything is written
    _check_alike(headers)
    t, cap = spec["num_frames"], spec["num_sequences"]
    starts = {h.file: _starts(h.num_frames, t) for h in headers}
    short = [h.file.name for h in headers if not starts[h.file]]
    n = sum(len(s) for s in starts.values())
    n = n if cap is None else min(n, cap)
    if n == 0:
        longest = max(h.num_frames for h in headers)
        raise DataError(
            f"{files[0].parent}: no {spec['split']} episode has the {t} frames of dataset.num_frames (the "
            f"longest has {longest}): accepted dataset.num_frames={longest} or less"
        )
    first = headers[0]
    writers = {
        "frames": NpyWriter(folder / "frames.npy", np.uint8, (n, t, SIZE, SIZE, 3)),
        "actions": NpyWriter(folder / "actions.npy", np.float32, (n, t, ACTION_DIM)),
    }
    if "rewards" in first.keys:
        writers["rewards"] = NpyWriter(folder / "rewards.npy", np.float32, (n, t))
    if "states" in first.keys:
        writers["states"] = NpyWriter(folder / "states.npy", np.float32, (n, t, first.state_dim))
    state_names = [f"state_{i}" for i in range(first.state_dim or 0)]
    episode_index, start_frame, written = [], [], 0
    bar = tqdm(total=n, desc=f"episodes {spec['split']}", unit="seq", disable=not progress, leave=False)
    for i, header in enumerate(headers):
        if written == n:
            break
        chosen = starts[header.file][: n - written]
        if not chosen:
            continue
        arrays = read_episode(header.file)
        if "state_names" in arrays and written == 0:
            state_names = [str(s) for s in arrays["state_names"]]
        frames = resize_frames(arrays["frames"])  # (T_episode, 64, 64, 3)
        actions = np.zeros((header.num_frames, ACTION_DIM), np.float32)
        if "actions" in arrays:
            given = np.asarray(arrays["actions"], np.float64)
            if not (np.isfinite(given).all() and np.abs(given).max() <= 1.0):
                raise DataError(
                    f"{header.file}: actions reach {np.abs(given).max()}: accepted finite values in [-1, 1] "
                    "(the model's range: scale them)"
                )
            actions[:, : header.action_dim] = given
        window = [np.arange(s, s + t) for s in chosen]  # (sequences, t) frame indices
        writers["frames"].write(frames[window])
        writers["actions"].write(actions[window])
        for key in ("rewards", "states"):
            if key in writers:
                writers[key].write(np.asarray(arrays[key], np.float32)[window])
        episode_index += [i] * len(chosen)
        start_frame += chosen
        written += len(chosen)
        bar.update(len(chosen))
    bar.close()
    files_meta = {key: writer.close() for key, writer in writers.items()}
    np.savez(
        folder / "params.npz",
        episode=np.asarray(episode_index, np.int64),  # (N,) index of the sequence's episode in `episodes`
        start=np.asarray(start_frame, np.int64),  # (N,) its first frame in that episode
    )
    manifest = {
        "spec": spec,
        "files": files_meta,
        "state_names": state_names,
        "positions": [],  # no known object colours: the position metrics are off, the state probes on
        "source": {
            **source,
            "episodes": [h.file.name for h in headers],
            "frame_sizes": sorted({h.frame_size for h in headers}),  # (H, W) as stored, before resizing
            "too_short": short,  # episodes with fewer than num_frames frames, left out
        },
        "generated_in_s": round(time.perf_counter() - started, 2),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))


# ---------------------------------------------------------------------------------------------------- helpers


def _folder(dataset) -> Path:
    return Path(str(dataset["path"])).expanduser().resolve()


def _array_headers(file: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) of each array in an .npz, from the .npy headers alone. An object (pickled)
    array is refused here, before anything could unpickle it."""
    out = {}
    try:
        with zipfile.ZipFile(file) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    raise DataError(f"{file}: holds {member!r}, not an array; {FORMAT_HINT}")
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"array {member!r} in .npy format {version}")
                if dtype.hasobject:
                    raise DataError(
                        f"{file}: {member[:-4]} holds pickled Python objects (dtype {dtype}), which are never "
                        "loaded (they could run code): accepted plain number and string arrays"
                    )
                out[member[:-4]] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as err:
        raise DataError(f"{file}: not an .npz archive of arrays ({err}); {FORMAT_HINT}") from None
    return out


def _discover(folder: Path) -> dict[str, list[Path]]:
    """The episode files of a folder: {"train": [...], "val": [...], "test": [...]} from its sub-folders, or
    {"all": [...]} to be split. Hidden files are ignored; anything else that is not an .npz is refused."""
    if not folder.is_dir():
        raise DataError(
            f"dataset.path={str(folder)!r}: no such folder (accepted: a folder of episodes, .npz)"
        )
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subfolders:
        unknown = sorted(set(subfolders) - set(SPLITS))
        missing = [s for s in SPLITS if s not in subfolders]
        if unknown or missing:
            raise DataError(
                f"{folder}: sub-folders {subfolders}: accepted train/, val/ and test/ of episodes (all three), "
                "or the episodes themselves without sub-folders"
            )
        loose = _episode_files(folder, allow_empty=True)
        if loose:
            raise DataError(
                f"{loose[0]}: beside train/, val/ and test/: accepted episodes in the sub-folders only"
            )
        return {split: _episode_files(folder / split) for split in SPLITS}
    return {"all": _episode_files(folder)}


def _episode_files(folder: Path, allow_empty: bool = False) -> list[Path]:
    files = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix != ".npz":
            raise DataError(f"{path}: not an episode: accepted .npz files ({FORMAT_HINT})")
        files.append(path)
    if not files and not allow_empty:
        raise DataError(f"{folder}: an empty folder: no episodes (.npz files) in it")
    return files


def _fingerprint(folder: Path, files: list[Path]) -> str:
    """A digest of the files' names, sizes and modification times: a changed folder rebuilds its splits."""
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _split_files(folder: Path, split: str, seed: int, fractions) -> list[Path]:
    """The episode files of one split: its sub-folder's, or its share of the seeded shuffle."""
    found = _discover(folder)
    if "all" not in found:
        return found[split]
    files = found["all"]
    n = len(files)
    n_val = max(1, round(fractions[0] * n))
    n_test = max(1, round(fractions[1] * n))
    if n - n_val - n_test < 1:
        raise DataError(
            f"{folder}: {n} episodes cannot make train, val and test: accepted 3 or more episodes, or train/, "
            "val/ and test/ sub-folders"
        )
    order = np.random.default_rng([seed, zlib.crc32(b"episodes")]).permutation(n)
    parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    return [files[i] for i in sorted(parts[split])]


def _starts(length: int, t: int) -> list[int]:
    """First frames of the sequences of t frames cut from an episode of `length`: every t frames, and one ending at
    the last frame when t does not divide the length."""
    if length < t:
        return []
    starts = list(range(0, length - t + 1, t))
    if starts[-1] + t < length:
        starts.append(length - t)
    return starts


def _check_alike(headers: list[Header]) -> None:
    """Every episode of a split holds the same arrays, with the same action and state sizes."""
    first = headers[0]
    for h in headers[1:]:
        if h.keys != first.keys:
            raise DataError(
                f"{h.file}: holds {sorted(h.keys) or 'frames only'}, {first.file.name} holds "
                f"{sorted(first.keys) or 'frames only'}: accepted the same arrays in every episode"
            )
        for what, mine, theirs in (
            ("actions", h.action_dim, first.action_dim),
            ("states", h.state_dim, first.state_dim),
        ):
            if mine != theirs:
                raise DataError(
                    f"{h.file}: {what} of {mine} columns, {first.file.name} has {theirs}: accepted the same in "
                    "every episode"
                )
