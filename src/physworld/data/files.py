"""Writing files that are never half-written, and reading them back safely: the data cache's, the token cache's
and recorded episodes' (data/cache.py, data/tokens.py, data/sources/): a .npy written chunk by chunk and hashed
on the way, a folder built beside its place and moved in whole, a file's sha256, and a lock between processes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
from filelock import FileLock

from physworld.atomic import temp_name


class NpyWriter:
    """Write a .npy file chunk by chunk along its first axis, hashing the bytes on the way.

    Plain sequential writes, not a writable memmap: a memmap keeps every dirty page of the file resident in the
    process, so the peak memory of generation would grow with the dataset.
    """

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]):
        self.path, self.dtype, self.shape, self.rows = path, np.dtype(dtype), tuple(shape), 0
        self.file = open(path, "wb")
        self.digest = hashlib.sha256()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_1_0(self, header)  # calls self.write(bytes)

    def write(self, data) -> None:
        if isinstance(data, np.ndarray):
            if data.shape[1:] != self.shape[1:] or data.dtype != self.dtype:
                raise ValueError(
                    f"{self.path.name}: chunk {data.shape} {data.dtype} does not fit {self.shape}"
                )
            self.rows += data.shape[0]
            data = np.ascontiguousarray(data).tobytes()
        self.digest.update(data)
        self.file.write(data)

    def close(self) -> dict:
        self.file.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.path.name}: wrote {self.rows} of {self.shape[0]} rows")
        return {"shape": list(self.shape), "dtype": str(self.dtype), "sha256": self.digest.hexdigest()}


@contextlib.contextmanager
def building(path: Path):
    """Yield a hidden temporary folder beside `path` to write a split into; on success it replaces `path` whole
    (replace_folder), on any error it is deleted: a reader sees the old split or the new one, never part of one."""
    tmp = temp_name(path)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        replace_folder(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_folder(new: Path, path: Path) -> None:
    """Move a finished folder into place; an old (stale) folder is moved aside first, then deleted."""
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}-{time.time_ns()}"
        path.rename(old)
    new.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(file: Path) -> str:
    """The sha256 of a file's bytes, read 4 MiB at a time (the data cache's files, exported weights)."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def lock_file(file: Path) -> FileLock:
    """An exclusive lock on `file` (created if missing, left in place), waited for without a timeout: a context
    manager. filelock takes an OS lock on the open file (flock on Unix, msvcrt on Windows), so the kernel
    releases it when a holder dies, as fcntl.flock did; unlike fcntl it imports everywhere."""
    return FileLock(file)
