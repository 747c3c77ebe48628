"""The token cache: a split's frames encoded once by a frozen VQ-VAE, kept beside them as code indices.

A phase that keeps the VQ-VAE fixed (prediction with `freeze_vqvae`, rl) sees the same codes of the same
frames in every epoch, so it can train on the codes instead of the frames: no encoder in the training step,
and a batch of 16 seven-frame windows is 14 KB of int16 instead of 1.4 MB of uint8 pixels.

Layout, under a split folder of data/cache.py:
  tokens/<fingerprint[:16]>/indices.npy     int16 (N, T, G, h, w): the nearest code of every cell (and group)
                                            of every frame
  tokens/<fingerprint[:16]>/manifest.json   the VQ-VAE's fingerprint, the frames' sha256, shape, sha256

The fingerprint is a sha256 of what the codes depend on: the encoder's and the codebook's weights (not the
decoder's). Another VQ-VAE has another fingerprint and so its own folder: it is encoded anew, and the codes of
the first stay valid for it. A cache is reused only if its manifest names the same fingerprint and the same
frames; it is written into a temporary folder and renamed into place, so a killed encoding leaves nothing
that loads, and a truncated or altered indices.npy stops with one line saying how to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from physworld.data.cache import load_split, read_manifest
from physworld.data.files import NpyWriter, lock_file, replace_folder, sha256_file
from physworld.errors import DataError

FORMAT = 1  # version of this layout
ENCODE_BATCH = 512  # frames per encoder call


def vqvae_fingerprint(vqvae: torch.nn.Module) -> str:
    """sha256 over the names, shapes, dtypes and values of the encoder's and codebook's tensors."""
    digest = hashlib.sha256()
    for prefix, module in (("encoder", vqvae.encoder), ("codebook", vqvae.quantizer.embedding)):
        for name, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()  # channels_last weights hash as their NCHW values
            digest.update(f"{prefix}.{name}:{tuple(t.shape)}:{t.dtype};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tokens_dir(split_path: str | Path, fingerprint: str) -> Path:
    return Path(split_path) / "tokens" / fingerprint[:16]


def ensure_tokens(
    split_path: str | Path,
    vqvae: torch.nn.Module,
    device: torch.device | str = "cpu",
    fingerprint: str | None = None,
    progress: bool = True,
) -> Path:
    """The folder of the split's codes under `vqvae`, encoding the frames first when there is none yet."""
    split_path = Path(split_path)
    fingerprint = fingerprint or vqvae_fingerprint(vqvae)
    folder = tokens_dir(split_path, fingerprint)
    spec = _spec(split_path, fingerprint)
    if read_manifest(folder).get("spec") == spec:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with lock_file(folder.parent / f".{folder.name}.lock"):
        if read_manifest(folder).get("spec") != spec:  # another process may have encoded it meanwhile
            _encode(split_path, folder, spec, vqvae, torch.device(device), progress)
    return folder


def load_tokens(folder: str | Path) -> np.ndarray:
    """Memory-map a folder's codes (N, T, G, h, w) after checking them against its manifest (one line if not)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    file = folder / "indices.npy"
    hint = f"delete {folder} to encode the split again"
    if not manifest:
        raise DataError(f"{folder}: no readable manifest.json for the token cache; {hint}")
    meta = manifest["file"]
    try:
        tokens = np.load(file, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DataError(f"{file}: unreadable token cache ({err}); {hint}") from None
    if list(tokens.shape) != meta["shape"] or str(tokens.dtype) != meta["dtype"]:
        raise DataError(
            f"{file}: shape {list(tokens.shape)} {tokens.dtype}, its manifest says {meta['shape']} "
            f"{meta['dtype']}; {hint}"
        )
    if sha256_file(file) != meta["sha256"]:
        raise DataError(f"{file}: sha256 does not match its manifest; {hint}")
    return tokens


# ----------------------------------------------------------------------------------------------------------


def _spec(split_path: Path, fingerprint: str) -> dict:
    """What the cached codes depend on: this layout, the VQ-VAE, and the exact frames."""
    frames = read_manifest(split_path).get("files", {}).get("frames", {})
    if "sha256" not in frames:
        raise DataError(f"{split_path}: no dataset manifest to encode the token cache from")
    return {"format": FORMAT, "vqvae": fingerprint, "frames_sha256": frames["sha256"]}


@torch.no_grad()
def _encode(split_path: Path, folder: Path, spec: dict, vqvae, device: torch.device, progress: bool) -> None:
    frames = load_split(split_path, verify=False)["frames"]  # (N, T, H, W, 3) uint8, memory-mapped
    n, t = frames.shape[:2]
    was_training = vqvae.training
    vqvae.eval()  # the quantiser neither initialises nor restarts codes in eval mode
    dtype = np.int16 if vqvae.quantizer.total_codes <= np.iinfo(np.int16).max else np.int32
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir(parents=True)
    try:
        started = time.perf_counter()
        writer = None
        per_call = max(1, ENCODE_BATCH // t)  # sequences per encoder call
        name = f"{split_path.parent.name}/{split_path.name}"
        bar = tqdm(total=n, desc=f"token cache {name}", unit="seq", disable=not progress, leave=False)
        for first in range(0, n, per_call):
            x = torch.from_numpy(np.array(frames[first : first + per_call])).to(device)  # (B, T, H, W, 3)
            x = x.flatten(0, 1).permute(0, 3, 1, 2).float().div_(255.0)  # (B*T, 3, H, W)
            indices = vqvae.encode(x)[1]  # (B*T, G, h, w)
            codes = indices.unflatten(0, (-1, t)).cpu().numpy().astype(dtype)  # (B, T, G, h, w)
            if writer is None:
                writer = NpyWriter(tmp / "indices.npy", np.dtype(dtype), (n, *codes.shape[1:]))
            writer.write(codes)
            bar.update(codes.shape[0])
        bar.close()
        manifest = {
            "spec": spec,
            "file": writer.close(),
            "num_codes": int(vqvae.quantizer.num_codes),
            "groups": int(vqvae.quantizer.groups),
            "encoded_in_s": round(time.perf_counter() - started, 2),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        vqvae.train(was_training)
