"""The windowed drawing of render.py gives the same bytes as evaluating coverage on the full canvas."""

from __future__ import annotations

import numpy as np

from physworld.data import render


def full_canvas_discs(canvas, centres, radii, colors, visible):
    for k in range(centres.shape[1]):
        alpha = render.disc_alpha(centres[:, k].astype(np.float32), radii[:, k].astype(np.float32))
        render.composite(canvas, alpha * visible[:, k, None, None], colors[:, k])


def test_windowed_discs_equal_full_canvas():
    rng = np.random.default_rng(0)
    n, k = 16, 3
    radii = rng.uniform(1.0, 9.0, (n, k)).astype(np.float32)
    centres = rng.uniform(radii[..., None], 64 - radii[..., None], (n, k, 2)).astype(np.float32)
    colors = render.random_colors(rng, (n, k))
    visible = rng.random((n, k)) > 0.3
    fast, slow = render.blank(n, (0.05, 0.02, 0.1)), render.blank(n, (0.05, 0.02, 0.1))
    render.draw_discs(fast, centres, radii, colors, visible)
    full_canvas_discs(slow, centres, radii, colors, visible)
    assert np.array_equal(render.to_uint8(fast), render.to_uint8(slow))
    assert np.allclose(fast, slow, atol=1e-6)


def test_windowed_discs_touching_the_border():
    centres = np.array([[[0.5, 63.5]], [[63.9, 0.2]]], np.float32)
    radii = np.array([[4.0], [6.0]], np.float32)
    colors = np.ones((2, 1, 3), np.float32)
    fast, slow = render.blank(2), render.blank(2)
    render.draw_discs(fast, centres, radii, colors)
    full_canvas_discs(slow, centres, radii, colors, np.ones((2, 1), bool))
    assert np.allclose(fast, slow, atol=1e-6) and fast.max() > 0.9


def test_windowed_segments_equal_full_canvas():
    rng = np.random.default_rng(1)
    n = 16
    p0, p1 = (rng.uniform(2, 62, (n, 2)).astype(np.float32) for _ in range(2))
    colors = render.random_colors(rng, n)
    fast, slow = render.blank(n), render.blank(n)
    render.draw_segments(fast, p0, p1, 1.5, colors)
    render.composite(slow, render.segment_alpha(p0, p1, 1.5), colors)
    assert np.allclose(fast, slow, atol=1e-6) and fast.max() > 0.5
