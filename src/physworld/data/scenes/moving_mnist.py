"""Moving MNIST (Srivastava et al., 2015) in colour: digits gliding at constant velocity, bouncing off
the walls. Digits come from a 5,000-digit MNIST subset shipped in the package (physworld/data/assets, with its
licence and provenance), so nothing downloads and no extra dependency is needed.

Positions are sub-pixel: each 28x28 digit is shifted bilinearly before it is pasted, so motion is smooth
(anti-aliased) rather than stepping by whole pixels. Overlapping digits combine by maximum, as in the
original dataset.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from physworld.data.render import SIZE, random_colors
from physworld.data.scenes.base import Scene, uniform

VERSION = 1
DIGIT = 28  # side of an MNIST digit, pixels
DIGITS_FILE = "mnist_5k.npz"  # images uint8 (5000, 28, 28), labels uint8 (5000,)
MAX_DIGITS = 4


def state_names(num_digits: int) -> tuple[str, ...]:
    return tuple(f"digit{k}_{q}" for k in range(num_digits) for q in ("x", "y", "vx", "vy"))


STATE_NAMES = state_names(MAX_DIGITS)
POSITIONS = tuple((4 * k, 4 * k + 1) for k in range(MAX_DIGITS))


@lru_cache(maxsize=1)
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits as float32 (5000, 28, 28) in [0, 1] and their labels (5000,)."""
    with resources.files("physworld.data").joinpath("assets", DIGITS_FILE).open("rb") as f:
        with np.load(f, allow_pickle=False) as archive:  # plain arrays only: nothing in the file can run
            images, labels = archive["images"], archive["labels"]
    return (images.astype(np.float64) / 255.0).astype(np.float32), labels.astype(np.int64)


def bounce(pos: np.ndarray, vel: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Advance one frame with elastic reflection off [low, high] (any overshoot is mirrored back)."""
    pos = pos + vel
    below, above = pos < low, pos > high
    pos = np.where(below, 2 * low - pos, np.where(above, 2 * high - pos, pos))
    vel = np.where(below | above, -vel, vel)
    return pos, vel


def paste_max(canvas: np.ndarray, patches: np.ndarray, x0: np.ndarray, y0: np.ndarray) -> None:
    """canvas (N, H, W, 3) <- max(canvas, patch) with patches (N, P, P, 3) at integer corners x0, y0 (N,)."""
    n, p = patches.shape[:2]
    rows = y0[:, None] + np.arange(p)  # (N, P)
    cols = x0[:, None] + np.arange(p)  # (N, P)
    idx = (np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :])
    canvas[idx] = np.maximum(canvas[idx], patches)


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    k = int(params["num_digits"])
    if not 1 <= k <= MAX_DIGITS:
        raise ValueError(f"dataset.scene.num_digits={k}: accepted 1..{MAX_DIGITS}")
    digits, labels = mnist_digits()
    which = rng.integers(0, len(digits), size=(n, k))
    colors = random_colors(rng, (n, k)) if params.get("colored", True) else np.ones((n, k, 3), np.float32)

    high = float(SIZE - DIGIT - 1)  # top-left corner range keeps the (DIGIT+1)-wide shifted patch inside
    pos = uniform(rng, [0.0, high], n, k, 2)  # (N, K, 2) top-left corner, x then y
    speed = uniform(rng, params["speed"], n, k)
    angle = uniform(rng, [0.0, 2 * np.pi], n, k)
    vel = np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=-1)  # (N, K, 2) px/frame

    # Digits padded by one pixel so a sub-pixel shift never clips them: (N, K, P, P) with P = DIGIT + 1.
    padded = np.zeros((n, k, DIGIT + 1, DIGIT + 1), np.float32)
    padded[:, :, 1:, 1:] = digits[which]

    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    states = np.full((n, num_frames, 4 * MAX_DIGITS), np.nan, np.float32)  # NaN columns: absent digits
    for t in range(num_frames):
        if t > 0:
            pos, vel = bounce(pos, vel, 0.0, high)
        canvas = np.zeros((n, SIZE, SIZE, 3), np.float32)
        corner = np.floor(pos).astype(np.int64)
        frac = (pos - corner)[..., None, None]  # (N, K, 2, 1, 1)
        fx, fy = frac[:, :, 0], frac[:, :, 1]
        # Bilinear shift by (fx, fy): the pasted patch starts one pixel up-left of the digit.
        shifted = (
            (1 - fx) * (1 - fy) * padded
            + fx * (1 - fy) * np.roll(padded, 1, axis=-1)
            + (1 - fx) * fy * np.roll(padded, 1, axis=-2)
            + fx * fy * np.roll(np.roll(padded, 1, axis=-1), 1, axis=-2)
        )
        for j in range(k):
            patch = shifted[:, j, :, :, None] * colors[:, j, None, None, :]
            paste_max(canvas, patch, corner[:, j, 0], corner[:, j, 1])
        frames[:, t] = (canvas * 255.0 + 0.5).astype(np.uint8)
        centre = pos + 0.5 + DIGIT / 2  # the digit box spans [corner+1, corner+1+DIGIT) after padding
        states[:, t, : 4 * k] = np.concatenate([centre, vel], axis=-1).reshape(n, 4 * k)

    return Scene(
        frames=frames,
        states=states,
        params={
            "object_colors": colors,
            "digit_index": which.astype(np.int64),
            "digit_label": labels[which],
            "speed": speed,
            "num_objects": np.full(n, k, np.int64),
        },
    )
