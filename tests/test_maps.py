"""core.visual.maps: [CLS] similarity, an image's PCA and similarity maps, layer maps."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import pattern_image
from core.errors import InvalidArgumentError
from core.visual.maps import cls_similarity, image_maps, layer_grids, layer_maps


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
