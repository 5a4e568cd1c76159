"""core/visual/explain.py: where a frame matched (heat map, boxes, the three-panel figure)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import TEST_THRESHOLD, pattern_image, write_video
from core.errors import InvalidArgumentError
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.regions import RegionSettings
from core.matching.sampling import Sampling
from core.visual.colours import image_rgb
from core.visual.explain import (
    draw_outline,
    explain_frame,
    explanation_figure,
    overlay_frame,
    save_explanation,
)

BOX = (150, 40, 292, 120)  # where the picture is in the 426x240 frames


@pytest.fixture
def region_run(indexed, extractor, image_folder, tmp_path):
    import cv2

    frame = pattern_image(900, (240, 426))
    x0, y0, x1, y1 = BOX
    frame[y0:y1, x0:x1] = cv2.resize(image_folder.arrays[1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    video = write_video(tmp_path / "inset.mp4", [frame] * 3, fps=10)
    summary = match_video(
        indexed,
        video,
        "shots",
        extractor,
        sampling=Sampling.every(),
        params=MatchParams(threshold=TEST_THRESHOLD),
        regions=RegionSettings(short_side=224),
    )
    return summary.view


def test_explain_a_region_match(region_run, extractor, indexed, tmp_path):
    e = explain_frame(extractor, region_run, 1, indexed.get_thumbnails)
    assert e.image_name == "beta.png" and e.matched and e.score >= TEST_THRESHOLD
    assert e.box is not None  # the stored region, since the frame's best match is the region's image
    r, c = np.unravel_index(np.argmax(e.heat), e.heat.shape)
    rows, cols = e.heat.shape
    assert BOX[0] <= (c + 0.5) * 426 / cols <= BOX[2] and BOX[1] <= (r + 0.5) * 240 / rows <= BOX[3]
    marked = overlay_frame(e, heat=False)
    colour = np.array(image_rgb(e.image_id))
    x0, y0 = int(round(e.box[0])), int(round(e.box[1]))
    assert np.abs(marked[y0 + 5, x0].astype(int) - colour).max() < 40  # the region box's left edge
    figure = explanation_figure(e, panel_height=120)
    assert figure.shape == (120, 3 * round(120 * 426 / 240), 3)
    out = save_explanation(e, tmp_path / "sub" / "why.png")
    assert Image.open(out).size == (3 * round(360 * 426 / 240), 360)


def test_explain_against_another_image_and_refusals(region_run, extractor, indexed):
    other = next(i for i in region_run.image_paths if region_run.image_name(i) != "beta.png")
    e = explain_frame(extractor, region_run, 0, indexed.get_thumbnails, image_id=other)
    assert e.image_id == other and not e.matched and e.box is None
    with pytest.raises(InvalidArgumentError, match="no readable thumbnail"):
        explain_frame(extractor, region_run, 0, indexed.get_thumbnails, image_id=10_000)


def test_explaining_another_image_gives_its_best_score_of_the_frame(region_run, extractor, indexed):
    """An image that is a frame's region but not its best match: its score is the region's where
    that beats its whole-frame score."""
    from dataclasses import replace

    res = region_run.results
    other, whole, best = int(res.image_ids[0, 1]), float(res.scores[0, 1]), float(res.scores[0, 0])
    between = (whole + best) / 2  # beats the image's whole-frame score, not the frame's best
    n = len(region_run.regions)
    regions = replace(region_run.regions, image_ids=np.full(n, other), scores=np.full(n, between, np.float32))
    view = replace(region_run, regions=regions)
    assert not view.region_wins[0] and view.best_image[0] == res.image_ids[0, 0]
    e = explain_frame(extractor, view, 0, indexed.get_thumbnails, image_id=other)
    assert e.score == pytest.approx(between) and e.box is not None and not e.matched


def test_draw_outline_marks_the_top_of_the_map():
    heat = np.zeros((4, 4), np.float32)
    heat[1:3, 1:3] = 1.0
    out = draw_outline(np.zeros((40, 40, 3), np.uint8), heat, (255, 0, 0))
    red = (out[..., 0] > 200) & (out[..., 1] < 50)
    assert red[10:30, 10].any() and not red[0:5, 0:5].any() and not red[20, 20]
