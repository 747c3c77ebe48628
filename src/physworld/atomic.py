"""Files written whole or not at all, and the temporary files a killed writer leaves behind.

A file is written under a temporary name in its own folder, `.<name>.tmp-<pid>-<ns>`, then renamed into place
(atomic on POSIX: a reader sees the old file or the new one). A writer killed in between leaves the temporary
file; `remove_leftovers` deletes such files (and folders) of a given name, but only those whose writer is gone:
the process id in the name is no live process on this machine, and nothing in it changed for `min_age_s`
(a writer on another machine sharing the folder keeps touching its file while it writes).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

STALE_AFTER_S = 60.0  # a temporary file untouched this long, by a process that is gone, is a leftover
_PID = re.compile(r"\.(?:tmp|old)-(\d+)")  # temporary files, and folders moved aside to be deleted


def temp_name(path: Path) -> Path:
    """The temporary name `path` is written under before the rename."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.time_ns()}")


def write_atomic(path: str | Path, write) -> Path:
    """Call `write(tmp)` to write the file at a temporary path, then rename it to `path`; on any error the
    temporary file is removed and `path` keeps what it held before."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _newest_change(path: Path) -> float:
    """The latest modification time of `path` and, for a folder, of anything in it."""
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [p.lstat().st_mtime for p in path.rglob("*")]
    return max(times)


def remove_leftovers(folder: Path, prefix: str, min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the `<prefix>tmp-<pid>...` and `<prefix>old-<pid>...` files and folders in `folder` whose writer
    is gone (see the module doc); return what was deleted. What cannot be read or deleted is left alone."""
    removed = []
    try:
        entries = [p for p in Path(folder).iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _PID.search(entry.name, len(prefix) - 1)
        if match is None:
            continue
        try:
            if pid_alive(int(match.group(1))) or now - _newest_change(entry) < min_age_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def check_new_folder(folder: str | Path, key: str, overwrite: bool) -> None:
    """A folder about to be written: it must not be a file, and unless `overwrite`, it must be missing or empty
    (ConfigError, one line naming `key`), so nothing in it is replaced without being asked for."""
    from physworld.errors import ConfigError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{key}={str(folder)!r} is a file: accepted a folder (created if missing)")
    held = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise ConfigError(
            f"{key}={str(folder)!r} already holds {shown}: choose a new folder, or pass overwrite=true to replace "
            "the files it writes"
        )
