"""core.visual.figures: the composite figure and the saved PNG files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import pattern_image
from core.errors import InvalidArgumentError
from core.visual.figures import composite_figure, save_image_maps
from core.visual.maps import image_maps


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


@pytest.mark.parametrize("mode", ["crop", "full"])
def test_the_colour_bar_is_as_tall_as_its_heat_map(extractor, mode):
    """The composite's colour bar stuck out past its panel (issue 10)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from core.visual.figures import composite

    maps = image_maps(extractor, pattern_image(3, (240, 480)), mode=mode)
    fig = composite(maps, title="x.png")
    FigureCanvasAgg(fig).draw()
    heat = fig.axes[2].get_window_extent()
    (bar_axes,) = fig.axes[2].child_axes  # the colour bar lives in an inset of the heat map
    bar = bar_axes.get_window_extent()
    assert abs(bar.y0 - heat.y0) < 1 and abs(bar.y1 - heat.y1) < 1
    assert bar.x1 <= fig.bbox.x1  # inside the picture


def test_pr_curve_png_and_png_names(tmp_path):
    from core.visual.figures import check_png, pr_curve_png

    out = pr_curve_png(
        np.array([0.1, 0.6]),
        np.array([1.0, 0.8]),
        np.array([0.9, 0.5]),
        tmp_path / "pr.png",
        calibrated=(0.1, 1.0, 0.9),
    )
    assert Image.open(out).format == "PNG"
    with pytest.raises(InvalidArgumentError, match="ending in .png"):
        check_png(tmp_path / "pr.jpg")
