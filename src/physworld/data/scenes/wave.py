"""Wave: ripples on a closed tank of water. One to three drops start as Gaussian bumps of the surface at rest
and spread as rings that reflect off the tank walls and interfere, under the damped 2-D wave equation

    u_tt = c^2 lap(u) - gamma u_t,

with wave speed c (px/frame) and damping rate gamma (1/frame); u is the surface height (arbitrary units).

Numerics (time unit: one frame): one grid cell per pixel (the 64x64 canvas, cell centres at pixel centres),
the 5-point Laplacian with reflecting (zero-flux, Neumann) walls, and the explicit leapfrog
    (u+ - 2u + u-) / dt^2 = c^2 lap(u) - gamma (u+ - u-) / (2 dt)
with a fixed number of sub-steps per frame, which must satisfy the 2-D CFL condition c dt <= 1/sqrt(2).
The saved energy is the scheme's own discrete energy, on the half sub-step before each frame,
    E = 1/2 sum((u - u-) / dt)^2 + c^2/2 sum(grad u . grad u-)    (sums over cells and cell edges),
which the leapfrog conserves exactly when gamma = 0 and which otherwise decays at the rate gamma sum(u_t^2).

Rendering: height is mapped through tanh(gain * u) to a per-sequence colour map -- a dark background at
rest, blending to one colour on crests and another in troughs -- looked up in a fine table for speed.
"""

from __future__ import annotations

import numpy as np

from physworld.data.render import SIZE, pixel_centres, random_colors, to_uint8
from physworld.data.scenes.base import Scene, uniform

VERSION = 1
MAX_SOURCES = 3
# energy: the discrete wave energy above, in height^2 px^2 / frame^2; source k: where drop k landed, pixels
# (constant over the sequence; NaN for absent drops).
STATE_NAMES = ("energy",) + tuple(f"source{k}_{q}" for k in range(MAX_SOURCES) for q in ("x", "y"))
POSITIONS = ()  # no point-like objects: the sources are where rings start, not something drawn
BLOCK = 64  # sequences simulated together: their arrays stay in the CPU cache (faster than all at once)


def bumps(sources: np.ndarray, amplitude: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Initial surface (N, H, W) float32: a Gaussian bump per drop, centres (N, K, 2) in pixels, peak
    heights and sigmas (N, K)."""
    xs, ys = pixel_centres()  # (1, H, W) each
    u0 = np.zeros((sources.shape[0], SIZE, SIZE), np.float32)
    for j in range(sources.shape[1]):
        d2 = (xs - sources[:, j, 0, None, None]) ** 2 + (ys - sources[:, j, 1, None, None]) ** 2
        u0 += amplitude[:, j, None, None] * np.exp(-d2 / (2 * width[:, j, None, None] ** 2))
    return u0


def laplacian(u: np.ndarray, out: np.ndarray) -> np.ndarray:
    """5-point Laplacian of u (N, H, W) with zero-flux walls, written into `out`: each cell gains the
    difference across each of its edges, so walls simply have no edge (this is the graph Laplacian, whose
    quadratic form -sum(a * lap(b)) is the sum over edges of the products of differences)."""
    dx = u[:, :, 1:] - u[:, :, :-1]  # (N, H, W-1) differences across vertical edges
    out[:, :, :-1] = dx
    out[:, :, -1] = 0.0
    out[:, :, 1:] -= dx
    dy = u[:, 1:, :] - u[:, :-1, :]  # (N, H-1, W)
    out[:, :-1, :] += dy
    out[:, 1:, :] -= dy
    return out


def energy(u: np.ndarray, u_prev: np.ndarray, c: np.ndarray, dt: float, lap_prev: np.ndarray) -> np.ndarray:
    """(N,) discrete energy between two consecutive sub-steps; lap_prev = laplacian(u_prev); c (N,)."""
    step = u - u_prev
    kinetic = 0.5 / dt**2 * np.sum(step * step, axis=(1, 2), dtype=np.float64)
    potential = -0.5 * c.astype(np.float64) ** 2 * np.sum(u * lap_prev, axis=(1, 2), dtype=np.float64)
    return kinetic + potential


def simulate(u0, c, gamma, num_frames, substeps):
    """Leapfrog the damped wave equation from u0 (N, H, W) at rest; c, gamma (N,).
    Returns the height per frame (N, T, H, W) float32 and the energy per frame (N, T) float64."""
    dt = 1.0 / substeps
    if float(np.max(c)) * dt > 1 / np.sqrt(2):
        raise ValueError(f"wave speed {float(np.max(c))} with {substeps} sub-steps breaks the CFL condition")
    k = ((c * dt) ** 2).astype(np.float32)[:, None, None]  # (N, 1, 1) Courant number squared
    b = (0.5 * gamma * dt).astype(np.float32)[:, None, None]  # (N, 1, 1) damping per half sub-step
    # The update u+ = (2 u - (1 - b) u- + k lap(u)) / (1 + b), as u+ = A u - B u- + C lap(u).
    coef_a, coef_b, coef_c = 2 / (1 + b), (1 - b) / (1 + b), k / (1 + b)
    u = u0.astype(np.float32)
    lap_u = laplacian(u, np.empty_like(u))
    u_prev = u + 0.5 * k * lap_u  # at rest: u(-dt) = u(dt), and the Taylor step gives u(dt)
    lap_prev = laplacian(u_prev, np.empty_like(u))
    tmp = np.empty_like(u)
    fields = np.empty((u.shape[0], num_frames, *u.shape[1:]), np.float32)
    energies = np.empty((u.shape[0], num_frames))
    for t in range(num_frames):
        if t > 0:
            for _ in range(substeps):
                # In place (u- is not needed afterwards): this loop is the generator's hot spot.
                u_prev *= -coef_b
                u_prev += np.multiply(coef_a, u, out=tmp)
                u_prev += np.multiply(coef_c, lap_u, out=tmp)
                u_prev, u = u, u_prev
                lap_prev, lap_u = lap_u, laplacian(u, out=lap_prev)  # reuses lap_prev's buffer
        fields[:, t] = u
        energies[:, t] = energy(u, u_prev, c, dt, lap_prev)
    return fields, energies


def colour_map(fields, background, crest, trough, gain, levels=4097):
    """Frames (N, T, H, W, 3) uint8 of heights (N, T, H, W): background (N, 3) at rest, blending as
    |tanh(gain * u)| to the crest colour (N, 3) above and the trough colour below. Looked up in a per-sequence
    table of `levels` heights over |u| <= 4 / gain (tanh(4) = 0.9993; larger heights are clamped to the
    ends), fine enough that neighbouring entries differ by under one 8-bit level."""
    n = fields.shape[0]
    top = 4.0 / gain
    u = np.linspace(-top, top, levels, dtype=np.float32)  # odd levels: the middle entry is exactly 0
    v = np.tanh(gain * u)[None, :, None]  # (1, L, 1)
    bg = background[:, None, :]  # (N, 1, 3)
    table = bg + np.maximum(v, 0.0) * (crest[:, None] - bg) + np.maximum(-v, 0.0) * (trough[:, None] - bg)
    table = to_uint8(table).reshape(n * levels, 3)  # (N L, 3)
    frames = np.empty((*fields.shape, 3), np.uint8)
    offset = (np.arange(n) * levels + (levels - 1) // 2)[:, None, None]  # (N, 1, 1) row of u = 0
    scale = np.float32((levels - 1) / (2 * top))
    for t in range(fields.shape[1]):
        idx = np.rint(np.clip(fields[:, t], -top, top) * scale).astype(np.intp) + offset  # (N, H, W)
        frames[:, t] = np.take(table, idx, axis=0)
    return frames


def generate(rng: np.random.Generator, n: int, num_frames: int, params: dict) -> Scene:
    low, high = (int(v) for v in params["num_sources"])
    if not 1 <= low <= high <= MAX_SOURCES:
        raise ValueError(
            f"dataset.scene.num_sources={[low, high]}: accepted 1 <= low <= high <= {MAX_SOURCES}"
        )
    substeps = int(params["substeps"])
    if float(params["speed"][1]) / substeps > 1 / np.sqrt(2):
        raise ValueError(
            f"dataset.scene.speed={params['speed']} with substeps={substeps}: accepted speed / substeps"
            " <= 1/sqrt(2) (the CFL condition of the leapfrog)"
        )
    k = MAX_SOURCES
    num_sources = rng.integers(low, high + 1, size=n)  # (N,) inclusive of high
    present = np.arange(k) < num_sources[:, None]  # (N, K)
    margin = float(params["source_margin"])
    sources = uniform(rng, [margin, SIZE - margin], n, k, 2)  # (N, K, 2) x, y of each drop
    amplitude = uniform(rng, params["amplitude"], n, k) * np.where(rng.random((n, k)) < 0.5, -1, 1)
    amplitude = np.where(present, amplitude, 0.0).astype(np.float32)  # absent drops add nothing
    width = uniform(rng, params["width"], n, k)  # Gaussian sigma, pixels
    speed = uniform(rng, params["speed"], n)
    damping = uniform(rng, params["damping"], n)
    colors = random_colors(rng, (n, 2))  # crest, trough
    background = uniform(rng, params["background"], n, 3)
    gain = float(params["gain"])

    u0 = bumps(sources, amplitude, width)  # (N, H, W)
    frames = np.empty((n, num_frames, SIZE, SIZE, 3), np.uint8)
    energies = np.empty((n, num_frames))
    for start in range(0, n, BLOCK):
        b = slice(start, start + BLOCK)
        fields, energies[b] = simulate(u0[b], speed[b], damping[b], num_frames, substeps)
        frames[b] = colour_map(fields, background[b], colors[b, 0], colors[b, 1], gain)

    src = np.where(present[..., None], sources, np.nan).reshape(n, 1, 2 * k)  # (N, 1, 2K)
    states = np.concatenate([energies[..., None], np.broadcast_to(src, (n, num_frames, 2 * k))], axis=-1)
    return Scene(
        frames=frames,
        states=states.astype(np.float32),
        params={
            "num_sources": num_sources.astype(np.int64),
            "source_amplitude": np.where(present, amplitude, np.nan).astype(np.float32),
            "source_width": np.where(present, width, np.nan).astype(np.float32),
            "speed": speed,
            "damping": damping,
            "wave_colors": colors,
            "background": background,
        },
    )
