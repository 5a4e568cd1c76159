"""Top-k cosine search and time segments."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidArgumentError
from core.matching.params import MatchParams, matched_mask
from core.matching.search import top_k
from core.matching.segments import find_segments
from core.model.features import l2_normalize


def test_top_k_equals_a_full_sort():
    rng = np.random.default_rng(0)
    db = l2_normalize(rng.normal(size=(500, 32)))
    q = l2_normalize(rng.normal(size=(40, 32)))
    pos, sc = top_k(q, db, 5, max_block=1000)  # small blocks exercise the chunking
    full = q @ db.T
    ref = np.argsort(-full, axis=1)[:, :5]
    np.testing.assert_array_equal(pos, ref)
    np.testing.assert_allclose(sc, np.take_along_axis(full, ref, 1), rtol=1e-6)
    assert (np.diff(sc, axis=1) <= 0).all()


def test_top_k_with_fewer_images_than_k():
    db = l2_normalize(np.eye(3, 8))
    pos, sc = top_k(db, db, 5)
    assert pos.shape == (3, 3)
    np.testing.assert_array_equal(pos[:, 0], [0, 1, 2])
    np.testing.assert_allclose(sc[:, 0], 1.0)


def test_top_k_empty_inputs_and_bad_shapes():
    pos, sc = top_k(np.zeros((2, 4), np.float32), np.zeros((0, 4), np.float32), 5)
    assert pos.shape == (2, 0)
    with pytest.raises(ValueError, match="shape"):
        top_k(np.zeros((2, 4)), np.zeros((3, 5)), 1)


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
    assert first.start_s == 0 and first.end_s == pytest.approx(0.2) and first.frames == 3


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
    assert len(segs) == 1 and segs[0].end_s == pytest.approx(40 / 30)


def test_empty_and_helpers():
    assert find_segments(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), threshold=0.5) == []
    np.testing.assert_array_equal(matched_mask(np.array([0.5, 0.7, np.nan]), 0.6), [False, True, False])


def test_params_are_validated_and_round_trip():
    p = MatchParams(threshold=0.7, top_k=3, gap_tolerance_s=1.0, min_duration_s=0.5)
    assert MatchParams.from_dict({**p.to_dict(), "extra": 1}) == p
    with pytest.raises(InvalidArgumentError, match="threshold"):
        MatchParams(threshold=1.5)
    with pytest.raises(InvalidArgumentError, match="top-k"):
        MatchParams(top_k=0)
    with pytest.raises(InvalidArgumentError):
        MatchParams(gap_tolerance_s=-1)


def test_top_k_agrees_with_numpy_on_a_larger_collection():
    rng = np.random.default_rng(1)
    db = l2_normalize(rng.normal(size=(20_000, 64)))
    q = l2_normalize(rng.normal(size=(50, 64)))
    for max_block in (1 << 25, 50_000):  # one block, and one query row per block
        pos, sc = top_k(q, db, 5, max_block=max_block)
        full = q @ db.T
        np.testing.assert_array_equal(pos, np.argsort(-full, axis=1)[:, :5])
        np.testing.assert_allclose(sc, np.take_along_axis(full, pos, 1), rtol=1e-5)


def test_top_k_takes_float64_and_strided_views():
    rng = np.random.default_rng(2)
    db = l2_normalize(rng.normal(size=(300, 16)))
    q = l2_normalize(rng.normal(size=(7, 16)))
    pos, sc = top_k(q.astype(np.float64), db[::2], 4)
    ref_pos, ref_sc = top_k(q, np.ascontiguousarray(db[::2]), 4)
    np.testing.assert_array_equal(pos, ref_pos)
    assert sc.dtype == np.float32 and pos.dtype == np.int64
