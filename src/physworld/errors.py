"""Errors that reach the user as one line (train.py and the scripts print them without a stack trace)."""

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


def print_error(err: Exception) -> int:
    """Print `err` to stderr as the one line `physworld: error: <message>` (newlines folded into spaces) and
    return the exit code the command-line tools use for bad input, 2."""
    print(f"physworld: error: {str(err).replace(chr(10), ' ')}", file=sys.stderr)
    return 2
