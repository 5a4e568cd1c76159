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
    from core.visual.colours import image_colour
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
    # without a thumbnail the preview is a square of the image's colour
    bare = segment_rows(view)
    assert bare[0]["preview"].startswith("data:image/svg+xml") and "%231f77b4" not in bare[1]["preview"]
    assert image_colour(view.segments[0].image_id)[1:] in bare[0]["preview"]
    top = frame_matches(view, 0)
    assert [m.rank for m in top] == [1, 2] and top[0].name == "alpha.jpg" and top[0].score > TEST_THRESHOLD
    assert set(image_labels(view).values()) >= {"alpha.jpg", "beta.png", "gamma.jpg"}
    label = run_label(index.get_run(summary.run_id))
    assert label.startswith(f"#{summary.run_id} · shots.mp4 → c · done")
    # runs with other settings are told apart by their label (issue 10)
    matched = int(view.matched().sum())
    assert f"every frame · threshold {TEST_THRESHOLD:.2f} · {matched}/40 matched" in label
    assert "40 frames with results" in run_summary(view) and "every frame" in run_summary(view)


def test_segment_table_sends_each_preview_once(index, image_folder, shots_video, extractor):
    """A styled table sent every cell twice and a preview once per row (1.3 MB for 211 segments)."""
    import dataclasses

    import pandas as pd
    from streamlit import dataframe_util

    from conftest import TEST_THRESHOLD
    from core.matching.indexing import index_images
    from core.matching.pipeline import match_video
    from core.matching.runs import load_run
    from core.matching.sampling import Sampling
    from dashboard.results import segment_rows, segment_table

    index_images(index, "c", [image_folder.folder], extractor)
    summary = match_video(index, shots_video.path, "c", extractor, sampling=Sampling.every())
    view = load_run(index, summary.run_id).relabel(TEST_THRESHOLD, 0.0, 0.0)
    thumbs = index.get_thumbnails([s.image_id for s in view.segments])
    table = segment_table(view, thumbs)
    assert type(table) is pd.DataFrame, "a plain frame: a Styler sends every cell twice"
    assert list(table.columns[:2]) == ["preview", "image"]
    assert table["preview"].dtype == "category"
    assert len(table["preview"].cat.categories) == len({s.image_id for s in view.segments})
    # 150 segments of 3 images: the table's bytes grow with the images, not the rows
    many = dataclasses.replace(view, segments=view.segments * 50)
    plain = dataframe_util.convert_pandas_df_to_arrow_bytes(pd.DataFrame(segment_rows(many, thumbs)))
    sent = dataframe_util.convert_pandas_df_to_arrow_bytes(segment_table(many, thumbs))
    preview_bytes = sum(len(j) for j in thumbs.values())
    assert len(plain) > 50 * preview_bytes  # once per row
    assert len(sent) < 3 * preview_bytes + len(plain) // 10  # once per image
