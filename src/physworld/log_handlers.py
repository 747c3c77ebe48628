"""One console line per log message when Hydra configures logging.

Importing `lightning` gives its package logger a console handler of its own, and that logger still propagates
to the root logger, which Hydra's job logging gives a console handler (and train.log). Every Lightning INFO
line ("GPU available: ...") was printed twice. Hydra's handlers stay: they also write the run's log file.
"""

from __future__ import annotations

import logging


def drop_lightning_console_handler() -> None:
    """Remove the console handlers `import lightning` put on its loggers, when the root logger has handlers of
    its own to print their messages (under Hydra; a plain script without logging config keeps Lightning's)."""
    import lightning  # noqa: F401  (its import adds the handler; importing it first makes this idempotent)

    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # not a FileHandler (a subclass) someone added
                logger.removeHandler(handler)
        logger.propagate = True
