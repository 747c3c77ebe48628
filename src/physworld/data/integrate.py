"""Classical Runge-Kutta (RK4) time-stepping of y' = deriv(y), shared by the scenes that state their physics
as a first-order ODE in float64 (pendulum, spring_mass, double_pendulum).

Time is in frames: `integrate` records the state at every frame and takes `steps` RK4 steps of size `dt`
between two frames (the scenes pass dt = 1 / substeps, so the steps span one frame).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Derivative = Callable[[np.ndarray], np.ndarray]


def rk4_step(deriv: Derivative, y: np.ndarray, h: float) -> np.ndarray:
    """One classical Runge-Kutta step of y' = deriv(y) with step h (y any shape, float64)."""
    k1 = deriv(y)
    k2 = deriv(y + 0.5 * h * k1)
    k3 = deriv(y + 0.5 * h * k2)
    k4 = deriv(y + h * k3)
    return y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def integrate(deriv: Derivative, y0: np.ndarray, dt: float, steps: int, num_frames: int) -> np.ndarray:
    """Integrate y' = deriv(y) from y0 (N, D), `steps` RK4 steps of size dt from one frame to the next.

    Returns float64 (N, T, D), T = num_frames: y0 at frame 0, then the state after each frame's steps.
    """
    y = np.asarray(y0, np.float64)
    out = np.empty((y.shape[0], num_frames, y.shape[1]))
    for t in range(num_frames):
        if t > 0:
            for _ in range(steps):
                y = rk4_step(deriv, y, dt)
        out[:, t] = y
    return out
