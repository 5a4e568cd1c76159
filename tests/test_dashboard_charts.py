"""dashboard.charts: the figures of a run (Plotly), among them the notebook's timeline, which
draws what the dashboard's canvas draws."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from core.matching.params import matched_mask
from core.visual.colours import image_colour
from dashboard import charts, timeline_data


def _run_arrays(n=50):
    t = np.arange(n) / 10
    fi = np.arange(n)
    score = np.where(np.arange(n) < n // 2, 0.98, 0.5).astype(np.float32)
    score[3] = np.nan
    img = np.where(np.arange(n) < n // 2, 7, 9)
    return t, fi, score, img


def test_timeline_colours_matched_images_and_draws_the_threshold():
    t, fi, score, img = _run_arrays()
    line = timeline_data.decimate(t, fi, score, img, matched_mask(score, 0.9))
    assert not line.decimated and line.frames == 50
    fig = charts.timeline_figure(line, {7: "a.jpg", 9: "b.jpg"}, 0.9, selected_time=1.0)
    names = [tr.name for tr in fig.data]
    assert names == [None, "best score", "below threshold", "a.jpg"]  # the band's edges, then points
    assert all(isinstance(tr, go.Scatter) for tr in fig.data)
    matched = fig.data[3]
    assert len(matched.x) == 24  # one NaN frame has no point
    assert matched.marker.color == image_colour(7)
    assert list(matched.customdata[0]) == [0, "a.jpg"]
    shapes = fig.layout.shapes
    assert any(s.y0 == 0.9 and s.y1 == 0.9 for s in shapes)  # threshold line
    assert any(s.x0 == 1.0 for s in shapes)  # selected frame


def test_a_long_run_is_decimated_without_losing_a_peak_or_a_dip():
    """An hour (108,000 frames) drew 108,000 WebGL points: now one per bucket, the bucket's best
    frame, with the band down to its lowest score."""
    n = 108_000
    t = np.arange(n) / 30
    rng = np.random.default_rng(0)
    score = rng.uniform(0.3, 0.5, n)
    score[54_321] = 0.99  # one frame peaks
    score[70_000] = 0.01  # one frame dips
    img = np.arange(n) % 20
    line = timeline_data.decimate(t, np.arange(n), score, img, matched_mask(score, 0.9), buckets=1500)
    assert line.decimated and line.frames == n and len(line.time_s) <= 1500
    assert 54_321 in line.frame_index and line.score.max() == pytest.approx(0.99)
    assert np.nanmin(line.low) == pytest.approx(0.01)
    fig = charts.timeline_figure(line, {}, 0.9)
    assert sum(len(tr.x) for tr in fig.data if tr.mode == "markers") == len(line.time_s)
    assert len(fig.to_json()) < 400_000  # was ~10 MB
    # a window shows every frame of it
    window = timeline_data.decimate(
        t, np.arange(n), score, img, matched_mask(score, 0.9), window=(100.0, 130.0)
    )
    assert not window.decimated and window.frames == len(window.time_s) == 901


def test_many_images_share_an_other_entry_but_keep_their_colours():
    n = 200
    t = np.arange(n) / 25
    img = np.arange(n) % 20
    score = np.full(n, 0.95)
    fig = charts.timeline_figure(
        timeline_data.decimate(t, np.arange(n), score, img, matched_mask(score, 0.9)), {}, 0.9, max_images=5
    )
    assert fig.data[-1].name == "15 other images"
    others = [int(frame) for frame, _ in fig.data[-1].customdata]
    assert list(fig.data[-1].marker.color) == [image_colour(img[f]) for f in others]
    assert len([tr for tr in fig.data if tr.mode == "markers"]) == 5 + 1


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


def test_score_matrix_keeps_an_images_best_score_of_a_frame():
    """A region run scores an image twice in a frame (in the top-k and as its region): the cell
    holds the higher score, in whichever column it came."""
    ids = np.array([[1, 2, 2], [1, 2, 1], [2, 1, -1]])
    scores = np.array([[0.9, 0.5, 0.7], [0.8, 0.4, 0.3], [0.6, 0.2, np.nan]], np.float32)
    top, matrix = charts.score_matrix(ids, scores, top_n=2)
    assert top.tolist() == [1, 2]
    np.testing.assert_allclose(matrix, [[0.9, 0.8, 0.2], [0.7, 0.4, 0.6]], rtol=1e-6)


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
    fig = charts.histogram_figure(scores, matched_mask(scores, 0.5), 0.5, bins=10)
    below, above = fig.data  # counted here: 2 bars of counts, not every score sent to the browser
    assert len(below.x) == len(above.x) == 10
    assert sum(below.y) == 2 and sum(above.y) == 1
    assert below.x[int(np.argmax(below.y))] < 0.5 < above.x[int(np.argmax(above.y))]
    assert sum(charts.histogram_figure(np.array([np.nan]), np.zeros(1, bool), 0.5).data[0].y) == 0


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


def test_pr_curve_of_an_hour_is_thinned_but_keeps_both_ends():
    n = 108_000  # one threshold per frame of a 1-hour run
    recall = np.linspace(0.001, 1.0, n)
    fig = charts.pr_curve_figure(recall, np.linspace(1.0, 0.3, n), np.linspace(0.99, 0.1, n))
    curve = fig.data[0]
    assert len(curve.x) <= charts.PR_POINTS + 1
    assert curve.x[0] == recall[0] and curve.x[-1] == recall[-1]
    assert curve.customdata[-1] == pytest.approx(0.1)


def test_timeline_spec_draws_what_the_figure_draws():
    """The same points, colours, legend and lines as :func:`timeline_figure`, so the notebook's
    chart and the dashboard's canvas tell the same story."""
    n = 200
    t = np.arange(n) / 25
    img = np.arange(n) % 20
    score = np.where(np.arange(n) % 4 == 0, 0.5, 0.95)
    score[7] = np.nan
    line = timeline_data.decimate(t, np.arange(n), score, img, matched_mask(score, 0.9))
    names = {i: f"img{i}.jpg" for i in range(20)}
    spec = timeline_data.timeline_spec(line, names, 0.9, selected_time=2.0, max_images=5)
    fig = charts.timeline_figure(line, names, 0.9, selected_time=2.0, max_images=5)
    assert len(spec.time_s) == n and spec.score[7] is None  # the NaN frame has no point
    points = [tr for tr in fig.data if tr.mode == "markers"]
    grey = points[0]
    assert grey.name == "below threshold"
    drawn_grey = [i for i, k in enumerate(spec.kind) if k == 0 and spec.score[i] is not None]
    assert len(drawn_grey) == len(grey.x) == 50  # every 4th frame is below
    for tr in points[1:-1]:  # one trace per legend image: the same frames, the same colour
        frames = [int(f) for f, _ in tr.customdata]
        assert {spec.palette[spec.colour[f]] for f in frames} == {tr.marker.color}
        assert {spec.kind[f] for f in frames} == {1}
    others = [int(f) for f, _ in points[-1].customdata]
    assert {spec.kind[f] for f in others} == {2}  # the "other images" diamonds keep their colours
    assert [spec.palette[spec.colour[f]] for f in others] == list(points[-1].marker.color)
    assert [text for _, text, _ in spec.legend] == [tr.name for tr in points[1:]] + ["below threshold"]
    assert spec.legend[-2][2] == "diamond"
    assert spec.labels[spec.label[3]] == "img3.jpg"
    assert spec.threshold == 0.9 and spec.selected_time == 2.0
    assert spec.y_range[0] <= 0.5 - 0.03 and spec.y_range[1] > 1.0  # the lowest score and the top fit
