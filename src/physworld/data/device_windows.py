"""Windows cut on the device from frames held there once (`data.on_device=true`): the loader vanishes.

Every uint8 frame of a split is copied once into one tensor on the training device, the sequences of all
member datasets laid end to end along the time axis: frames (F, H, W, 3), F = sum of N * T over members.
Window i starts at flat frame starts[i], so a batch of windows is a single gather,
frames[starts[idx, None] + arange(seq_len)] -> (B, T, H, W, 3), with no worker, no collate and no
host-to-device copy. The order comes from the same sampler the DataLoader would use (data/samplers.py), so
the batches are the DataLoader's, in the same order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler

COPY_CHUNK = 64  # sequences copied to the device at a time (bounds the host memory of the copy)


class DeviceWindowLoader:
    """An iterable of batch dicts like the DataLoader's: frames uint8 (B, T, H, W, 3) (or, from the token
    cache, tokens int16 (B, T, G, h, w)), actions float32 (B, T, A), dataset int64 (B,), and rewards float32
    (B, T) when every member stores them.

    parts: the WindowDatasets of one split, indexed as their ConcatDataset; sampler: the order of the window
    indices (None: in order); Lightning calls its set_epoch, as for a DataLoader's. rank / world_size: each
    DDP rank takes every world_size-th index of the order (padded so that every rank gets as many).
    """

    def __init__(
        self,
        parts: list,
        batch_size: int,
        device: torch.device | str,
        sampler: Sampler[int] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.batch_size, self.device, self.sampler = batch_size, torch.device(device), sampler
        self.seq_len, self.rank, self.world_size = parts[0].seq_len, rank, world_size
        arrays = [p.arrays() for p in parts]
        pixels = [key for key in ("frames", "tokens") if all(key in a for a in arrays)]
        keys = [*pixels, "actions"] + (["rewards"] if all("rewards" in a for a in arrays) else [])
        self.data = {key: self._to_device([a[key] for a in arrays]) for key in keys}  # each (F, ...)
        starts, members, offset = [], [], 0
        for part, a in zip(parts, arrays):
            n, t = a[pixels[0]].shape[:2]
            window = torch.arange(part.windows_per_sequence) * part.stride  # (W,)
            starts.append((offset + torch.arange(n)[:, None] * t + window[None, :]).flatten())  # (n * W,)
            members.append(torch.full((n * part.windows_per_sequence,), part.dataset_index))
            offset += n * t
        self.starts = torch.cat(starts).to(self.device)  # (num_windows,)
        self.members = torch.cat(members).to(self.device)  # (num_windows,)
        self.offsets = torch.arange(self.seq_len, device=self.device)  # (T,)

    def __len__(self) -> int:
        return -(-self._per_rank() // self.batch_size)

    def __iter__(self):
        order = (
            torch.tensor(list(self.sampler)) if self.sampler is not None else torch.arange(len(self.starts))
        )
        pad = self._per_rank() * self.world_size - len(order)
        order = torch.cat([order, order[:pad]])[self.rank :: self.world_size].to(self.device)
        for first in range(0, len(order), self.batch_size):
            yield self.batch(order[first : first + self.batch_size])

    def batch(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Window indices (B,) on the device -> the batch dict, every tensor gathered on the device."""
        frames = (self.starts[windows, None] + self.offsets).flatten()  # (B * T,) flat frame indices
        out = {  # frames (B, T, H, W, 3), actions (B, T, A), ...
            key: value.index_select(0, frames).unflatten(0, (len(windows), self.seq_len))
            for key, value in self.data.items()
        }
        out["dataset"] = self.members[windows]
        return out

    # ------------------------------------------------------------------------------------------------------

    def _per_rank(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.starts)
        return -(-n // self.world_size)

    def _to_device(self, parts: list[np.ndarray]) -> torch.Tensor:
        """Per-member arrays (N, T, ...) -> one device tensor (sum of N * T, ...), copied a chunk at a time."""
        shape = parts[0].shape[2:]
        total = sum(a.shape[0] * a.shape[1] for a in parts)
        dtype = torch.from_numpy(np.empty(0, dtype=parts[0].dtype)).dtype
        out = torch.empty((total, *shape), dtype=dtype, device=self.device)
        offset = 0
        for a in parts:
            for first in range(0, a.shape[0], COPY_CHUNK):
                chunk = torch.from_numpy(np.array(a[first : first + COPY_CHUNK]))  # (n, T, ...), a copy
                chunk = chunk.flatten(0, 1)
                out[offset : offset + len(chunk)].copy_(chunk)
                offset += len(chunk)
        return out
