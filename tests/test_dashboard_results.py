"""dashboard.results: a run as tables and labels; the sampling of the form."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidArgumentError


def test_row_of_frame_picks_the_nearest_recorded_frame():
    from dashboard.results import row_of_frame

    fi = np.array([0, 5, 10, 20])
    assert [row_of_frame(fi, f) for f in (-3, 0, 2, 3, 7, 14, 16, 99)] == [0, 0, 0, 1, 1, 2, 3, 3]
    with pytest.raises(ValueError):
        row_of_frame(np.array([], np.int64), 3)


def test_make_sampling():
    from dashboard.results import make_sampling

    assert make_sampling("every").mode == "every"
    assert make_sampling("stride", stride=3).stride == 3
    assert make_sampling("fps", fps=2).fps == 2.0
    assert make_sampling("auto", max_interval_s=2).max_interval_s == 2.0
    with pytest.raises(InvalidArgumentError):
        make_sampling("stride", stride=0)
    with pytest.raises(ValueError):
        make_sampling("magic")


@pytest.fixture
def top2_view(index, image_folder, shots_video, extractor):
    """The image folder as collection "c", the shots video matched every frame, top-2."""
    from conftest import TEST_THRESHOLD
    from core.matching.indexing import index_images
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.runs import load_run
    from core.matching.sampling import Sampling

    index_images(index, "c", [image_folder.folder], extractor)
    summary = match_video(
        index,
        shots_video.path,
        "c",
        extractor,
        sampling=Sampling.every(),
        params=MatchParams(threshold=TEST_THRESHOLD, top_k=2),
    )
    view = load_run(index, summary.run_id)
    return view


def test_segment_list_and_frame_matches(index, top2_view):
    import dataclasses

    from conftest import TEST_THRESHOLD
    from core.visual.colours import image_colour
    from dashboard.results import frame_matches, image_labels, run_label, run_summary, segment_list_spec

    view = top2_view
    thumbs = index.get_thumbnails([s.image_id for s in view.segments])
    inside = view.segments[1].start_frame + 1
    spec = segment_list_spec(view, thumbs, inside)
    assert len(spec) == 3 and [spec.images[i][1] for i in spec.image] == [
        "alpha.jpg",
        "beta.png",
        "gamma.jpg",
    ]
    data = spec.to_data()
    assert data["start_text"][0] == "0:00.0" and data["end_text"][0] == "0:01.2"  # the end of frame 11
    assert spec.start_frame == tuple(s.start_frame for s in view.segments)
    assert spec.peak[0] == round(view.segments[0].peak_score, 4)
    assert spec.images[0][3].startswith("data:image/jpeg;base64,")
    assert spec.images[0][2] == image_colour(view.segments[0].image_id)
    assert spec.current == 1, "the segment that holds the inspected frame is marked"
    assert segment_list_spec(view, thumbs, view.segments[2].end_frame).current == 2  # its last frame
    assert segment_list_spec(view, thumbs, view.segments[2].end_frame + 1).current is None
    # segments of two images overlap where a gap was joined: the one that starts last is marked
    a, b = view.segments[0], view.segments[1]
    joined = dataclasses.replace(a, end_frame=b.end_frame + 5, end_s=b.end_s + 0.5)
    overlapping = dataclasses.replace(view, segments=(joined, b))
    assert segment_list_spec(overlapping, thumbs, b.start_frame).current == 1
    assert segment_list_spec(overlapping, thumbs, b.end_frame + 2).current == 0
    assert data["image"] == [0, 1, 2] and data["current"] == 1 and len(data["images"]) == 3
    # without a thumbnail the preview is a square of the image's colour
    bare = segment_list_spec(view)
    assert bare.current is None
    assert bare.images[0][3].startswith("data:image/svg+xml")
    assert image_colour(view.segments[0].image_id)[1:] in bare.images[0][3]
    assert image_colour(view.segments[1].image_id)[1:] not in bare.images[0][3]
    top = frame_matches(view, 0)
    assert [m.rank for m in top] == [1, 2] and top[0].name == "alpha.jpg" and top[0].score > TEST_THRESHOLD
    assert set(image_labels(view).values()) >= {"alpha.jpg", "beta.png", "gamma.jpg"}
    label = run_label(index.get_run(view.run.id))
    assert label.startswith(f"#{view.run.id} · shots.mp4 → c · done")
    # runs with other settings are told apart by their label (issue 10)
    matched = int(view.matched().sum())
    assert f"every frame · threshold {TEST_THRESHOLD:.2f} · {matched}/40 matched" in label
    assert "40 frames with results" in run_summary(view) and "every frame" in run_summary(view)


def test_the_inspector_lists_a_frames_region_and_marks_its_best_match(top2_view):
    """A frame matched by its region: the list starts with the region's image, marked as the
    match, not the whole frame's first (below the threshold)."""
    import dataclasses

    from dashboard.results import frame_matches
    from db import FrameRegions

    view = top2_view
    res = view.results
    gamma = next(i for i, p in view.image_paths.items() if p.endswith("gamma.jpg"))
    assert res.image_ids[0, 0] != gamma
    regions = FrameRegions(
        res.frame_index[:2].copy(),
        np.array([gamma, gamma]),
        np.array([1.0, -1.0], np.float32),  # frame 0: the region wins; frame 1: the whole frame
        np.zeros((2, 4), np.float32),
    )
    with_regions = dataclasses.replace(view, regions=regions)
    top = frame_matches(with_regions, 0)
    assert [(m.kind, m.rank) for m in top] == [("region", 1), ("frame", 1), ("frame", 2)]
    assert top[0].name == "gamma.jpg" and top[0].score == 1.0
    assert [m.best for m in top] == [True, False, False]
    second = frame_matches(with_regions, 1)
    assert [(m.kind, m.best) for m in second] == [("region", False), ("frame", True), ("frame", False)]
    assert [(m.kind, m.best) for m in frame_matches(with_regions, 2)] == [("frame", True), ("frame", False)]
    assert [m.best for m in frame_matches(view, 0)] == [True, False]


def test_segment_list_sends_each_preview_once(index, image_folder, shots_video, extractor):
    """A styled table sent every cell twice and a preview once per row (1.3 MB for 211 segments):
    the list sends each image's preview once, however many segments it has."""
    import dataclasses
    import json

    from conftest import TEST_THRESHOLD
    from core.matching.indexing import index_images
    from core.matching.pipeline import match_video
    from core.matching.runs import load_run
    from core.matching.sampling import Sampling
    from dashboard.results import segment_list_spec

    index_images(index, "c", [image_folder.folder], extractor)
    summary = match_video(index, shots_video.path, "c", extractor, sampling=Sampling.every())
    view = load_run(index, summary.run_id).relabel(TEST_THRESHOLD, 0.0, 0.0)
    thumbs = index.get_thumbnails([s.image_id for s in view.segments])
    # 150 segments of 3 images: what is sent grows with the images, not the rows
    many = dataclasses.replace(view, segments=view.segments * 50)
    spec = segment_list_spec(many, thumbs)
    assert len(spec) == 150 and len(spec.images) == len({s.image_id for s in view.segments}) == 3
    sent = len(json.dumps(spec.to_data()))
    preview_bytes = sum(len(j) for j in thumbs.values())
    assert sent < 1.5 * preview_bytes + 150 * 120  # base64 of each preview once, ~100 bytes a row
