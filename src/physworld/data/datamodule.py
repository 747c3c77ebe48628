"""The LightningDataModule: windows of `seq_len` frames from the memory-mapped datasets.

Batches stay uint8 until they are on the device (the phases convert in `on_after_batch_transfer`), which
keeps host memory, worker IPC and host-to-device copies four times smaller than float32. With
`on_device=True` the training windows are cut on the device itself (data/device_windows.py).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from physworld.data.cache import ensure_split, load_split
from physworld.data.device_windows import DeviceWindowLoader
from physworld.data.samplers import EpochShuffleSampler, EpochWeightedSampler
from physworld.data.tokens import ensure_tokens, load_tokens, vqvae_fingerprint
from physworld.errors import DataError

SERVED = ("frames", "tokens", "actions", "rewards")  # the arrays a window item carries (not states)


class WindowDataset(Dataset):
    """Every window of `seq_len` consecutive frames, starting every `stride` frames, of one split.

    Items are dicts: frames uint8 (T, H, W, 3), actions float32 (T, A), dataset int (index of the dataset
    in the mixture), and rewards float32 (T,) for datasets that store them. After `use_tokens(folder)` the
    frames are replaced by their codes from the token cache, tokens int16 (T, G, h, w). The files are opened
    lazily in each worker, so pickling the dataset stays cheap.
    """

    def __init__(self, path: str | Path, seq_len: int, stride: int, dataset_index: int = 0, verify=True):
        self.path, self.seq_len, self.stride, self.dataset_index = Path(path), seq_len, stride, dataset_index
        arrays = load_split(
            self.path, verify=verify
        )  # checks shapes and hashes up front, in the main process
        self.num_sequences, self.num_frames = arrays["frames"].shape[:2]
        self.windows_per_sequence = (self.num_frames - seq_len) // stride + 1
        self.tokens: Path | None = None  # the token-cache folder whose codes replace the frames
        self.keep_frames = False  # with tokens: serve the frames too
        self._arrays = None

    def use_tokens(self, folder: str | Path, keep_frames: bool = False) -> None:
        """Serve the codes in the token-cache `folder` (data/tokens.py) instead of the frames (or beside them)."""
        tokens = load_tokens(folder)  # checked once here, in the main process
        if tokens.shape[:2] != (self.num_sequences, self.num_frames):
            raise DataError(
                f"{folder}: codes of {tokens.shape[:2]} frames for a split of {self.num_sequences}"
            )
        self.tokens, self.keep_frames, self._arrays = Path(folder), keep_frames, None

    def arrays(self) -> dict[str, np.ndarray]:
        """The memory-mapped arrays this dataset serves: the split's, with "tokens" in place of "frames"."""
        arrays = load_split(self.path, verify=False)
        if self.tokens is not None:
            if not self.keep_frames:
                del arrays["frames"]
            arrays["tokens"] = load_tokens(self.tokens)
        return arrays

    def __len__(self) -> int:
        return self.num_sequences * self.windows_per_sequence

    def __getitem__(self, index: int) -> dict:
        if self._arrays is None:
            self._arrays = {k: v for k, v in self.arrays().items() if k in SERVED}
        seq, window = divmod(int(index), self.windows_per_sequence)
        window = slice(window * self.stride, window * self.stride + self.seq_len)
        # frames or tokens, actions, and rewards (interactive datasets: rewards[t] scores frame t), copied out
        # of the memmaps
        item = {key: torch.from_numpy(np.array(value[seq, window])) for key, value in self._arrays.items()}
        item["dataset"] = self.dataset_index
        return item

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = None  # memmaps are reopened in each worker
        return state


class VideoDataModule(L.LightningDataModule):
    """One or several datasets (a mixture for `dataset=all`), each with train/val/test splits.

    datasets: plain dicts as in `configs/dataset/<name>.yaml`; weights: sampling weight per dataset for
    the training mixture (None: proportional to size, i.e. plain concatenation); on_device: hold the
    training split in the memory of the trainer's device and cut windows there (val/test keep DataLoaders).
    pin_memory may be "auto": on when CUDA is available. token_cache (True, False or "auto"): whether a phase
    with a frozen VQ-VAE may train on the token cache (`attach_token_cache`, called by the phase).
    """

    def __init__(
        self,
        datasets: list[dict],
        data_dir: str,
        seed: int,
        seq_len: int,
        batch_size: int,
        stride: int = 1,
        num_workers: int = 0,
        pin_memory: bool | str = False,
        persistent_workers: bool = False,
        weights: list[float] | None = None,
        progress: bool = True,
        on_device: bool = False,
        data_seed: int | None = None,
        token_cache: bool | str = False,
        verify: bool | str = True,
    ):
        super().__init__()
        self.datasets, self.data_dir, self.seed = datasets, data_dir, seed
        # data_seed generates the data (defaults to seed); seed orders the windows
        self.data_seed = seed if data_seed is None else data_seed
        self.seq_len, self.stride, self.batch_size = seq_len, stride, batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory == "auto" else bool(pin_memory)
        self.persistent_workers = persistent_workers and num_workers > 0
        self.weights, self.progress, self.on_device = weights, progress, on_device
        self.token_cache = token_cache
        self.verify = verify  # data.verify: "always" hashes every file at every load (data/cache.py)
        self.splits: dict[str, list[WindowDataset]] = {}
        self._device_loader: DeviceWindowLoader | None = None

    @property
    def names(self) -> list[str]:
        return [d["name"] for d in self.datasets]

    def prepare_data(self) -> None:
        # Runs on one process per node before setup: generate anything missing or stale.
        for dataset in self.datasets:
            for split in ("train", "val", "test"):
                ensure_split(self.data_dir, dataset, split, self.data_seed, progress=self.progress)

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.splits:
                self.splits[split] = [
                    WindowDataset(
                        ensure_split(self.data_dir, d, split, self.data_seed, progress=self.progress),
                        self.seq_len,
                        self.stride,
                        dataset_index=i,
                        verify=self.verify,
                    )
                    for i, d in enumerate(self.datasets)
                ]

    def attach_token_cache(
        self, vqvae: torch.nn.Module, device: torch.device | str = "cpu", frames: bool = False
    ) -> list[Path]:
        """Train on the codes of the frozen `vqvae` instead of the frames: encode every training split once
        (or find its cache) and serve its codes (with `frames`, beside the frames, for a loss that needs them).
        Validation and test keep the frames (their metrics decode and compare frames). Returns the folders."""
        self.setup("fit")
        fingerprint = vqvae_fingerprint(vqvae)
        folders = []
        for part in self.splits["train"]:
            folder = ensure_tokens(part.path, vqvae, device, fingerprint, progress=self.progress)
            part.use_tokens(folder, keep_frames=frames)
            folders.append(folder)
        self._device_loader = None  # built again from the codes
        return folders

    def train_dataloader(self) -> DataLoader | DeviceWindowLoader:
        if self.on_device:
            return self.device_loader()
        parts = self.splits["train"]
        data = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        return self._loader(data, sampler=self.train_sampler())

    def train_sampler(self) -> EpochShuffleSampler:
        """The order of the training windows. Epoch-seeded: a resumed run sees the same batches."""
        parts = self.splits["train"]
        n = sum(len(p) for p in parts)
        if self.weights is None or len(parts) == 1:
            return EpochShuffleSampler(n, self.seed)
        # Mixture: each dataset gets its weight in expectation, whatever its size.
        per_item = torch.cat(
            [
                torch.full((len(p),), float(w) / len(p), dtype=torch.double)
                for p, w in zip(parts, self.weights)
            ]
        )
        return EpochWeightedSampler(per_item, n, self.seed)

    def val_dataloader(self):
        return self._eval_loaders("val")

    def test_dataloader(self):
        return self._eval_loaders("test")

    def device_loader(self, device: torch.device | str | None = None) -> DeviceWindowLoader:
        """The training windows cut on `device` (default: the trainer's), built once: the copy is the cost."""
        if self._device_loader is None:
            trainer = self.trainer
            if device is None:
                device = trainer.strategy.root_device if trainer is not None else "cpu"
            self._device_loader = DeviceWindowLoader(
                self.splits["train"],
                self.batch_size,
                device,
                sampler=self.train_sampler(),  # the DataLoader's order: the same batches
                rank=trainer.global_rank if trainer is not None else 0,
                world_size=trainer.world_size if trainer is not None else 1,
            )
        return self._device_loader

    def _eval_loaders(self, split: str):
        # One loader per dataset, so metrics can be reported per dataset (dataloader_idx = dataset index).
        loaders = [self._loader(part, shuffle=False) for part in self.splits[split]]
        return loaders[0] if len(loaders) == 1 else loaders

    def _loader(self, data, **kwargs) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            **kwargs,
        )
