"""Errors that reach the user as one line (train.py and the scripts print them without a stack trace)."""

import errno
import sys


class PhysworldError(Exception):
    """Base class: a problem with the user's input, config, data or checkpoint, with a message that says
    which value is wrong and what is accepted (or what command fixes it)."""


class ConfigError(PhysworldError):
    """A config value is out of range or of the wrong type."""


class DataError(PhysworldError):
    """A dataset on disk is missing, truncated, corrupt or inconsistent."""


class CheckpointError(PhysworldError):
    """A checkpoint is missing, unreadable or from an incompatible phase."""


class FileSystemError(PhysworldError, OSError):
    """Reading or writing a file failed for a reason outside physworld: a full disk, a read-only folder, a path
    through a file, missing permissions. Also an OSError, so code that handles those still does."""


# errno -> (what went wrong, what to do), for the file-system errors a user can fix
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space or choose a folder on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose a folder on another disk"),
    errno.EROFS: ("read-only file system", "choose a writable folder"),
    errno.EACCES: ("permission denied", "choose a folder you may write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a folder you may write to, or fix its permissions"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose a path through folders"),
    errno.EISDIR: ("is a folder, a file was expected", "choose a file path"),
    errno.EEXIST: ("already exists as a file", "choose a path that is a folder or does not exist"),
    errno.ENOENT: ("no such file or folder", "check the path"),
}


def os_error(err: OSError, path=None) -> FileSystemError:
    """The one-line error for `err`, naming its file (or `path`, where the OSError names none: a failed write
    of an open file) and what to do."""
    where = err.filename if err.filename is not None else path
    reason, todo = _OS_ERRORS.get(err.errno, (err.strerror or str(err), "check the path and the disk"))
    return FileSystemError(f"{where}: {reason} (errno {err.errno}): {todo}")


def print_error(err: Exception) -> int:
    """Print `err` to stderr as the one line `physworld: error: <message>` (newlines folded into spaces) and
    return the exit code the command-line tools use for bad input, 2. An OSError is described by os_error."""
    if isinstance(err, OSError) and not isinstance(err, PhysworldError):
        err = os_error(err)
    print(f"physworld: error: {str(err).replace(chr(10), ' ')}", file=sys.stderr)
    return 2
