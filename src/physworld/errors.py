"""Errors that reach the user as one line (train.py and the scripts print them without a stack trace)."""


class PhysworldError(Exception):
    """Base class: a problem with the user's input, config, data or checkpoint, with a message that says
    which value is wrong and what is accepted (or what command fixes it)."""


class ConfigError(PhysworldError):
    """A config value is out of range or of the wrong type."""


class DataError(PhysworldError):
    """A dataset on disk is missing, truncated, corrupt or inconsistent."""


class CheckpointError(PhysworldError):
    """A checkpoint is missing, unreadable or from an incompatible phase."""
