"""Time segments: consecutive matched frames of one image, with a gap tolerance (pure maths).

Segments are recomputed from stored per-frame scores whenever the threshold, the gap or the
minimum duration changes, so a stored run re-labels instantly, with no model pass.
"""

from __future__ import annotations

import numpy as np

from core.matching.params import DEFAULTS, matched_mask
from db import Segment

__all__ = ["Segment", "find_segments"]


def find_segments(
    frame_index: np.ndarray,
    time_s: np.ndarray,
    best_image: np.ndarray,
    best_score: np.ndarray,
    *,
    threshold: float,
    gap_tolerance_s: float = DEFAULTS.gap_tolerance_s,
    min_duration_s: float = DEFAULTS.min_duration_s,
) -> list[Segment]:
    """Group matched frames into per-image time segments.

    A frame is matched when its best score is ≥ ``threshold``. Matched frames of the same image
    form one segment while the stretch between two of them (frames below threshold or showing
    another image) lasts at most ``gap_tolerance_s``; with a tolerance of 0, only directly
    consecutive frames join. A segment ends where its last frame ends (its time plus one frame
    step, the median interval between recorded frames), so one frame lasts 1/fps, not 0.
    Segments shorter than ``min_duration_s`` are dropped.

    Arrays are per recorded frame, in frame order. Returns segments sorted by start.
    """
    n = len(frame_index)
    if n == 0:
        return []
    fi = np.asarray(frame_index, np.int64)
    t = np.asarray(time_s, np.float64)
    img = np.asarray(best_image, np.int64)
    sc = np.asarray(best_score, np.float64)
    matched = (img >= 0) & matched_mask(sc, threshold)
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
                end_s=float(t[p[-1]]) + step,  # the end of its last frame: one frame lasts 1/fps
                peak_score=float(sc[p].max()),
                mean_score=float(sc[p].mean()),
                frames=len(p),
            )
            if seg.duration_s + 1e-9 >= min_duration_s:
                segments.append(seg)
    segments.sort(key=lambda s: (s.start_s, s.image_id))
    return segments
