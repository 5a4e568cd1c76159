"""Pictures of one image: PCA maps, [CLS] similarity, layer maps, drawing helpers, figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import pattern_image
from core.errors import InvalidArgumentError
from core.visual.drawing import heatmap, label, letterbox, overlay, upscale_nearest
from core.visual.figures import composite_figure, save_image_maps
from core.visual.maps import cls_similarity, image_maps, layer_grids, layer_maps
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


# -- PCA colours ----------------------------------------------------------------------------------
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


# -- similarity and drawing -----------------------------------------------------------------------
def test_cls_similarity_is_the_cosine_in_minus_one_to_one():
    rng = np.random.default_rng(1)
    cls = rng.normal(size=16).astype(np.float32)
    patches = rng.normal(size=(4, 5, 16)).astype(np.float32)
    patches[0, 0] = 3 * cls
    patches[0, 1] = -0.5 * cls
    sim = cls_similarity(patches, cls)
    assert sim.shape == (4, 5) and sim.dtype == np.float32
    assert sim.min() >= -1 and sim.max() <= 1
    assert sim[0, 0] == pytest.approx(1.0, abs=1e-6) and sim[0, 1] == pytest.approx(-1.0, abs=1e-6)
    expected = patches[2, 3] @ cls / np.linalg.norm(patches[2, 3]) / np.linalg.norm(cls)
    assert sim[2, 3] == pytest.approx(expected, abs=1e-5)


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


# -- with the model -------------------------------------------------------------------------------
def test_image_maps_in_crop_mode(extractor):
    img = pattern_image(0, (240, 320))
    maps = image_maps(extractor, img)
    assert maps.mode == "crop" and maps.grid == (16, 16)
    for pic in (maps.image, maps.pca, maps.similarity_rgb, maps.overlay):
        assert pic.shape == (224, 224, 3) and pic.dtype == np.uint8
    assert maps.pca_grid.shape == (16, 16, 3)
    np.testing.assert_array_equal(maps.pca[::14, ::14], maps.pca_grid)
    assert maps.pca_grid.min() == 0 and maps.pca_grid.max() == 255
    assert maps.similarity.shape == (16, 16) and maps.similarity.dtype == np.float32
    assert -1 <= maps.similarity.min() < maps.similarity.max() <= 1
    assert maps.similarity_range == (
        pytest.approx(maps.similarity.min()),
        pytest.approx(maps.similarity.max()),
    )
    # the image is the model-input view: the centre crop of the 256-px resize
    import cv2

    resized = cv2.resize(img, (341, 256), interpolation=cv2.INTER_AREA)
    crop = resized[16:240, 58:282]
    assert np.abs(crop.astype(int) - maps.image.astype(int)).mean() < 4


def test_image_maps_in_full_frame_mode_keep_the_whole_image(extractor):
    img = pattern_image(1, (360, 640))
    maps = image_maps(extractor, img, mode="full", short_side=448)
    assert maps.mode == "full" and maps.grid == (32, 57)
    assert maps.image.shape == (448, 798, 3) and maps.pca.shape == (448, 798, 3)
    # nothing cropped away: the view is the whole frame, resized
    import cv2

    small = cv2.resize(img, (798, 448), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - maps.image.astype(int)).mean() < 4
    with pytest.raises(InvalidArgumentError, match="mode"):
        image_maps(extractor, img, mode="zoom")
    with pytest.raises(InvalidArgumentError, match="patch size"):
        image_maps(extractor, img, mode="full", short_side=8)
    with pytest.raises(ValueError, match="uint8"):
        image_maps(extractor, img.astype(np.float32))


def test_background_suppression_on_an_object_image(extractor):
    img = np.full((224, 224, 3), 128, np.uint8)
    img[70:154, 70:154] = pattern_image(5, (84, 84))  # patches 5..10 in full mode at 224
    maps = image_maps(extractor, img, mode="full", short_side=224, suppress_background=True)
    black = maps.pca_grid.sum(axis=-1) == 0
    inside = np.zeros((16, 16), bool)
    inside[5:11, 5:11] = True
    ring = np.ones((16, 16), bool)
    ring[4:12, 4:12] = False
    assert black[ring].all()
    assert (~black[inside]).mean() > 0.5


def test_layer_maps_share_the_final_layer_colours(extractor):
    img = pattern_image(2, (240, 320))
    maps = layer_maps(extractor, img)
    assert len(maps) == extractor.num_layers == 3
    for m in maps:
        assert m.shape == (16, 16, 3) and m.dtype == np.uint8
    # the last map is the final layer's output in the PCA fitted on it
    final = image_maps(extractor, img).pca_grid
    assert np.abs(maps[-1].astype(int) - final.astype(int)).max() <= 1
    assert not np.array_equal(maps[0], maps[-1])
    view, grids = layer_grids(extractor, img, mode="full", short_side=224)
    assert view.shape == (224, 294, 3) and grids[0].shape == (16, 21, 3)


def test_composite_figure_and_saved_pictures(extractor, tmp_path):
    import matplotlib

    maps = image_maps(extractor, pattern_image(3, (240, 320)))
    fig = composite_figure(maps, title="poster")
    assert fig.ndim == 3 and fig.shape[2] == 3 and fig.dtype == np.uint8
    assert fig.shape[1] > 2.5 * fig.shape[0]  # three panels side by side
    # the colour bar: the colour map's top colour appears in the right-most part of the figure
    top = np.rint(np.array(matplotlib.colormaps["viridis"](1.0)[:3]) * 255).astype(int)
    right = fig[:, int(fig.shape[1] * 0.9) :].reshape(-1, 3).astype(int)
    assert (np.abs(right - top).sum(axis=1) < 12).sum() > 20
    paths = save_image_maps(maps, tmp_path / "out", "poster")
    assert set(paths) == {"pca", "similarity", "overlay", "composite"}
    for name, path in paths.items():
        assert path.name == f"poster_{name}.png" and path.parent == tmp_path / "out"
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
    with Image.open(paths["pca"]) as im:
        np.testing.assert_array_equal(np.asarray(im), maps.pca)
    with pytest.raises(InvalidArgumentError, match="stem"):
        save_image_maps(maps, tmp_path, "a/b")
