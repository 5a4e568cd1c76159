"""core.matching.tables: a run as pandas DataFrames, agreeing with the JSON export."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import TEST_THRESHOLD
from core.matching.export import run_to_dict
from core.matching.indexing import index_images
from core.matching.params import MatchParams
from core.matching.pipeline import match_video
from core.matching.runs import load_run
from core.matching.sampling import Sampling
from core.matching.tables import (
    FRAME_COLUMNS,
    MATCH_COLUMNS,
    SEGMENT_COLUMNS,
    frames_table,
    matches_table,
    segments_table,
)
from db import FrameResults


@pytest.fixture
def view(index, extractor, image_folder, shots_video):
    """Two images only and top-3: every frame's third match is empty (-1); auto sampling
    leaves inherited frames."""
    index_images(index, "two", image_folder.paths[:2], extractor)
    s = match_video(
        index,
        shots_video.path,
        "two",
        extractor,
        sampling=Sampling.auto(),
        params=MatchParams(threshold=TEST_THRESHOLD, top_k=3),
    )
    return load_run(index, s.run_id)


def test_tables_agree_with_the_json_export(view):
    doc = run_to_dict(view)
    frames = frames_table(view)
    assert tuple(frames.columns) == FRAME_COLUMNS and len(frames) == len(doc["frames"]) == 40
    for row, f in zip(frames.itertuples(), doc["frames"], strict=True):
        assert (row.frame_index, row.matched, row.inherited, row.source_frame) == (
            f["frame_index"],
            f["matched"],
            f["inherited"],
            f["source_frame"],
        )
        assert row.image == f["matches"][0]["image"] and row.score == pytest.approx(f["matches"][0]["score"])
    assert frames["inherited"].any() and frames["matched"].any() and not frames["matched"].all()

    matches = matches_table(view)
    assert tuple(matches.columns) == MATCH_COLUMNS
    assert (
        len(matches) == sum(len(f["matches"]) for f in doc["frames"]) == 40 * 2
    )  # the empty third rank has no row
    first = matches[matches.frame_index == 0]
    assert first["rank"].tolist() == [1, 2] and first["score"].is_monotonic_decreasing
    assert first["path"].tolist() == [m["path"] for m in doc["frames"][0]["matches"]]

    segments = segments_table(view)
    assert tuple(segments.columns) == SEGMENT_COLUMNS
    assert segments[["image", "start_frame", "end_frame"]].to_dict("records") == [
        {k: s[k] for k in ("image", "start_frame", "end_frame")} for s in doc["segments"]
    ]
    assert np.allclose(segments["duration_s"], segments["end_s"] - segments["start_s"])


def test_tables_follow_the_views_threshold(view):
    strict = view.relabel(threshold=0.99999)
    assert frames_table(strict)["matched"].sum() == strict.matched().sum() < view.matched().sum()
    assert len(segments_table(strict)) == len(strict.segments)


def test_an_empty_run_gives_empty_tables_with_their_columns(view):
    res = view.results
    empty = FrameResults(
        res.frame_index[:0], res.time_s[:0], res.source_frame[:0], res.image_ids[:0], res.scores[:0]
    )
    blank = replace(view, results=empty, segments=())
    for table, columns in (
        (frames_table, FRAME_COLUMNS),
        (matches_table, MATCH_COLUMNS),
        (segments_table, SEGMENT_COLUMNS),
    ):
        frame = table(blank)
        assert frame.empty and tuple(frame.columns) == columns
