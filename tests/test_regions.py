"""core/matching/regions.py: region mode, on frames with a collection picture in part of them.

The pictures are the ``image_folder`` fixture's; a frame is another picture with one of them
pasted at a third of its width. The tiny model finds it (early tokens locate, the crop's
embedding confirms); the whole frame's embedding does not.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import TEST_THRESHOLD, pattern_image, write_video
from core.errors import InvalidArgumentError
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.regions import (
    DEFAULT_REGIONS,
    RegionSearch,
    RegionSettings,
    _best_places,
    _distinct,
    best_matches,
    frame_bests,
    region_rows,
    scored_images,
    view_crop,
)
from core.matching.runs import load_run, rematch
from core.matching.sampling import Sampling
from db import FrameRegions, FrameResults

H, W = 240, 426
FAST = RegionSettings(short_side=224)  # the pipeline tests check what is stored, not the search
INSET = (150, 40, 292, 120)  # x0, y0, x1, y1: a third of the width, away from the centre


def inset_frame(picture: np.ndarray, seed: int = 900, box=INSET) -> np.ndarray:
    frame = pattern_image(seed, (H, W))
    x0, y0, x1, y1 = box
    frame[y0:y1, x0:x1] = cv2.resize(picture, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return frame


def iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def central_square(box) -> tuple[float, float, float, float]:
    """What the model sees of the inserted picture when it is indexed: its centre crop."""
    x0, y0, x1, y1 = box
    side = (y1 - y0) * 224 / 256
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


@pytest.fixture
def search(indexed, extractor):
    coll = indexed.get_collection("shots")
    return RegionSearch(extractor, indexed.load_embeddings(coll.id), indexed.get_thumbnails)


def _results(frames, ids, scores) -> FrameResults:
    n = len(frames)
    return FrameResults(
        np.asarray(frames, np.int64),
        np.arange(n, dtype=np.float64),
        np.asarray(frames, np.int64),
        np.asarray(ids, np.int64).reshape(n, -1),
        np.asarray(scores, np.float32).reshape(n, -1),
    )


def test_a_region_counts_where_it_beats_the_whole_frame():
    res = _results([0, 1, 2, 3], [7, 7, -1, 8], [0.9, 0.5, np.nan, 0.6])
    regions = FrameRegions(
        np.array([1, 2, 3]),
        np.array([5, 6, 5]),
        np.array([0.8, 0.7, 0.55], np.float32),
        np.zeros((3, 4), np.float32),
    )
    image, score = best_matches(res, regions)
    # frame 0: no region; 1: region 0.8 > 0.5; 2: no whole-frame match; 3: 0.55 < 0.6 keeps the frame's
    assert image.tolist() == [7, 5, 6, 8]
    np.testing.assert_allclose(score, [0.9, 0.8, 0.7, 0.6], rtol=1e-6)
    ids, _, boxes = region_rows(res, regions)
    assert ids.tolist() == [-1, 5, 6, 5] and np.isnan(boxes[0]).all()
    # without regions: the whole frame's best, unchanged
    assert best_matches(res)[0].tolist() == [7, 7, -1, 8]
    # every image a frame scored: its top-k, and its region as one more column
    view_ids, view_scores = scored_images(res, regions)
    assert view_ids.tolist() == [[7, -1], [7, 5], [-1, 6], [8, 5]]
    np.testing.assert_allclose(view_scores[:, 1], [np.nan, 0.8, 0.7, 0.55], rtol=1e-6)
    assert scored_images(res)[0].tolist() == [[7], [7], [-1], [8]]
    # where the region is the frame's best match
    assert frame_bests(res, regions).region_wins.tolist() == [False, True, True, False]
    assert frame_bests(res).region_wins.tolist() == [False] * 4


def test_the_region_search_finds_a_picture_in_part_of_the_frame(search, image_folder, indexed):
    picture = image_folder.arrays[1]
    frame = inset_frame(picture)
    vectors = np.zeros((1, search.fx.hidden_size), np.float32)
    ids, scores, boxes = search.search(search.prepare([frame]), vectors)
    assert indexed.get_image(int(ids[0])).name == "beta.png"
    assert scores[0] >= TEST_THRESHOLD
    assert iou(boxes[0], central_square(INSET)) > 0.5
    # the whole frame's embedding does not see it
    coll = indexed.get_collection("shots")
    whole = search.fx.cls_embeddings([frame])[0]
    whole = whole / np.linalg.norm(whole)
    assert (indexed.load_embeddings(coll.id).vectors @ whole).max() < TEST_THRESHOLD


def test_the_fit_map_peaks_on_the_picture(search, image_folder, indexed):
    frame = inset_frame(image_folder.arrays[1])
    image_id = next(i for i, r in indexed.get_images(search.vectors.keys).items() if r.name == "beta.png")
    heat, window = search.fit_map(frame, image_id)
    rows, cols = heat.shape
    r, c = np.unravel_index(np.argmax(heat), heat.shape)
    x, y = (c + 0.5) * W / cols, (r + 0.5) * H / rows
    assert INSET[0] <= x <= INSET[2] and INSET[1] <= y <= INSET[3]
    assert iou(window, central_square(INSET)) > 0.5
    with pytest.raises(InvalidArgumentError, match="no readable thumbnail"):
        search.fit_map(frame, 10_000)


def test_view_crop_is_what_the_model_sees_of_an_image(extractor):
    rgb = np.zeros((100, 200, 3), np.uint8)
    crop = view_crop(rgb, extractor.preprocessing)  # resize short side 256, centre crop 224
    assert crop.shape[:2] == (88, 88)


def test_settings_are_checked_and_stored():
    assert RegionSettings.from_dict({**DEFAULT_REGIONS.to_dict(), "unknown": 1}) == DEFAULT_REGIONS
    assert RegionSettings().blocks(24) == 3 and RegionSettings().blocks(3) == 1
    assert RegionSettings(min_patches=3, max_patches_share=0.5).sizes(12, 20) == [3, 4, 5, 6]
    assert DEFAULT_REGIONS.sizes(24, 42) == [3, 4, 5, 6, 7, 9, 11, 14]
    with pytest.raises(InvalidArgumentError, match="region settings"):
        RegionSettings(depth=0)
    with pytest.raises(InvalidArgumentError, match="region settings"):
        RegionSettings(max_candidates=0)


@pytest.fixture
def inset_video(tmp_path, image_folder):
    """10 fps: 8 frames with beta.png at a third of the width (moving slowly), 6 without any."""
    frames = []
    for j in range(8):
        x0 = INSET[0] + 2 * j
        frames.append(inset_frame(image_folder.arrays[1], box=(x0, INSET[1], x0 + 142, INSET[3])))
    frames += [pattern_image(900, (H, W))] * 6
    return write_video(tmp_path / "inset.mp4", frames, fps=10)


def test_a_run_with_regions_stores_them_and_relabels_without_the_model(
    indexed, extractor, inset_video, monkeypatch
):
    params = MatchParams(threshold=TEST_THRESHOLD, top_k=2)
    plain = match_video(indexed, inset_video, "shots", extractor, sampling=Sampling.every(), params=params)
    assert plain.matched_frames == 0 and not plain.view.has_regions  # the global mode misses it
    summary = match_video(
        indexed, inset_video, "shots", extractor, sampling=Sampling.every(), params=params, regions=FAST
    )
    view = load_run(indexed, summary.run_id)
    assert view.has_regions and view.run.params["regions"] == FAST.to_dict()
    assert len(view.regions) == 14  # every recorded frame has its best region
    names = [view.image_name(i) for i in view.best_image[view.matched()]]
    assert view.matched()[:8].all() and set(names) == {"beta.png"}
    assert [view.image_name(s.image_id) for s in view.segments] == ["beta.png"]
    image_id, score, box = view.region_of(0)
    assert view.image_name(image_id) == "beta.png" and score >= TEST_THRESHOLD
    assert iou(box, central_square(INSET)) > 0.4
    # re-labelling reads the stored regions: no model
    monkeypatch.setattr(type(extractor), "forward", lambda *a, **k: pytest.fail("model called"))
    strict = view.relabel(threshold=0.9999)
    assert strict.matched().sum() < view.matched().sum() and strict.regions is view.regions

    # re-matching against the same collection (no model) keeps the regions: with other options
    # it gives what re-labelling gives
    again = rematch(indexed, summary.run_id, params=params.updated(top_k=1))
    assert again.run.params["regions"] == FAST.to_dict()
    assert again.regions.frame_index.tolist() == view.regions.frame_index.tolist()
    assert again.regions.image_ids.tolist() == view.regions.image_ids.tolist()
    assert np.array_equal(again.regions.boxes, view.regions.boxes)
    assert again.matched().tolist() == view.matched().tolist() and again.matched()[:8].all()
    assert again.best_image.tolist() == view.best_image.tolist()
    stricter = rematch(indexed, summary.run_id, params=params.updated(threshold=0.9999))
    assert stricter.matched().tolist() == strict.matched().tolist()


def test_a_rematch_against_another_collection_says_that_it_has_no_regions(
    indexed, extractor, inset_video, image_folder, caplog
):
    from core.matching.indexing import index_images

    index_images(indexed, "copy", [image_folder.folder], extractor)
    params = MatchParams(threshold=TEST_THRESHOLD, top_k=2)
    summary = match_video(
        indexed, inset_video, "shots", extractor, sampling=Sampling.every(), params=params, regions=FAST
    )
    assert summary.view.matched().any()
    with caplog.at_level("WARNING", logger="core.matching.runs"):
        other = rematch(indexed, summary.run_id, collection="copy")
    # regions found against one collection say nothing about another: that needs the model
    assert "regions" not in other.run.params and len(other.regions) == 0
    assert not other.matched().any()  # the whole frames never matched the inset picture
    assert "--collection copy --regions" in caplog.text


def test_a_rematch_after_the_collection_changed_says_its_regions_predate_it(
    indexed, extractor, inset_video, tmp_path, caplog
):
    from PIL import Image

    from conftest import pattern_image
    from core.matching.indexing import index_images

    params = MatchParams(threshold=TEST_THRESHOLD, top_k=2)
    summary = match_video(
        indexed, inset_video, "shots", extractor, sampling=Sampling.every_nth(4), params=params, regions=FAST
    )
    with caplog.at_level("WARNING", logger="core.matching.runs"):
        rematch(indexed, summary.run_id)
    assert "before collection" not in caplog.text  # unchanged: its regions are current
    Image.fromarray(pattern_image(77)).save(tmp_path / "new.png")
    index_images(indexed, "shots", [tmp_path / "new.png"], extractor)
    with caplog.at_level("WARNING", logger="core.matching.runs"):
        again = rematch(indexed, summary.run_id)
    assert again.run.params["regions"] == FAST.to_dict() and len(again.regions) > 0
    assert (
        "before collection 'shots' changed" in caplog.text and "--collection shots --regions" in caplog.text
    )


def test_inherited_frames_take_their_sources_region(indexed, extractor, inset_video):
    summary = match_video(
        indexed,
        inset_video,
        "shots",
        extractor,
        sampling=Sampling.every_nth(4),
        params=MatchParams(threshold=TEST_THRESHOLD),
        regions=FAST,
    )
    view = summary.view
    assert view.results.frame_index.tolist() == [0, 4, 8, 12]
    assert len(view.regions) == 4 and view.regions.frame_index.tolist() == [0, 4, 8, 12]


def test_candidates_of_a_large_collection_are_the_frames_best_matches(indexed, extractor, image_folder):
    coll = indexed.get_collection("shots")
    search = RegionSearch(
        extractor, indexed.load_embeddings(coll.id), indexed.get_thumbnails, RegionSettings(max_candidates=2)
    )
    frame = inset_frame(image_folder.arrays[1])
    whole = search.fx.cls_embeddings([frame])
    whole /= np.linalg.norm(whole, axis=1, keepdims=True)
    (cand,) = search._candidates(whole)
    assert len(cand) == 2
    order = np.argsort(-(search.vectors.vectors @ whole[0]))[:2]
    assert sorted(cand.tolist()) == sorted(search.vectors.keys[order].tolist())


def test_an_image_without_thumbnail_is_skipped_with_a_warning(indexed, extractor, image_folder, caplog):
    coll = indexed.get_collection("shots")
    search = RegionSearch(extractor, indexed.load_embeddings(coll.id), lambda ids: {})
    ids, scores, _ = search.search(search.prepare([inset_frame(image_folder.arrays[1])]), np.zeros((1, 48)))
    assert ids.tolist() == [-1] and np.isnan(scores).all()
    assert "no readable thumbnail" in caplog.text


def _one_hot_search(score_rows: list[np.ndarray]) -> tuple:
    """A 4×4 frame whose tokens are one-hot, and size-1 templates whose token is a row of
    scores: template n's score at grid position p is ``score_rows[n][p]`` (no model)."""
    import torch

    unit = torch.eye(16).reshape(16, 4, 4)[None]  # 1×d×R×C, token of position 4r+c = e_(4r+c)
    templates = [{1: torch.tensor(row, dtype=torch.float32).reshape(16, 1, 1)} for row in score_rows]
    return unit, templates


def _background(seed: int, low: float, high: float) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, 16)


PICTURE_AT = 9  # grid position (2, 1): where the picture is


def test_among_many_candidates_the_picture_is_the_template_that_stands_out_where_it_is():
    """Two bland templates score highest all over the background (the highest peak is theirs),
    a third has one sharp peak on the background (it stands out most from its own positions),
    and the picture's template scores only moderately at its place, but there no other template
    comes near it: with many candidates that place is one of the two looked at."""
    picture = _background(1, 0.0, 0.4)
    picture[PICTURE_AT] = 0.6
    bland = [np.full(16, 0.9) for _ in range(2)]
    for row in bland:
        row[PICTURE_AT] = 0.2  # the picture hides the background they match
    sharp = np.full(16, 0.3)
    sharp[3] = 0.6
    others = [_background(10 + i, 0.25, 0.35) for i in range(15)]
    unit, templates = _one_hot_search([picture, *bland, sharp, *others])  # 19 candidates

    places = _best_places(unit, templates, [1], contrast=True)

    assert (1, 2, 1) in places
    assert len(places) == 2 and places[0] != (1, 2, 1)  # the highest peak is a bland one's, elsewhere


def test_among_few_candidates_the_picture_is_the_template_that_stands_out_from_its_positions():
    """With three candidates a z-score across templates says little; the picture's template,
    whose own scores peak at its place, is looked at there."""
    picture = _background(2, 0.0, 0.2)
    picture[PICTURE_AT] = 0.6
    bland = np.full(16, 0.9)
    bland[PICTURE_AT] = 0.2
    similar = _background(3, 0.45, 0.55)
    similar[PICTURE_AT] = 0.55
    unit, templates = _one_hot_search([picture, bland, similar])

    assert (1, 2, 1) in _best_places(unit, templates, [1], contrast=True)
    assert (1, 2, 1) not in _best_places(unit, templates, [1], contrast=False)  # the bland one's peak


def test_places_that_mostly_overlap_are_cut_out_once():
    """Two places covering mostly the same patches would be two crops of one picture: the first
    (the highest peak) is kept. Windows are (size, row, col) in patches."""
    # 3×3 windows one column apart: 6 shared patches of 12 covered, IoU 0.5
    assert _distinct([(3, 0, 0), (3, 0, 1)]) == [(3, 0, 0)]
    # two columns apart: 3 of 15, IoU 0.2; and a window inside a far larger one: 9 of 36, 0.25
    assert _distinct([(3, 0, 0), (3, 0, 2)]) == [(3, 0, 0), (3, 0, 2)]
    assert _distinct([(6, 0, 0), (3, 1, 1)]) == [(6, 0, 0), (3, 1, 1)]
    assert _distinct([(4, 2, 2), (4, 2, 2)]) == [(4, 2, 2)]
    assert _distinct([]) == []


def test_the_template_cache_is_bounded(indexed, extractor, image_folder):
    coll = indexed.get_collection("shots")
    search = RegionSearch(extractor, indexed.load_embeddings(coll.id), indexed.get_thumbnails, FAST)
    search._capacity = 2
    ids = search.vectors.keys.tolist()
    search._ensure_templates(ids[:2], [3])
    search._ensure_templates(ids[2:3], [3])
    assert list(search._templates) == [ids[1], ids[2]]  # the least recently used went


def test_region_mode_runs_on_an_int8_model(tiny_model_dir, indexed, image_folder, tmp_path, monkeypatch):
    """int8 runs final-layer features only; region mode's early tokens come from the float
    model the int8 one was built from, so a region run works at any precision."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from core.model.features import FeatureExtractor

    monkeypatch.setenv("WEBSSL_INT8_CACHE", str(tmp_path / "int8"))
    int8 = FeatureExtractor.load(tiny_model_dir, device="cpu", precision="int8")
    assert int8.precision == "int8"
    coll = indexed.get_collection("shots")
    search = RegionSearch(int8, indexed.load_embeddings(coll.id), indexed.get_thumbnails)
    frame = inset_frame(image_folder.arrays[1])
    ids, scores, boxes = search.search(search.prepare([frame]), np.zeros((1, int8.hidden_size), np.float32))
    assert indexed.get_image(int(ids[0])).name == "beta.png" and scores[0] >= TEST_THRESHOLD
    assert iou(boxes[0], central_square(INSET)) > 0.5


def test_region_mode_on_a_collection_larger_than_its_candidates_says_what_to_expect(
    indexed, extractor, inset_video, caplog
):
    """Region mode looks in each frame for its best images by the whole frame; beyond that many a
    small picture is rarely among them (README: recall 0.02 at a quarter of the width with 1,012
    images). A user who ticks it on a large collection is told, before the run's time is spent."""
    from core.matching.regions import large_collection_note

    assert large_collection_note(64) is None
    note = large_collection_note(5_000)
    assert note is not None and "5,000 images" in note and "64 best" in note
    from core.matching.batch import match_batch

    few = RegionSettings(short_side=224, max_candidates=2)
    params = MatchParams(threshold=TEST_THRESHOLD)
    with caplog.at_level("WARNING"):
        match_batch(indexed, [inset_video, inset_video], "shots", extractor, params=params, regions=few)
    assert caplog.text.count(large_collection_note(4, few)) == 1  # once for the batch
    from core import api

    caplog.clear()
    with caplog.at_level("WARNING"):
        api.match(inset_video, "shots", db=indexed, model=extractor, params=params, regions=few)
    assert caplog.text.count(large_collection_note(4, few)) == 1  # and for a single video
