"""Cosine top-k search and time segments: the maths of matching, with no I/O.

Everything works on arrays so that a stored run can be re-labelled with another threshold,
instantly, from its stored scores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from core.config import DEFAULT_THRESHOLD, DEFAULT_TOP_K
from core.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class MatchParams:
    """Options of a match run.

    Attributes:
        threshold: best score at or above which a frame counts as matched (cosine, -1..1).
        top_k: how many images are kept per frame, best first.
        gap_tolerance_s: a segment survives interruptions (frames below threshold or showing
            another image) up to this long.
        min_duration_s: segments shorter than this are dropped.
    """

    threshold: float = DEFAULT_THRESHOLD
    top_k: int = DEFAULT_TOP_K
    gap_tolerance_s: float = 0.5
    min_duration_s: float = 0.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise InvalidArgumentError(f"threshold must be between -1 and 1 (cosine), got {self.threshold}")
        if self.top_k < 1:
            raise InvalidArgumentError(f"top-k must be ≥ 1, got {self.top_k}")
        if self.gap_tolerance_s < 0 or self.min_duration_s < 0:
            raise InvalidArgumentError("gap tolerance and minimum duration must be ≥ 0")

    def to_dict(self) -> dict:
        return asdict(self)

    def updated(self, **changes: float | int | None) -> MatchParams:
        """A copy with the given fields changed; ``None`` values keep the current value."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, d: dict) -> MatchParams:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time in which one image is the best match above threshold."""

    image_id: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    peak_score: float
    mean_score: float
    frames: int  # matched frames inside the segment

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def top_k(
    queries: np.ndarray, vectors: np.ndarray, k: int, *, max_block: int = 1 << 26
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` rows of ``vectors`` for every query, by dot product (cosine for unit rows).

    Exact search: one BLAS matrix product per block of queries (multi-threaded), then
    ``torch.topk``, which selects k of a million scores about 10× faster than
    ``numpy.argpartition``. Both arrays are used in place (no copy when they are contiguous
    float32), so a collection matrix loaded once serves every batch of a run.

    Args:
        queries: Q×D float32, L2-normalised.
        vectors: N×D float32, L2-normalised (a collection's embedding matrix).
        k: how many per query; fewer columns come back when N < k.
        max_block: bound on the Q×N score block held at once (64M floats = 256 MiB: 64
            frames against a million images in one pass over the matrix).

    Returns:
        (positions Q×k' int64 into ``vectors``, scores Q×k' float32), best first.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if q.ndim != 2 or v.ndim != 2 or (len(v) and q.shape[1] != v.shape[1]):
        raise ValueError(f"shape mismatch: queries {q.shape}, vectors {v.shape}")
    kk = min(k, len(v))
    if kk == 0 or len(q) == 0:
        return np.zeros((len(q), kk), np.int64), np.zeros((len(q), kk), np.float32)
    pos = np.empty((len(q), kk), np.int64)
    sc = np.empty((len(q), kk), np.float32)
    qt, vt = torch.from_numpy(q), torch.from_numpy(v)
    rows = max(1, max_block // max(1, len(v)))
    with torch.inference_mode():
        for start in range(0, len(q), rows):
            scores = torch.mm(qt[start : start + rows], vt.T)
            best, where = torch.topk(scores, kk, dim=1, largest=True, sorted=True)
            pos[start : start + rows] = where.numpy()
            sc[start : start + rows] = best.numpy()
    return pos, sc


def find_segments(
    frame_index: np.ndarray,
    time_s: np.ndarray,
    best_image: np.ndarray,
    best_score: np.ndarray,
    *,
    threshold: float,
    gap_tolerance_s: float = 0.5,
    min_duration_s: float = 0.0,
) -> list[Segment]:
    """Group matched frames into per-image time segments.

    A frame is matched when its best score is ≥ ``threshold``. Matched frames of the same image
    form one segment while the stretch between two of them (frames below threshold or showing
    another image) lasts at most ``gap_tolerance_s``; with a tolerance of 0, only directly
    consecutive frames join. Segments shorter than ``min_duration_s`` are dropped.

    Arrays are per recorded frame, in frame order. Returns segments sorted by start.
    """
    n = len(frame_index)
    if n == 0:
        return []
    fi = np.asarray(frame_index, np.int64)
    t = np.asarray(time_s, np.float64)
    img = np.asarray(best_image, np.int64)
    sc = np.asarray(best_score, np.float64)
    matched = (img >= 0) & np.isfinite(sc) & (sc >= threshold)
    steps = np.diff(t)
    step = float(np.median(steps)) if len(steps) else 0.0
    segments: list[Segment] = []
    for image_id in np.unique(img[matched]):
        pos = np.flatnonzero(matched & (img == image_id))
        # the interruption between two matched frames: the time between them minus one step
        gaps = (t[pos[1:]] - t[pos[:-1]]) - step
        consecutive = (pos[1:] - pos[:-1]) == 1
        breaks = np.flatnonzero(~consecutive & (gaps > gap_tolerance_s + 1e-9))
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [len(pos) - 1]])
        for a, b in zip(starts, ends, strict=True):
            p = pos[a : b + 1]
            seg = Segment(
                image_id=int(image_id),
                start_frame=int(fi[p[0]]),
                end_frame=int(fi[p[-1]]),
                start_s=float(t[p[0]]),
                end_s=float(t[p[-1]]),
                peak_score=float(sc[p].max()),
                mean_score=float(sc[p].mean()),
                frames=len(p),
            )
            if seg.duration_s + 1e-9 >= min_duration_s:
                segments.append(seg)
    segments.sort(key=lambda s: (s.start_s, s.image_id))
    return segments


def matched_mask(best_score: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean per frame: best score at or above threshold (NaN = no match)."""
    sc = np.asarray(best_score, np.float64)
    return np.isfinite(sc) & (sc >= threshold)


def summarize_scores(best_score: np.ndarray) -> dict[str, float]:
    """Min / median / max of the best scores, for reports."""
    sc = np.asarray(best_score, np.float64)
    sc = sc[np.isfinite(sc)]
    if not len(sc):
        return {"min": math.nan, "median": math.nan, "max": math.nan}
    return {"min": float(sc.min()), "median": float(np.median(sc)), "max": float(sc.max())}
