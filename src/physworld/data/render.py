"""Anti-aliased drawing on batches of small RGB canvases, in pure numpy.

Every scene generator renders through these few primitives so that all datasets share one look and
one coordinate convention:

- a canvas is float32 (N, H, W, 3) in [0, 1], one image per sequence of the batch;
- positions are (x, y) in pixel units, x to the right, y downwards (gravity is +y); the pixel in row i,
  column j covers [j, j+1) x [i, i+1) and its centre is (j + 0.5, i + 0.5);
- coverage is the analytic "distance to the edge" estimate clip(r + 0.5 - d, 0, 1), which gives
  one-pixel soft edges (anti-aliasing) without supersampling.

All functions are vectorised over the batch N and over the K objects; nothing loops over pixels. Shapes are
drawn in a window around them (`draw_windowed`), which gives the same bytes as evaluating the coverage on the
full canvas at a fraction of the cost: shifting float32 coordinates in [0, 64] by a whole number of pixels is
exact, so the window holds bit for bit the values of the full-canvas coverage.
"""

from __future__ import annotations

import numpy as np

SIZE = 64


def pixel_centres(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys), each float32 (1, H, W): the pixel-centre coordinates of a canvas."""
    c = np.arange(size, dtype=np.float32) + 0.5
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return xs[None], ys[None]


def blank(n: int, color=(0.0, 0.0, 0.0), size: int = SIZE) -> np.ndarray:
    """A batch of N canvases filled with one colour, or with per-sequence colours of shape (N, 3)."""
    color = np.asarray(color, dtype=np.float32)
    canvas = np.empty((n, size, size, 3), dtype=np.float32)
    canvas[...] = color.reshape(-1, 1, 1, 3) if color.ndim == 2 else color
    return canvas


def composite(canvas: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """Paint `color` over `canvas` in place with coverage `alpha`.

    canvas (N, H, W, 3); alpha (N, H, W) in [0, 1]; color (N, 3) or (3,).
    """
    color = np.asarray(color, dtype=np.float32)
    color = color[:, None, None, :] if color.ndim == 2 else color
    a = alpha[..., None]
    canvas *= 1.0 - a
    canvas += a * color


def disc_alpha(centres: np.ndarray, radii: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Coverage of N discs: centres (N, 2) as (x, y), radii (N,) -> alpha (N, H, W)."""
    xs, ys = pixel_centres(size)
    cx = centres[:, 0, None, None].astype(np.float32)
    cy = centres[:, 1, None, None].astype(np.float32)
    d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    return np.clip(radii[:, None, None].astype(np.float32) + 0.5 - d, 0.0, 1.0)


RGB_ITEM = np.dtype((np.void, 12))  # one float32 RGB pixel as a single item, for fast scatters


def draw_windowed(canvas: np.ndarray, lo: np.ndarray, hi: np.ndarray, coverage, color: np.ndarray) -> None:
    """Composite one shape per canvas, in place, evaluating its coverage only in a square window.

    canvas (N, H, W, 3) C-contiguous; lo, hi (N, 2): the (x, y) bounding box of every pixel the shape may
    touch, soft edge included; color (N, 3); coverage(offset, size) -> alpha (N, size, size) must call a
    coverage primitive of this module with the shape's float32 coordinates shifted by -offset (N, 2).
    """
    n, size = canvas.shape[:2]
    if not canvas.flags.c_contiguous:  # the flat view below must write into the canvas itself
        raise ValueError("draw_windowed needs a C-contiguous canvas")
    first = np.floor(lo - 0.5).astype(np.int64)  # (N, 2) a pixel is touched only if lo < centre < hi
    last = np.ceil(hi - 0.5).astype(np.int64)
    p = int(np.clip((last - first).max() + 1, 1, size))  # one window size for the whole batch
    corner = np.clip(first, 0, size - p)  # (N, 2) window's top-left pixel (x, y)
    offs = np.arange(p)
    rows = np.arange(n)[:, None] * size + corner[:, 1, None] + offs  # (N, P) rows of the (N*H, W) stack
    pixel = rows[:, :, None] * size + corner[:, 0, None, None] + offs  # (N, P, P) flat pixel indices
    flat = canvas.reshape(-1, 3)  # a view: (N*H*W, 3); one flat index gathers twice as fast as three
    region = np.take(flat, pixel, axis=0)  # (N, P, P, 3)
    composite(region, coverage(corner.astype(np.float32), p), color)
    # Scatter back with each RGB pixel seen as one 12-byte item: np.put is ~4x faster than flat[pixel] = ...
    np.put(flat.view(RGB_ITEM), pixel, region.view(RGB_ITEM))


def draw_discs(canvas, centres, radii, colors, visible=None) -> None:
    """Draw K discs per canvas, in order (later discs on top), each in a window around it.

    canvas (N, H, W, 3); centres (N, K, 2); radii (N, K); colors (N, K, 3);
    visible (N, K) bool, optional: False skips that disc (for a variable number of objects).
    """
    for k in range(centres.shape[1]):
        centre = centres[:, k].astype(np.float32)  # (N, 2)
        radius = radii[:, k].astype(np.float32)  # (N,)
        pad = (radius + 0.5)[:, None]  # the soft edge reaches half a pixel past the radius

        def coverage(offset, size, centre=centre, radius=radius, k=k):
            alpha = disc_alpha(centre - offset, radius, size)
            return alpha if visible is None else alpha * visible[:, k, None, None]

        draw_windowed(canvas, centre - pad, centre + pad, coverage, colors[:, k])


def segment_alpha(p0: np.ndarray, p1: np.ndarray, width, size: int = SIZE) -> np.ndarray:
    """Coverage of N line segments with round caps: p0, p1 (N, 2); width scalar or (N,) -> (N, H, W)."""
    xs, ys = pixel_centres(size)
    x0, y0 = p0[:, 0, None, None], p0[:, 1, None, None]
    dx, dy = (p1[:, 0] - p0[:, 0])[:, None, None], (p1[:, 1] - p0[:, 1])[:, None, None]
    length2 = np.maximum(dx * dx + dy * dy, 1e-12)
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0.0, 1.0)
    d = np.sqrt((xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2)
    half = np.broadcast_to(np.asarray(width, dtype=np.float32), (p0.shape[0],))[:, None, None] / 2
    return np.clip(half + 0.5 - d, 0.0, 1.0).astype(np.float32)


def draw_segments(canvas, p0, p1, width, colors) -> None:
    """Draw one segment per canvas, in a window around it: p0, p1 (N, 2); width scalar or (N,); colors (N, 3)."""
    p0, p1 = p0.astype(np.float32), p1.astype(np.float32)
    pad = (np.broadcast_to(np.asarray(width, np.float32), (p0.shape[0],)) / 2 + 0.5)[:, None]

    def coverage(offset, size):
        return segment_alpha(p0 - offset, p1 - offset, width, size)

    draw_windowed(canvas, np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad, coverage, colors)


def rect_alpha(x0, y0, x1, y1, size: int = SIZE) -> np.ndarray:
    """Coverage of N axis-aligned rectangles [x0, x1] x [y0, y1], each (N,), with soft edges."""
    xs, ys = pixel_centres(size)
    ax = np.clip(np.minimum(xs - x0[:, None, None], x1[:, None, None] - xs) + 0.5, 0.0, 1.0)
    ay = np.clip(np.minimum(ys - y0[:, None, None], y1[:, None, None] - ys) + 0.5, 0.0, 1.0)
    return (ax * ay).astype(np.float32)


def random_colors(rng: np.random.Generator, shape, low: float = 0.35) -> np.ndarray:
    """Bright, saturated random colours of `shape + (3,)`: each has one channel at 1.0 so that
    objects stand out from a dark background and no colour is near-black."""
    shape = tuple(np.atleast_1d(shape))
    colors = rng.uniform(low, 1.0, size=shape + (3,)).astype(np.float32)
    brightest = rng.integers(0, 3, size=shape)
    np.put_along_axis(colors, brightest[..., None], 1.0, axis=-1)
    return colors


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 [0, 255], rounded."""
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
