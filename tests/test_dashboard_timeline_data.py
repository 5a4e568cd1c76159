"""dashboard.timeline_data: a run's timeline as data (decimation, legend, labels, ticks, the
canvas's spec)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.visual.colours import NO_MATCH, image_colour
from dashboard import timeline_data


def test_each_point_is_its_buckets_best_frame_with_ties_and_empty_buckets():
    """Against a plain loop over the buckets: the best frame (the last of equal scores; the
    last frame where a bucket has no score at all) and the bucket's lowest score."""
    n, buckets = 5_000, 37
    t = np.sort(np.random.default_rng(1).uniform(0, 100, n))
    score = np.round(np.random.default_rng(2).uniform(0, 1, n), 2)  # many ties
    score[(t > 40) & (t < 46)] = np.nan  # buckets with no score
    line = timeline_data.decimate(
        t, np.arange(n), score, np.zeros(n, np.int64), np.ones(n, bool), buckets=buckets
    )
    edges = np.linspace(t[0], t[-1], buckets + 1)
    which = np.clip(np.searchsorted(edges, t, "right") - 1, 0, buckets - 1)
    want_frame, want_low = [], []
    for b in np.unique(which):
        frames = np.flatnonzero(which == b)
        s = score[frames]
        if np.isnan(s).all():
            want_frame.append(frames[-1])
            want_low.append(np.nan)
        else:
            want_frame.append(frames[s == np.nanmax(s)][-1])
            want_low.append(np.nanmin(s))
    assert line.frame_index.tolist() == want_frame
    np.testing.assert_array_equal(line.low, want_low)


def test_timeline_checks_lengths():
    with pytest.raises(ValueError):
        timeline_data.decimate(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3), np.ones(3, bool))


def test_images_on_screen_longest_first():
    t = np.arange(100) / 10
    img = np.r_[np.full(60, 4), np.full(30, 9), np.full(10, -1)]
    hit = np.r_[np.ones(80, bool), np.zeros(20, bool)]
    assert timeline_data.on_screen(img, hit, t) == [(4, pytest.approx(6.0)), (9, pytest.approx(2.0))]


def test_duplicate_file_names_get_ids():
    labels = timeline_data.unique_labels(np.array([1, 2, 3, -1]), {1: "a.jpg", 2: "a.jpg", 3: "b.jpg"})
    assert labels == {1: "a.jpg (#1)", 2: "a.jpg (#2)", 3: "b.jpg"}


def test_timeline_spec_colours_follow_the_image_not_the_threshold():
    n = 60
    t = np.arange(n) / 10
    img = np.repeat([3, 8, 5], 20)
    score = np.concatenate([np.full(20, 0.65), np.full(20, 0.95), np.full(20, 0.75)])
    for threshold in (0.6, 0.7, 0.9):
        spec = timeline_data.timeline_spec(
            timeline_data.decimate(t, np.arange(n), score, img, score >= threshold), {}, threshold
        )
        for i in range(n):
            want = image_colour(int(img[i])) if score[i] >= threshold else NO_MATCH
            assert spec.palette[spec.colour[i]] == want


def test_timeline_spec_data_is_small_json_for_a_two_hour_run():
    n = 216_000
    t = np.arange(n) / 30
    rng = np.random.default_rng(0)
    score = rng.uniform(0.3, 1.0, n)
    img = rng.integers(0, 500, n)
    line = timeline_data.decimate(t, np.arange(n), score, img, score >= 0.6, buckets=600)
    data = timeline_data.timeline_spec(line, {}, 0.6, selected_time=float("nan")).to_data()
    text = json.dumps(data, allow_nan=False)  # NaN is not JSON: missing scores travel as null
    assert len(text) < 120_000
    assert data["selected_time"] is None
    assert data["time_text"][-1] == "1:59:58.8" or data["time_text"][-1].startswith("1:59:5")
    assert [label for _, label in data["x_ticks"]][:3] == ["0:00", "15:00", "30:00"]  # whole minutes
    assert len(data["x_ticks"]) <= 11 and len(data["y_ticks"]) <= 9


def test_nice_ticks():
    assert timeline_data.nice_ticks(0.0, 7200.0, timeline_data.TIME_STEPS, 10) == (
        [float(v) for v in range(0, 7201, 900)],
        900,
    )
    ticks, step = timeline_data.nice_ticks(0.27, 1.02, timeline_data.SCORE_STEPS, 8)
    assert step == 0.1 and ticks[0] == pytest.approx(0.3) and ticks[-1] == pytest.approx(1.0)
    assert timeline_data.nice_ticks(-1.5, 12.3, timeline_data.TIME_STEPS, 10)[0][:2] == [0.0, 2.0]
    assert timeline_data.nice_ticks(1.0, 1.0, timeline_data.SCORE_STEPS, 8) == (
        [1.0],
        0.01,
    )  # one value: one tick
    assert (
        timeline_data.time_tick_label(90.0, 30) == "1:30"
        and timeline_data.time_tick_label(1.5, 0.5) == "0:01.5"
    )
