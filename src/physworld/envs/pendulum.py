"""A reference controller for Gymnasium's Pendulum-v1 on the true state: energy-based swing-up, then a balancing
PD controller near the top (Astrom and Furuta, 2000, "Swinging up a pendulum by energy control"). The oracle
baseline of evaluations in that environment (physworld.envs.reference).

Pendulum-v1 (a uniform rod of mass m = 1 and length l = 1, pivot at one end, g = 10, dt = 0.05, torque u in
[-2, 2]) integrates theta'' = 3 g / (2 l) sin(theta) + 3 u / (m l^2) = 15 sin(theta) + 3 u, theta = 0 upright.
Its energy E = theta'^2 / 2 + 15 (cos(theta) - 1) (0 at rest upright, -30 at rest hanging) then changes as
dE/dt = 3 u theta' alone, so a torque along theta' pumps energy in: u = k (0 - E) theta', clipped to the torque
limit, drives E to the upright's. A pendulum at rest gets a full push to start it. Within `zone` radians of the
top, u = -(kp theta + kd theta') holds it there: linearised, theta'' = (15 - 3 kp) theta - 3 kd theta', stable for
kp > 5.
"""

from __future__ import annotations

import numpy as np

MAX_TORQUE = 2.0  # Pendulum-v1's action box is [-2, 2]


def pendulum_swing_up(
    states: np.ndarray, gain: float = 0.5, kp: float = 10.0, kd: float = 2.0, zone: float = 0.6
) -> np.ndarray:
    """Observations (E, 3) = (cos theta, sin theta, theta') -> actions (E, 1) in the model's range [-1, 1]
    (torque / 2, which data.sources.gym.to_env_action maps back onto Pendulum-v1's [-2, 2])."""
    cos, sin, speed = states[:, 0], states[:, 1], states[:, 2]
    angle = np.arctan2(sin, cos)  # in (-pi, pi], 0 upright
    energy = 0.5 * speed**2 + 15.0 * (cos - 1.0)
    pump = np.clip(-gain * energy * speed, -MAX_TORQUE, MAX_TORQUE)
    # Near rest the pump's torque vanishes with theta': push fully along the motion (or at all, from rest)
    pump = np.where(np.abs(speed) < 0.1, MAX_TORQUE * np.where(speed < 0, -1.0, 1.0), pump)
    balance = np.clip(-(kp * angle + kd * speed), -MAX_TORQUE, MAX_TORQUE)
    torque = np.where(cos > np.cos(zone), balance, pump)
    return (torque / MAX_TORQUE)[:, None].astype(np.float32)
