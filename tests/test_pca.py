"""core.visual.pca: PCA-to-RGB, fitted once and applied anywhere (colour-stable)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from core.visual.pca import PcaColorizer, pca_rgb


def clustered_features(seed: int = 0, n: int = 400, d: int = 32) -> np.ndarray:
    """Four well separated clusters of features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (4, d))
    return (centres[rng.integers(0, 4, n)] + rng.normal(0, 0.5, (n, d))).astype(np.float32)


def object_on_background(
    seed: int = 0, rows: int = 16, cols: int = 16, d: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """rows×cols×d features: a tight background cluster around a textured object block (mask True)."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(0, 0.2, (rows, cols, d)) + rng.normal(0, 1, d) * 3
    mask = np.zeros((rows, cols), bool)
    mask[5:11, 4:12] = True
    obj_centre = rng.normal(0, 1, d) * 3
    feats[mask] = obj_centre + rng.normal(0, 1.0, (int(mask.sum()), d))
    return feats.astype(np.float32), mask


def test_colorizer_gives_rgb_bytes_over_the_full_range():
    x = clustered_features()
    rgb = PcaColorizer().fit(x).transform(x)
    assert rgb.shape == (400, 3) and rgb.dtype == np.uint8
    # robust 1..99 % scaling: every channel reaches both ends, and most values are in between
    assert (rgb.min(axis=0) == 0).all() and (rgb.max(axis=0) == 255).all()
    assert ((rgb > 0) & (rgb < 255)).mean() > 0.9


def test_colorizer_keeps_leading_shape_and_clips_outliers():
    x = clustered_features()
    colorizer = PcaColorizer().fit(x)
    grid = colorizer.transform(x[:384].reshape(2, 12, 16, 32))
    assert grid.shape == (2, 12, 16, 3)
    far = x[:5] * 100.0  # far outside the fitted range: clipped to 0 / 255, never wrapped around
    comp = colorizer.components(far)
    out = colorizer.transform(far)
    assert np.all(out[comp > 1] == 255) and np.all(out[comp < 0] == 0)


def test_fitted_colours_do_not_depend_on_the_other_patches_of_a_frame():
    """The colour-stable part: one fit, then the same patch gets the same colour in any frame."""
    x = clustered_features()
    shared = x[:50]
    frame_a = np.concatenate([shared, x[50:100]])
    frame_b = np.concatenate([shared, clustered_features(seed=9)[:50]])
    colorizer = PcaColorizer().fit(x)
    np.testing.assert_array_equal(colorizer.transform(frame_a)[:50], colorizer.transform(frame_b)[:50])
    # fitting each frame on its own (pca_rgb) does not have that property
    per_a = pca_rgb(frame_a.reshape(10, 10, 32))[:5].reshape(-1, 3)
    per_b = pca_rgb(frame_b.reshape(10, 10, 32))[:5].reshape(-1, 3)
    assert np.abs(per_a.astype(int) - per_b.astype(int)).mean() > 10


def test_background_threshold_blacks_out_the_background_whatever_the_component_sign():
    feats, mask = object_on_background()
    for sign in (1.0, -1.0):  # a PCA component's sign is arbitrary: the result must not be
        rgb = pca_rgb(sign * feats, background_threshold=0.5)
        black = rgb.sum(axis=-1) == 0
        assert black[~mask].mean() > 0.95
        assert (~black[mask]).mean() > 0.9
    plain = pca_rgb(feats)
    assert (plain.sum(axis=-1) == 0).mean() < 0.05


def test_colorizer_checks_its_input():
    with pytest.raises(RuntimeError, match="before fit"):
        PcaColorizer().transform(np.zeros((3, 8), np.float32))
    colorizer = PcaColorizer().fit(clustered_features())
    with pytest.raises(ValueError, match=r"\(\.\.\., 32\)"):
        colorizer.transform(np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match="N×D"):
        PcaColorizer().fit(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        PcaColorizer().fit(np.full((10, 4), np.nan, np.float32))
    with pytest.raises(InvalidArgumentError, match="0..1"):
        PcaColorizer(background_threshold=2.0)
