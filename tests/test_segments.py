"""core.matching.segments: consecutive matched frames of one image → time segments."""

from __future__ import annotations

import numpy as np
import pytest

from core.matching.params import matched_mask
from core.matching.segments import find_segments


def _frames(best, scores, fps=10.0):
    n = len(best)
    return np.arange(n), np.arange(n) / fps, np.array(best), np.array(scores, float)


def test_segments_from_consecutive_frames():
    fi, t, best, sc = _frames([1, 1, 1, 2, 2, 1], [0.9, 0.8, 0.7, 0.9, 0.95, 0.9])
    segs = find_segments(fi, t, best, sc, threshold=0.6, gap_tolerance_s=0)
    assert [(s.image_id, s.start_frame, s.end_frame) for s in segs] == [(1, 0, 2), (2, 3, 4), (1, 5, 5)]
    first = segs[0]
    assert first.peak_score == pytest.approx(0.9)
    assert first.mean_score == pytest.approx(0.8)
    # a segment ends where its last frame ends: frames 0.0, 0.1 and 0.2 s cover 0.0–0.3 s
    assert first.start_s == 0 and first.end_s == pytest.approx(0.3) and first.frames == 3
    assert first.duration_s == pytest.approx(0.3)


def test_threshold_and_gap_tolerance():
    # image 1, a dip below threshold for 2 frames (0.2 s), image 1 again
    fi, t, best, sc = _frames([1, 1, 1, 1, 1, 1], [0.9, 0.9, 0.3, 0.3, 0.9, 0.9])
    assert len(find_segments(fi, t, best, sc, threshold=0.6, gap_tolerance_s=0.1)) == 2
    merged = find_segments(fi, t, best, sc, threshold=0.6, gap_tolerance_s=0.25)
    assert len(merged) == 1 and merged[0].frames == 4 and merged[0].end_frame == 5
    assert find_segments(fi, t, best, sc, threshold=0.95) == []


def test_gap_bridges_another_image_briefly_winning():
    fi, t, best, sc = _frames([1, 1, 2, 1, 1], [0.9] * 5)
    segs = find_segments(fi, t, best, sc, threshold=0.6, gap_tolerance_s=0.15)
    ones = [s for s in segs if s.image_id == 1]
    assert len(ones) == 1 and (ones[0].start_frame, ones[0].end_frame) == (0, 4)


def test_min_duration_drops_short_segments():
    fi, t, best, sc = _frames([1, 1, 1, 1, -1, 2], [0.9, 0.9, 0.9, 0.9, np.nan, 0.9])
    segs = find_segments(fi, t, best, sc, threshold=0.6, gap_tolerance_s=0, min_duration_s=0.2)
    assert [s.image_id for s in segs] == [1]


def test_segments_with_sampled_frames_use_real_times():
    fi = np.array([0, 10, 20, 30, 40])
    t = fi / 30.0
    segs = find_segments(fi, t, np.array([3, 3, 3, 3, 3]), np.full(5, 0.8), threshold=0.6, gap_tolerance_s=0)
    assert len(segs) == 1 and segs[0].end_s == pytest.approx(50 / 30)  # the last sample stands for 10 frames


def test_empty_and_helpers():
    assert find_segments(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), threshold=0.5) == []
    np.testing.assert_array_equal(matched_mask(np.array([0.5, 0.7, np.nan]), 0.6), [False, True, False])


def test_a_one_frame_segment_lasts_one_frame():
    """One-frame segments used to show a duration of 0 (issue 10)."""
    fi, t, best, sc = _frames([-1, 4, -1], [np.nan, 0.9, np.nan], fps=25.0)
    (seg,) = find_segments(fi, t, best, sc, threshold=0.6)
    assert seg.frames == 1 and seg.duration_s == pytest.approx(1 / 25)
    assert find_segments(fi, t, best, sc, threshold=0.6, min_duration_s=0.04) == [seg]
    assert find_segments(fi, t, best, sc, threshold=0.6, min_duration_s=0.05) == []
