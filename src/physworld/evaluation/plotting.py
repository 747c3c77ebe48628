"""matplotlib's pyplot on the Agg backend: figures are written to files, never shown in a window."""

from __future__ import annotations


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
