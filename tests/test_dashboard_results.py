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


def test_segment_rows_and_frame_matches(index, image_folder, shots_video, extractor):
    from conftest import TEST_THRESHOLD
    from core.matching.indexing import index_images
    from core.matching.params import MatchParams
    from core.matching.pipeline import match_video
    from core.matching.runs import load_run
    from core.matching.sampling import Sampling
    from dashboard.results import frame_matches, image_labels, run_label, run_summary, segment_rows

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
    rows = segment_rows(view, index.get_thumbnails([s.image_id for s in view.segments]))
    assert [r["image"] for r in rows] == ["alpha.jpg", "beta.png", "gamma.jpg"]
    assert rows[0]["from"] == "0:00.0" and rows[0]["to"] == "0:01.2"  # the end of frame 11
    assert rows[0]["preview"].startswith("data:image/jpeg;base64,")
    assert list(rows[0])[:6] == ["preview", "image", "from", "to", "peak", "mean"]
    top = frame_matches(view, 0)
    assert [m.rank for m in top] == [1, 2] and top[0].name == "alpha.jpg" and top[0].score > TEST_THRESHOLD
    assert set(image_labels(view).values()) >= {"alpha.jpg", "beta.png", "gamma.jpg"}
    label = run_label(index.get_run(summary.run_id))
    assert label.startswith(f"#{summary.run_id} · shots.mp4 → c · done")
    # runs with other settings are told apart by their label (issue 10)
    matched = int(view.matched().sum())
    assert f"every frame · threshold {TEST_THRESHOLD:.2f} · {matched}/40 matched" in label
    assert "40 frames with results" in run_summary(view) and "every frame" in run_summary(view)
