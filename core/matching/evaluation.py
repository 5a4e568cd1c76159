"""How good a run is against ground truth: pure maths on arrays (no files, no database).

The run's answer is a sequence of **time units**: each recorded frame stands for the stretch of
video from its time to the next recorded frame's, and predicts one image (its best match) with a
score. The truth is a set of **intervals** per image (when it is really on screen). Two views:

- **frame accuracy**: the share of units whose label at the run's threshold (the best image if
  matched, otherwise "none") is right: one of the images on screen in the middle of the unit
  (not at its start, which may sit on a boundary up to rounding), or "none" when nothing is;
- **average precision over time**, the single-axis form of the VSC 2022 matching track's
  metric (facebookresearch/vsc2022, ``vsc/metrics.py``: ``match_metric``): predictions are
  taken best score first, tied scores as one group; after each group, precision is the share of
  predicted time that overlaps the truth of the predicted image and recall the share of truth
  time covered; AP = Σ precision × Δrecall. VSC scores a (query, reference) pair on two time
  axes and takes the geometric mean; a collection image has no time axis, so only the video's
  axis remains and the product is the plain ratio. "Micro" pools every image's time (VSC's
  micro-AP over pairs); per image, the same sums restricted to that image.

Every group of tied scores is a threshold: the precision–recall curve is the curve over the
threshold, and :func:`threshold_at_precision` finds the threshold reaching a precision (ISC 2021
reports recall at 90 % precision).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.matching.params import matched_mask

NONE = -1
"""The label of "no collection image"."""


@dataclass(frozen=True, slots=True, eq=False)
class TimeUnits:
    """A run's per-unit answer: ``[start_s, end_s)`` predicts ``image`` with ``score``.

    ``image`` is an integer label (:data:`NONE` where the frame had no candidate); ``score``
    is NaN where there is none.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    image: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.start_s)
        if not len(self.end_s) == len(self.image) == len(self.score) == n:
            raise ValueError("time units: start, end, image and score must have one value per unit")

    def __len__(self) -> int:
        return len(self.start_s)


@dataclass(frozen=True, slots=True, eq=False)
class TruthIntervals:
    """When each image is really on screen: ``image[i]`` during ``[start_s[i], end_s[i])``."""

    image: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.image) == len(self.start_s) == len(self.end_s):
            raise ValueError("truth intervals: image, start and end must have one value per interval")

    def images(self) -> np.ndarray:
        return np.unique(np.asarray(self.image, np.int64))

    def merged(self, image: int) -> tuple[np.ndarray, np.ndarray]:
        """The image's intervals as sorted, disjoint ``(starts, ends)`` (overlaps joined)."""
        mask = np.asarray(self.image) == image
        starts = np.asarray(self.start_s, np.float64)[mask]
        ends = np.asarray(self.end_s, np.float64)[mask]
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        if not len(starts):
            return starts, ends
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
        reach = np.maximum.accumulate(ends)
        new = np.ones(len(starts), bool)
        new[1:] = starts[1:] > reach[:-1]  # touching intervals join too
        group = np.cumsum(new) - 1
        out_ends = np.zeros(int(group[-1]) + 1)
        np.maximum.at(out_ends, group, ends)
        return starts[new], out_ends

    def total(self, image: int | None = None) -> float:
        """Seconds of truth (of one image, or of all images summed)."""
        images = self.images() if image is None else [image]
        return float(sum((e - s).sum() for s, e in (self.merged(int(i)) for i in images)))

    def labels_at(self, times: np.ndarray) -> list[frozenset[int]]:
        """The images on screen at each time (an empty set: none)."""
        t = np.asarray(times, np.float64)
        out: list[set[int]] = [set() for _ in range(len(t))]
        for image in self.images():
            starts, ends = self.merged(int(image))
            k = np.searchsorted(starts, t, side="right") - 1
            inside = (k >= 0) & (t < ends[np.maximum(k, 0)])
            for i in np.flatnonzero(inside):
                out[i].add(int(image))
        return [frozenset(s) for s in out]


def covered(starts: np.ndarray, ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Seconds of the disjoint sorted intervals that lie before each ``x``."""
    x = np.asarray(x, np.float64)
    if not len(starts):
        return np.zeros(x.shape)
    before = np.concatenate([[0.0], np.cumsum(ends - starts)])  # length of intervals 0..j-1
    k = np.searchsorted(starts, x, side="right")  # intervals starting at or before x
    j = np.maximum(k - 1, 0)
    inside = np.clip(x - starts[j], 0.0, ends[j] - starts[j])
    return np.where(k > 0, before[j] + inside, 0.0)


def true_time(units: TimeUnits, truth: TruthIntervals) -> np.ndarray:
    """Per unit, the seconds that overlap the truth of the image it predicts."""
    out = np.zeros(len(units))
    image = np.asarray(units.image, np.int64)
    for label in np.unique(image[image != NONE]):
        pos = np.flatnonzero(image == label)
        starts, ends = truth.merged(int(label))
        out[pos] = covered(starts, ends, units.end_s[pos]) - covered(starts, ends, units.start_s[pos])
    return out


@dataclass(frozen=True, slots=True, eq=False)
class PrCurve:
    """Precision and recall over the threshold, one point per distinct score (highest first).

    Point ``i`` is what a threshold of ``thresholds[i]`` gives (units scoring at least it are
    predictions). ``ap`` is Σ precision × Δrecall over the points; None without any truth.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    ap: float | None

    def __len__(self) -> int:
        return len(self.thresholds)

    def point(self, threshold: float | None) -> tuple[float, float, float] | None:
        """(recall, precision, threshold) at one of the curve's thresholds; None for None."""
        if threshold is None:
            return None
        i = int(np.flatnonzero(self.thresholds == threshold)[0])
        return float(self.recall[i]), float(self.precision[i]), float(threshold)


def pr_curve(units: TimeUnits, truth: TruthIntervals, image: int | None = None) -> PrCurve:
    """The precision–recall curve and AP of the units' predictions (of one image, or micro).

    A unit without a candidate or score predicts nothing at any threshold.
    """
    total = truth.total(image)
    labels = np.asarray(units.image, np.int64)
    scores = np.asarray(units.score, np.float64)
    keep = (labels != NONE) & np.isfinite(scores)
    if image is not None:
        keep &= labels == image
    pos = np.flatnonzero(keep)
    if not len(pos):
        empty = np.zeros(0)
        return PrCurve(empty, empty, empty, 0.0 if total > 0 else None)
    tp = true_time(units, truth)[pos]
    length = (np.asarray(units.end_s, np.float64) - np.asarray(units.start_s, np.float64))[pos]
    order = np.argsort(-scores[pos], kind="stable")
    sc, tp, length = scores[pos][order], tp[order], length[order]
    last_of_group = np.ones(len(sc), bool)
    last_of_group[:-1] = sc[1:] != sc[:-1]
    cum_tp = np.cumsum(tp)[last_of_group]
    cum_len = np.cumsum(length)[last_of_group]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cum_len > 0, cum_tp / cum_len, 0.0)
    recall = cum_tp / total if total > 0 else np.zeros(len(cum_tp))
    ap = float(np.sum(precision * np.diff(recall, prepend=0.0))) if total > 0 else None
    return PrCurve(sc[last_of_group], precision, recall, ap)


def threshold_at_precision(curve: PrCurve, precision: float = 0.9) -> float | None:
    """The lowest threshold whose precision reaches ``precision`` (the most recall at that
    precision); None when no threshold does."""
    ok = np.flatnonzero(curve.precision >= precision - 1e-12)
    if not len(ok):
        return None
    best = ok[np.argmax(curve.recall[ok])]  # recall only grows as the threshold falls
    return float(curve.thresholds[best])


def labels_at_threshold(units: TimeUnits, threshold: float) -> np.ndarray:
    """Each unit's label at ``threshold``: its image when matched, otherwise :data:`NONE`."""
    return np.where(matched_mask(units.score, threshold), np.asarray(units.image, np.int64), NONE)


def frame_accuracy(units: TimeUnits, truth: TruthIntervals, threshold: float) -> float | None:
    """Share of units labelled right at ``threshold`` (see the module's docstring); None when
    there are no units."""
    if not len(units):
        return None
    labels = labels_at_threshold(units, threshold)
    middle = (np.asarray(units.start_s, np.float64) + np.asarray(units.end_s, np.float64)) / 2
    on_screen = truth.labels_at(middle)
    right = [
        (label == NONE and not shown) or int(label) in shown
        for label, shown in zip(labels, on_screen, strict=True)
    ]
    return float(np.mean(right))


@dataclass(frozen=True, slots=True)
class PrecisionRecall:
    """Precision and recall over time at one threshold (None where undefined)."""

    precision: float | None
    recall: float | None
    predicted_s: float
    truth_s: float


def precision_recall(
    units: TimeUnits, truth: TruthIntervals, threshold: float, image: int | None = None
) -> PrecisionRecall:
    """Precision and recall over time at ``threshold`` (of one image, or micro)."""
    labels = labels_at_threshold(units, threshold)
    predicted = labels != NONE if image is None else labels == image
    length = np.asarray(units.end_s, np.float64) - np.asarray(units.start_s, np.float64)
    marked = TimeUnits(units.start_s, units.end_s, np.where(predicted, labels, NONE), units.score)
    hit = float(true_time(marked, truth).sum())
    predicted_s = float(length[predicted].sum())
    truth_s = truth.total(image)
    return PrecisionRecall(
        precision=hit / predicted_s if predicted_s > 0 else None,
        recall=hit / truth_s if truth_s > 0 else None,
        predicted_s=predicted_s,
        truth_s=truth_s,
    )
