"""dashboard.charts: the Plotly figures of a run."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from core.matching.params import matched_mask
from core.visual.colours import image_colour
from dashboard import charts


def _run_arrays(n=50):
    t = np.arange(n) / 10
    fi = np.arange(n)
    score = np.where(np.arange(n) < n // 2, 0.98, 0.5).astype(np.float32)
    score[3] = np.nan
    img = np.where(np.arange(n) < n // 2, 7, 9)
    return t, fi, score, img


def test_timeline_colours_matched_images_and_draws_the_threshold():
    t, fi, score, img = _run_arrays()
    fig = charts.timeline_figure(
        t, fi, score, img, matched_mask(score, 0.9), {7: "a.jpg", 9: "b.jpg"}, 0.9, selected_time=1.0
    )
    names = [tr.name for tr in fig.data]
    assert names == ["best score", "below threshold", "a.jpg"]
    assert all(isinstance(tr, go.Scatter) for tr in fig.data)
    matched = fig.data[2]
    assert len(matched.x) == 24  # one NaN frame has no point
    assert list(matched.customdata[0]) == [0, "a.jpg"]
    shapes = fig.layout.shapes
    assert any(s.y0 == 0.9 and s.y1 == 0.9 for s in shapes)  # threshold line
    assert any(s.x0 == 1.0 for s in shapes)  # selected frame


def test_timeline_uses_webgl_for_long_videos_and_groups_many_images():
    n = charts.WEBGL_MIN_POINTS + 10
    t = np.arange(n) / 25
    img = np.arange(n) % 20
    score = np.full(n, 0.95)
    fig = charts.timeline_figure(t, np.arange(n), score, img, matched_mask(score, 0.9), {}, 0.9, max_images=5)
    assert all(isinstance(tr, go.Scattergl) for tr in fig.data)
    assert fig.data[-1].name == "15 other images"
    assert len(fig.data) == 1 + 5 + 1  # line, 5 images, the rest


def test_timeline_checks_lengths():
    with pytest.raises(ValueError):
        charts.timeline_figure(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3), np.ones(3, bool), {}, 0.5)


def test_duplicate_file_names_get_ids():
    labels = charts.unique_labels(np.array([1, 2, 3, -1]), {1: "a.jpg", 2: "a.jpg", 3: "b.jpg"})
    assert labels == {1: "a.jpg (#1)", 2: "a.jpg (#2)", 3: "b.jpg"}


def test_score_matrix_and_heatmap():
    ids = np.array([[1, 2], [2, 1], [3, -1]])
    scores = np.array([[0.9, 0.5], [0.8, 0.4], [0.3, np.nan]], np.float32)
    top, matrix = charts.score_matrix(ids, scores, top_n=2)
    assert top.tolist() == [1, 2]
    np.testing.assert_allclose(matrix, [[0.9, 0.4, np.nan], [0.5, 0.8, np.nan]], rtol=1e-6)
    fig = charts.heatmap_figure(np.array([0.0, 0.1, 0.2]), ids, scores, {1: "one", 2: "two"}, top_n=2)
    assert list(fig.data[0].y) == ["one", "two"]
    assert [image_colour(1) in t for t in fig.layout.yaxis.ticktext] == [True, False]
    empty_top, empty = charts.score_matrix(np.full((4, 2), -1), np.full((4, 2), np.nan))
    assert empty_top.size == 0 and empty.shape == (0, 4)


def test_heatmap_bins_long_runs_keeping_the_peak():
    n = 10_000
    ids = np.ones((n, 1), np.int64)
    scores = np.full((n, 1), 0.1, np.float32)
    scores[5000] = 0.99
    fig = charts.heatmap_figure(np.arange(n) / 30, ids, scores, {1: "x"}, max_columns=100)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (1, 100) and np.isclose(np.nanmax(z), 0.99)


def test_histogram_splits_at_the_threshold():
    scores = np.array([0.1, 0.2, 0.95, np.nan])
    fig = charts.histogram_figure(scores, matched_mask(scores, 0.5), 0.5)
    below, above = fig.data
    assert list(below.x) == [0.1, 0.2] and list(above.x) == [0.95]
    assert len(charts.histogram_figure(np.array([np.nan]), np.zeros(1, bool), 0.5).data[0].x) == 0


def test_selected_frame_reads_plotly_events():
    assert charts.selected_frame(None) is None
    assert charts.selected_frame({"selection": {"points": []}}) is None
    event = {"selection": {"points": [{"x": 1.2, "customdata": [12, "a.jpg"]}]}}
    assert charts.selected_frame(event) == 12
    assert charts.selected_frame({"selection": {"points": [{"x": 1}, {"customdata": ["7", "b"]}]}}) == 7


def test_pr_curve_marks_the_view_and_the_calibrated_threshold():
    fig = charts.pr_curve_figure(
        np.array([0.2, 0.5, 0.9]),
        np.array([1.0, 0.95, 0.6]),
        np.array([0.9, 0.8, 0.7]),
        current=(0.9, 0.6, 0.7),
        calibrated=(0.5, 0.95, 0.8),
    )
    names = [t.name for t in fig.data]
    assert names == ["over the threshold", "threshold 0.800 (90% precision)", "threshold 0.700 (this view)"]
    assert list(fig.data[0].customdata) == [0.9, 0.8, 0.7]
    with pytest.raises(ValueError, match="differ in length"):
        charts.pr_curve_figure(np.zeros(2), np.zeros(3), np.zeros(3))
