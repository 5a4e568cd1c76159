"""Ground truth for a video and a run's quality against it (the metrics: :mod:`core.matching.evaluation`).

A truth file is a CSV with a header, in one of two forms:

- **segments** ``image,start_s,end_s``: the image is on screen from ``start_s`` until
  ``end_s`` seconds (the form of the exports' segments: ``end_s`` is where the last frame
  showing it ends, its time plus one frame). Segments of different images may overlap (two posters at once).
  Frames in no segment show none of the collection's images.
- **frames** ``frame_index,image``: what one frame shows; an empty image means "none of the
  collection". Only the listed frames are evaluated.

Images are named by file name (``poster.jpg``) or by path; a name with a folder in it is
compared with the images' paths, a bare name with their file names.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from core.errors import WebSSLError
from core.matching.evaluation import (
    NONE,
    PrCurve,
    TimeUnits,
    TruthIntervals,
    frame_accuracy,
    pr_curve,
    precision_recall,
    threshold_at_precision,
)
from core.matching.runs import RunView

SEGMENT_COLUMNS = ("image", "start_s", "end_s")
FRAME_COLUMNS = ("frame_index", "image")
TARGET_PRECISION = 0.9
"""The precision whose threshold :class:`Evaluation` reports (as ISC 2021 does)."""
CURVE_DIGITS = 3  # the JSON's curve keeps one point per (recall, precision) rounded to this


class TruthFileError(WebSSLError):
    """A ground-truth file cannot be read."""


@dataclass(frozen=True, slots=True)
class TruthSegment:
    image: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class TruthFrame:
    frame_index: int
    image: str  # "" for none


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What a video really shows: segments or labelled frames."""

    kind: Literal["segments", "frames"]
    segments: tuple[TruthSegment, ...] = ()
    frames: tuple[TruthFrame, ...] = ()

    def names(self) -> set[str]:
        rows = self.segments if self.kind == "segments" else self.frames
        return {r.image for r in rows if r.image}


def read_truth(path: str | os.PathLike) -> GroundTruth:
    """Read a truth CSV (see the module's docstring).

    Raises:
        TruthFileError: missing file, unknown columns or a bad value (with its line number).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise TruthFileError(f"No truth file at {p}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise TruthFileError(f"Cannot read the truth file {p}: {err}") from err
    return parse_truth(text, str(p))


def parse_truth(text: str, source: str = "truth") -> GroundTruth:
    """Parse the text of a truth CSV (see :func:`read_truth`)."""
    reader = csv.DictReader(text.splitlines())
    columns = {c.strip() for c in reader.fieldnames or [] if c}
    if set(SEGMENT_COLUMNS) <= columns:
        kind: Literal["segments", "frames"] = "segments"
    elif set(FRAME_COLUMNS) <= columns:
        kind = "frames"
    else:
        raise TruthFileError(
            f"{source}: the header must name the columns {','.join(SEGMENT_COLUMNS)} (segments) or "
            f"{','.join(FRAME_COLUMNS)} (labelled frames), got {','.join(sorted(columns)) or 'nothing'}"
        )
    segments: list[TruthSegment] = []
    frames: list[TruthFrame] = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not any(row.values()):
            continue
        if kind == "segments":
            image = row["image"]
            start, end = (
                _number(row["start_s"], "start_s", source, line),
                _number(row["end_s"], "end_s", source, line),
            )
            if not image:
                raise TruthFileError(f"{source}, line {line}: a segment needs an image name")
            if start < 0 or end < start:
                raise TruthFileError(
                    f"{source}, line {line}: a segment needs 0 ≤ start_s ≤ end_s, got {start} and {end}"
                )
            segments.append(TruthSegment(image, start, end))
        else:
            value = _number(row["frame_index"], "frame_index", source, line)
            if value < 0 or value != int(value):
                raise TruthFileError(
                    f"{source}, line {line}: frame_index must be a whole number ≥ 0, got {row['frame_index']}"
                )
            frames.append(TruthFrame(int(value), row["image"]))
    if not segments and not frames:
        raise TruthFileError(f"{source}: no rows below the header")
    return GroundTruth(kind, tuple(segments), tuple(frames))


def _number(raw: str, column: str, source: str, line: int) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TruthFileError(f"{source}, line {line}: {column} must be a number, got {raw!r}")
    return value


# -- a run against the truth ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImageQuality:
    """One image's quality: AP over the threshold; precision and recall at the run's threshold."""

    image: str
    ap: float | None
    precision: float | None
    recall: float | None
    truth_s: float
    predicted_s: float


@dataclass(frozen=True, slots=True, eq=False)
class Evaluation:
    """A run's quality against ground truth (see :mod:`core.matching.evaluation`)."""

    threshold: float
    frame_accuracy: float | None
    micro_ap: float | None
    precision: float | None  # micro, at ``threshold``
    recall: float | None
    per_image: tuple[ImageQuality, ...]
    curve: PrCurve
    threshold_at_p90: float | None
    units: int

    def to_dict(self) -> dict:
        """The JSON document: ``frame_accuracy``, ``micro_ap``, ``per_image``, ``pr_curve``,
        ``threshold_at_p90``."""
        return {
            "frame_accuracy": _round(self.frame_accuracy),
            "micro_ap": _round(self.micro_ap),
            "per_image": {
                q.image: {
                    "ap": _round(q.ap),
                    "precision": _round(q.precision),
                    "recall": _round(q.recall),
                    "truth_s": _round(q.truth_s),
                    "predicted_s": _round(q.predicted_s),
                }
                for q in self.per_image
            },
            "pr_curve": [
                {"threshold": _round(t), "precision": _round(p), "recall": _round(r)}
                for t, p, r in _thinned(self.curve)
            ],
            "threshold_at_p90": _round(self.threshold_at_p90),
        }


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _thinned(curve: PrCurve) -> list[tuple[float, float, float]]:
    """The curve's points, one per (recall, precision) rounded to :data:`CURVE_DIGITS` (the
    lowest threshold of each), so a long video's curve stays small; the last point is kept."""
    if not len(curve):
        return []
    keys = np.round(np.column_stack([curve.recall, curve.precision]), CURVE_DIGITS)
    last = len(keys) - 1 - np.unique(keys[::-1], axis=0, return_index=True)[1]
    keep = np.union1d(last, [len(keys) - 1])
    return list(
        zip(
            curve.thresholds[keep].tolist(),
            curve.precision[keep].tolist(),
            curve.recall[keep].tolist(),
            strict=True,
        )
    )


def evaluate_run(view: RunView, truth: GroundTruth) -> Evaluation:
    """The quality of a run (seen with ``view``'s threshold) against ground truth."""
    fps = view.video.fps if view.video.fps and view.video.fps > 0 else 25.0
    codes: dict[str, int] = {}

    def code(name: str) -> int:
        return codes.setdefault(name, len(codes))

    by_path = any(("/" in n or "\\" in n) for n in truth.names())

    def truth_code(name: str) -> int:
        return code(os.path.normpath(name) if by_path else name)

    predicted = np.array(
        [code(_image_key(view, int(i), by_path)) if i >= 0 else NONE for i in view.best_image], np.int64
    )
    score = np.asarray(view.best_score, np.float64)
    res = view.results
    if truth.kind == "segments":
        intervals = TruthIntervals(
            np.array([truth_code(s.image) for s in truth.segments], np.int64),
            np.array([s.start_s for s in truth.segments]),
            np.array([s.end_s for s in truth.segments]),  # where the last frame ends
        )
        starts = np.asarray(res.time_s, np.float64)
        ends = np.append(starts[1:], starts[-1] + 1 / fps) if len(starts) else starts
        units = TimeUnits(starts, ends, predicted, score)
    else:
        labelled = [f for f in truth.frames if f.image]
        intervals = TruthIntervals(
            np.array([truth_code(f.image) for f in labelled], np.int64),
            np.array([f.frame_index / fps for f in labelled]),
            np.array([(f.frame_index + 1) / fps for f in labelled]),
        )
        frame = np.array([f.frame_index for f in truth.frames], np.int64)
        row = np.searchsorted(np.asarray(res.frame_index), frame, side="right") - 1  # last result ≤ frame
        has = row >= 0
        units = TimeUnits(
            frame / fps,
            (frame + 1) / fps,
            np.where(has, predicted[np.maximum(row, 0)], NONE)
            if len(predicted)
            else np.full(len(frame), NONE),
            np.where(has, score[np.maximum(row, 0)], np.nan) if len(score) else np.full(len(frame), np.nan),
        )
    threshold = view.params.threshold
    curve = pr_curve(units, intervals)
    micro = precision_recall(units, intervals, threshold)
    names = {c: n for n, c in codes.items()}
    shown = set(intervals.images().tolist()) | set(
        np.unique(predicted[view.matched()]).tolist() if len(predicted) else []
    )
    per_image = []
    for c in sorted(shown - {NONE}, key=lambda c: names[c]):
        pr = precision_recall(units, intervals, threshold, image=c)
        per_image.append(
            ImageQuality(
                names[c],
                pr_curve(units, intervals, c).ap,
                pr.precision,
                pr.recall,
                pr.truth_s,
                pr.predicted_s,
            )
        )
    return Evaluation(
        threshold=threshold,
        frame_accuracy=frame_accuracy(units, intervals, threshold),
        micro_ap=curve.ap,
        precision=micro.precision,
        recall=micro.recall,
        per_image=tuple(per_image),
        curve=curve,
        threshold_at_p90=threshold_at_precision(curve, TARGET_PRECISION),
        units=len(units),
    )


def _image_key(view: RunView, image_id: int, by_path: bool) -> str:
    path = view.image_paths.get(image_id)
    if by_path and path:
        return os.path.normpath(path)
    return view.image_name(image_id)
