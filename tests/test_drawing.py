"""core.visual.drawing: heat maps, overlays, letterboxing, labels."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from core.visual.drawing import heatmap, label, letterbox, overlay, upscale_nearest


def test_upscale_nearest_makes_blocks_one_colour_each():
    grid = np.random.default_rng(2).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    big = upscale_nearest(grid, 42, 56)
    assert big.shape == (42, 56, 3)
    blocks = big.reshape(3, 14, 4, 14, 3)
    np.testing.assert_array_equal(blocks, np.broadcast_to(grid[:, None, :, None], blocks.shape))


def test_heatmap_maps_the_value_range_to_the_colour_map():
    import matplotlib

    values = np.array([[-1.0, 0.0], [1.0, 5.0]], np.float32)
    heat = heatmap(values, 20, 20)
    assert heat.shape == (20, 20, 3) and heat.dtype == np.uint8
    viridis = matplotlib.colormaps["viridis"]
    lo = np.rint(np.array(viridis(0.0)[:3]) * 255)
    hi = np.rint(np.array(viridis(1.0)[:3]) * 255)
    np.testing.assert_array_equal(heat[0, 0], lo)
    np.testing.assert_array_equal(heat[10, 0], hi)
    np.testing.assert_array_equal(heat[10, 10], hi)  # above vmax: clipped
    assert (heatmap(np.array([[np.nan]]), 4, 4) == 0).all()
    with pytest.raises(InvalidArgumentError, match="colour map"):
        heatmap(values, 4, 4, cmap="no-such-map")


def test_overlay_blends():
    img = np.full((8, 8, 3), 200, np.uint8)
    heat = np.zeros((8, 8, 3), np.uint8)
    assert (overlay(img, heat, 0.0) == 200).all()
    assert (overlay(img, heat, 1.0) == 0).all()
    assert (overlay(img, heat, 0.5) == 100).all()
    assert overlay(img, np.zeros((2, 2, 3), np.uint8)).shape == (8, 8, 3)


def test_letterbox_keeps_the_aspect_ratio():
    wide = np.full((50, 200, 3), 255, np.uint8)  # 4:1
    out = letterbox(wide, 100, 100, color=(10, 20, 30))
    assert out.shape == (100, 100, 3)
    content = np.argwhere((out == 255).all(axis=-1))
    (top, left), (bottom, right) = content.min(axis=0), content.max(axis=0)
    assert (right - left + 1) == 100 and (bottom - top + 1) == 25  # 4:1, not stretched to 1:1
    np.testing.assert_array_equal(out[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(out[99, 50], (10, 20, 30))
    tall = letterbox(np.full((90, 30, 3), 255, np.uint8), 120, 60)
    cols = np.flatnonzero((tall == 255).all(axis=-1).any(axis=0))
    assert len(cols) == 20  # 1:3 into 60 px of height


def test_label_draws_a_dark_box_in_the_chosen_corner():
    img = np.full((120, 200, 3), 200, np.uint8)
    tl = label(img, "Layer 3/24")
    assert (img == 200).all()  # the input is not modified
    changed = (tl != 200).any(axis=-1)
    assert changed[:30, :100].any() and not changed[60:, :].any() and not changed[:, 150:].any()
    assert tl[:30, :100].min() < 100 and tl[:30, :100].max() > 220  # dark box, light text
    br = (label(img, "x", corner="bottom-right") != 200).any(axis=-1)
    assert br[90:, 150:].any() and not br[:60, :].any()
    long = label(img, "a-very-long-file-name-" * 10 + ".jpg\nscore 0.9")
    assert long.shape == img.shape
    assert label(img, "no match ≥ 0.60", corner="center").shape == img.shape
    with pytest.raises(InvalidArgumentError, match="corner"):
        label(img, "x", corner="middle")
