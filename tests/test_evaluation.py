"""core/matching/evaluation.py: the metrics on small hand-made cases, every answer worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.matching.evaluation import (
    NONE,
    TimeUnits,
    TruthIntervals,
    covered,
    frame_accuracy,
    labels_at_threshold,
    pr_curve,
    precision_recall,
    threshold_at_precision,
    true_time,
)

A, B = 0, 1


def truth(*rows: tuple[int, float, float]) -> TruthIntervals:
    image, start, end = zip(*rows, strict=True)
    return TruthIntervals(np.array(image), np.array(start, float), np.array(end, float))


def units(*rows: tuple[float, float, int, float]) -> TimeUnits:
    start, end, image, score = zip(*rows, strict=True) if rows else ((), (), (), ())
    return TimeUnits(np.array(start, float), np.array(end, float), np.array(image), np.array(score, float))


# The worked example: A is on screen during [0, 4) s, B during [6, 8) s: 6 s of truth in all.
TRUTH = truth((A, 0, 2), (A, 1, 3), (A, 3, 4), (B, 6, 8))  # A's three pieces join into [0, 4)
UNITS = units(
    (0, 1, A, 0.9),  # right: 1 s
    (1, 2, A, 0.8),  # right: 1 s
    (2, 3, B, 0.7),  # wrong: B is not on screen at 2 s
    (3, 4, A, 0.6),  # right: 1 s
    (6, 7, B, 0.5),  # right: 1 s
    (4, 5, NONE, math.nan),  # no candidate: never a prediction
)


def test_truth_intervals_of_an_image_are_joined_and_summed():
    starts, ends = TRUTH.merged(A)
    assert starts.tolist() == [0.0] and ends.tolist() == [4.0]  # [0,2) ∪ [1,3) ∪ [3,4) = [0,4)
    assert TRUTH.total(A) == 4.0 and TRUTH.total(B) == 2.0 and TRUTH.total() == 6.0
    assert TRUTH.labels_at(np.array([0.5, 4.0, 6.0, 8.0])) == [{A}, set(), {B}, set()]  # ends excluded


def test_covered_counts_interval_seconds_before_a_time():
    starts, ends = np.array([1.0, 5.0]), np.array([3.0, 6.0])
    # before 0: nothing; before 2: [1,2) = 1; before 4: [1,3) = 2; before 5.5: 2 + [5,5.5) = 2.5; before 10: 3
    assert covered(starts, ends, np.array([0, 2, 4, 5.5, 10])).tolist() == [0, 1, 2, 2.5, 3]


def test_true_time_is_the_overlap_with_the_predicted_image():
    assert true_time(UNITS, TRUTH).tolist() == [1, 1, 0, 1, 1, 0]
    half = units((3.5, 4.5, A, 0.9))  # [3.5,4.5) ∩ [0,4) = 0.5 s
    assert true_time(half, TRUTH).tolist() == [0.5]


def test_micro_average_precision_by_hand():
    curve = pr_curve(UNITS, TRUTH)
    # best first; cumulative right seconds / predicted seconds, recall = right / 6:
    #   0.9: 1/1 = 1,     R 1/6   -> 1   × 1/6 = 1/6
    #   0.8: 2/2 = 1,     R 2/6   -> 1   × 1/6 = 1/6
    #   0.7: 2/3,         R 2/6   -> ΔR = 0
    #   0.6: 3/4,         R 3/6   -> 3/4 × 1/6 = 1/8
    #   0.5: 4/5,         R 4/6   -> 4/5 × 1/6 = 2/15
    # AP = 1/6 + 1/6 + 1/8 + 2/15 = (20 + 20 + 15 + 16) / 120 = 71/120
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert np.allclose(curve.precision, [1, 1, 2 / 3, 3 / 4, 4 / 5])
    assert np.allclose(curve.recall, [1 / 6, 2 / 6, 2 / 6, 3 / 6, 4 / 6])
    assert curve.ap == pytest.approx(71 / 120)


def test_per_image_average_precision_by_hand():
    # A: 4 s of truth; its units 0.9, 0.8, 0.6 are all right: P = 1, 1, 1; R = 1/4, 2/4, 3/4 -> AP 3/4
    assert pr_curve(UNITS, TRUTH, A).ap == pytest.approx(3 / 4)
    # B: 2 s; 0.7 is wrong (P 0, R 0), 0.5 is right (P 1/2, R 1/2) -> AP = 1/2 × 1/2 = 1/4
    assert pr_curve(UNITS, TRUTH, B).ap == pytest.approx(1 / 4)


def test_tied_scores_count_as_one_threshold():
    # both units score 0.8: one right second, one wrong -> one point, P 1/2, R 1/2, AP = 1/4
    # (taken one by one, the order would decide between 1/2 and 1/4)
    tie = units((5, 6, A, 0.8), (0, 1, A, 0.8))
    curve = pr_curve(tie, truth((A, 0, 2)))
    assert curve.thresholds.tolist() == [0.8]
    assert curve.ap == pytest.approx(1 / 4)


def test_threshold_reaching_90_percent_precision():
    # precision ≥ 0.9 at 0.9 (R 1/6) and 0.8 (R 2/6); the lowest such threshold has most recall
    assert threshold_at_precision(pr_curve(UNITS, TRUTH), 0.9) == 0.8
    # never reached: B alone peaks at 1/2
    assert threshold_at_precision(pr_curve(UNITS, TRUTH, B), 0.9) is None


def test_frame_accuracy_by_hand():
    # at 0.65 the labels are A, A, B, none, none, none; on screen mid-unit: A, A, A, A, B, nothing
    assert labels_at_threshold(UNITS, 0.65).tolist() == [A, A, B, NONE, NONE, NONE]
    # right: 1st, 2nd, 6th (none where nothing is shown) -> 3 / 6
    assert frame_accuracy(UNITS, TRUTH, 0.65) == pytest.approx(0.5)
    # at 0.5 the 4th and 5th become right too: 5 / 6
    assert frame_accuracy(UNITS, TRUTH, 0.5) == pytest.approx(5 / 6)


def test_a_frame_showing_two_images_is_right_with_either():
    both = truth((A, 0, 1), (B, 0, 1))
    assert frame_accuracy(units((0, 1, B, 0.9)), both, 0.5) == 1.0
    assert frame_accuracy(units((0, 1, NONE, math.nan)), both, 0.5) == 0.0


def test_precision_and_recall_at_a_threshold_by_hand():
    # at 0.65: predicted 3 s (A, A, B), right 2 s -> P 2/3; R = 2 / 6 = 1/3
    pr = precision_recall(UNITS, TRUTH, 0.65)
    assert pr.precision == pytest.approx(2 / 3) and pr.recall == pytest.approx(1 / 3)
    assert (pr.predicted_s, pr.truth_s) == (3.0, 6.0)
    # image A: predicted 2 s, both right -> P 1; R = 2 / 4
    a = precision_recall(UNITS, TRUTH, 0.65, image=A)
    assert (a.precision, a.recall) == (1.0, 0.5)


def test_undefined_values_are_none_not_nan():
    nothing = truth((A, 0, 0))  # an empty interval: no truth at all
    assert pr_curve(UNITS, nothing).ap is None
    assert precision_recall(UNITS, nothing, 0.99).precision is None  # nothing predicted either
    empty = units()
    assert frame_accuracy(empty, TRUTH, 0.5) is None
    assert pr_curve(empty, TRUTH).ap == 0.0  # truth, but no prediction: nothing found


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one value per unit"):
        TimeUnits(np.zeros(2), np.zeros(1), np.zeros(2), np.zeros(2))


def test_a_frame_on_a_rounded_boundary_belongs_to_the_right_side():
    # a truth ending at 0.2 + 0.1 = 0.30000000000000004 s; the next frame starts at 0.3 s:
    # judged at its middle (0.35 s), it shows nothing
    edge = truth((A, 0.0, 0.2 + 0.1))
    assert frame_accuracy(units((0.3, 0.4, NONE, math.nan)), edge, 0.5) == 1.0
