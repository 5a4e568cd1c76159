"""A run's timeline as data: what the Match page's canvas (:mod:`dashboard.timeline`) and the
notebook's Plotly chart (:func:`dashboard.charts.timeline_figure`) both draw. Pure functions of
arrays: no Streamlit, no Plotly, no database.

- :func:`decimate`: a run (or a window of it) as at most one point per pixel, its bucket's best
  frame, with the band down to the bucket's lowest score, so no peak or dip is lost;
- :func:`legend_images`, :func:`unique_labels`, :func:`on_screen`: which images get a legend
  entry, their labels, and which images dominate a run;
- :func:`timeline_spec`: the points, colours, legend, ticks and lines the canvas draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.media.video import format_time
from core.visual.colours import NO_MATCH, image_colour

THRESHOLD_COLOR = "#dc2626"
MATCHED_COLOR = "#1f77b4"
SELECTED_COLOR = "#111827"
BAND_FILL = "rgba(120,130,145,0.18)"
BAND_LINE = "rgba(120,130,145,0.55)"
LEGEND_IMAGES = 8
"""Matched images with a legend entry of their own on the timeline; the others share one."""


def unique_labels(image_ids: np.ndarray, names: Mapping[int, str]) -> dict[int, str]:
    """``id -> label``: the file name, with ``(#id)`` added where two images share a name."""
    ids = [int(i) for i in np.unique(np.asarray(image_ids, np.int64)) if i >= 0]
    base = {i: names.get(i, f"#{i}") for i in ids}
    counts: dict[str, int] = {}
    for label in base.values():
        counts[label] = counts.get(label, 0) + 1
    return {i: (label if counts[label] == 1 else f"{label} (#{i})") for i, label in base.items()}


@dataclass(frozen=True, eq=False)
class Timeline:
    """What the timeline draws of a run (or a window of it): at most ``buckets`` points.

    A long run has far more frames than the chart has pixels (an hour is 108,000 frames for
    ~1,500 pixels): frames are grouped into equal stretches of time, and each stretch is drawn
    by its frame with the highest score (so no peak is lost; its frame number is what a click
    selects) plus the lowest score (the grey band: no dip is hidden either). A window with
    fewer frames than buckets shows every frame.
    """

    time_s: np.ndarray  # the representative frame of each bucket
    frame_index: np.ndarray
    score: np.ndarray
    image: np.ndarray
    matched: np.ndarray
    low: np.ndarray  # the lowest score in each bucket (the band's lower edge)
    frames: int  # frames in the window
    decimated: bool

    def drawn_matched(self) -> np.ndarray:
        """The points drawn as matched (in their image's colour): matched, with an image and a score."""
        return self.matched & (self.image >= 0) & np.isfinite(self.score)

    def score_range(self, threshold: float) -> tuple[float, float]:
        """The score axis: down to the lowest score or the threshold, whichever is lower."""
        low = float(np.nanmin(self.low)) if np.isfinite(self.low).any() else 0.0
        return (min(low, threshold) - 0.03, 1.02)


def decimate(
    time_s: np.ndarray,
    frame_index: np.ndarray,
    best_score: np.ndarray,
    best_image: np.ndarray,
    matched: np.ndarray,
    *,
    window: tuple[float, float] | None = None,
    buckets: int = 1500,
) -> Timeline:
    """The timeline of frames in ``window`` (seconds, inclusive), reduced to ``buckets`` points."""
    t = np.asarray(time_s, np.float64)
    fi = np.asarray(frame_index, np.int64)
    sc = np.asarray(best_score, np.float64)
    img = np.asarray(best_image, np.int64)
    hit = np.asarray(matched, bool)
    if not (len(t) == len(fi) == len(sc) == len(img) == len(hit)):
        raise ValueError(f"arrays differ in length: {len(t)}, {len(fi)}, {len(sc)}, {len(img)}, {len(hit)}")
    if window is not None:
        lo, hi = np.searchsorted(t, window[0], "left"), np.searchsorted(t, window[1], "right")
        t, fi, sc, img, hit = t[lo:hi], fi[lo:hi], sc[lo:hi], img[lo:hi], hit[lo:hi]
    n = len(t)
    if n <= buckets:
        return Timeline(t, fi, sc, img, hit, sc, n, False)
    edges = np.linspace(t[0], t[-1], buckets + 1)
    which = np.clip(np.searchsorted(edges, t, "right") - 1, 0, buckets - 1)
    starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
    filled = np.where(np.isfinite(sc), sc, -np.inf)
    # the frame with the highest score of each bucket (the last of equals); the frames are in
    # time order, so a bucket is one stretch of frames: O(n), where sorting took 30 ms per rerun
    peak = np.maximum.reduceat(filled, starts)
    at_peak = np.flatnonzero(filled == np.repeat(peak, np.diff(np.r_[starts, n])))
    top = at_peak[np.r_[which[at_peak][1:] != which[at_peak][:-1], True]]
    low = np.minimum.reduceat(np.where(np.isfinite(sc), sc, np.inf), starts)
    low[np.isinf(low)] = np.nan
    return Timeline(t[top], fi[top], sc[top], img[top], hit[top], low, n, True)


def legend_images(image: np.ndarray, matched: np.ndarray, max_images: int) -> tuple[np.ndarray, np.ndarray]:
    """The matched images with a legend entry each (most matched points first, at most
    ``max_images``) and the rest, which share one entry and keep their colours."""
    ids, counts = np.unique(np.asarray(image, np.int64)[np.asarray(matched, bool)], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    return order[:max_images], order[max_images:]


TIME_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
SCORE_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5)


def nice_ticks(lo: float, hi: float, steps: tuple[float, ...], most: int) -> tuple[list[float], float]:
    """Round values between ``lo`` and ``hi`` and their step: the smallest of ``steps`` that
    gives at most ``most`` ticks."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return ([float(lo)] if np.isfinite(lo) else []), steps[0]
    step = next((st for st in steps if (hi - lo) / st <= most), steps[-1])
    first = np.ceil(lo / step - 1e-9) * step
    return [round(float(v), 6) for v in np.arange(first, hi + step * 1e-9, step)], step


def time_tick_label(seconds: float, step: float) -> str:
    """A time axis label: :func:`core.media.video.format_time`, whole seconds where the step is."""
    text = format_time(seconds)
    return text[:-2] if step >= 1 else text


@dataclass(frozen=True)
class TimelineSpec:
    """What the browser draws of a :class:`Timeline` (see ``dashboard/timeline.js``).

    One entry per point in ``time_s`` … ``colour``. ``kind`` is 0 below the threshold (grey),
    1 matched with a legend entry of its own, 2 matched among the "other images" (a diamond);
    ``colour`` indexes ``palette``, ``label`` indexes ``labels`` (-1: no image).
    """

    time_s: tuple[float, ...]
    score: tuple[float | None, ...]
    low: tuple[float | None, ...]
    frame_index: tuple[int, ...]
    kind: tuple[int, ...]
    colour: tuple[int, ...]
    label: tuple[int, ...]
    palette: tuple[str, ...]
    labels: tuple[str, ...]
    legend: tuple[tuple[str, str, str], ...]  # (colour, text, "circle" or "diamond")
    threshold: float
    selected_time: float | None
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]
    height: int
    brush: bool = False  # a drag across the chart chooses a time window (a long run)

    def to_data(self) -> dict[str, Any]:
        """The spec as the JSON the component receives (times to the ms, scores to 1e-4)."""

        def rounded(values, digits: int) -> list:
            return [None if v is None else round(v, digits) for v in values]

        return {
            "time_s": rounded(self.time_s, 3),
            "time_text": [format_time(t) for t in self.time_s],
            "score": rounded(self.score, 4),
            "low": rounded(self.low, 4),
            "frame_index": list(self.frame_index),
            "kind": list(self.kind),
            "colour": list(self.colour),
            "label": list(self.label),
            "palette": list(self.palette),
            "labels": list(self.labels),
            "legend": [list(entry) for entry in self.legend],
            "threshold": self.threshold,
            "selected_time": self.selected_time,
            "x_range": list(self.x_range),
            "y_range": list(self.y_range),
            "x_ticks": [list(t) for t in self.x_ticks],
            "y_ticks": [list(t) for t in self.y_ticks],
            "height": self.height,
            "brush": self.brush,
            "summary": f"Timeline of the best score per frame: {len(self.time_s)} points, "
            f"threshold {self.threshold:.3f}",
            "style": {
                "threshold": THRESHOLD_COLOR,
                "selected": SELECTED_COLOR,
                "band_fill": BAND_FILL,
                "band_line": BAND_LINE,
            },
        }


def timeline_spec(
    line: Timeline,
    names: Mapping[int, str],
    threshold: float,
    *,
    selected_time: float | None = None,
    max_images: int = LEGEND_IMAGES,
    height: int = 340,
    brush: bool = False,
) -> TimelineSpec:
    """The timeline of :func:`timeline_figure`, as the dashboard's canvas draws it: the same
    points, colours, legend rule, band and threshold line."""
    t, fi, sc, img = line.time_s, line.frame_index, line.score, line.image
    labels = unique_labels(img, names)
    finite = np.isfinite(sc)
    matched = line.drawn_matched()
    shown, rest = legend_images(img, matched, max_images)
    kind = np.where(matched, np.where(np.isin(img, shown), 1, 2), 0)
    palette = [NO_MATCH] + [image_colour(i) for i in np.unique(img[matched])]
    colour_of = {c: n for n, c in enumerate(dict.fromkeys(palette))}
    palette = list(colour_of)
    colour = [
        colour_of[image_colour(i)] if hit else 0
        for i, hit in zip(img.tolist(), matched.tolist(), strict=True)
    ]
    label_ids = sorted(labels)
    label_of = {i: n for n, i in enumerate(label_ids)}
    legend = [(image_colour(i), labels[int(i)], "circle") for i in shown]
    if len(rest):
        legend.append((MATCHED_COLOR, f"{len(rest)} other images", "diamond"))
    if (finite & ~matched).any():
        legend.append((NO_MATCH, "below threshold", "circle"))

    def optional(values: np.ndarray) -> tuple[float | None, ...]:
        return tuple(float(v) if np.isfinite(v) else None for v in values.tolist())

    if len(t):
        x0, x1 = float(t[0]), float(t[-1])
        pad = max((x1 - x0) * 0.01, 0.5)
        x_range = (x0 - pad, x1 + pad)
    else:
        x_range = (0.0, 1.0)
    y_range = line.score_range(threshold)
    times, x_step = nice_ticks(*x_range, TIME_STEPS, 10)
    scores, _ = nice_ticks(*y_range, SCORE_STEPS, 8)
    return TimelineSpec(
        time_s=tuple(float(v) for v in t.tolist()),
        score=optional(sc),
        low=optional(np.where(np.isfinite(line.low) & finite, line.low, np.nan)),
        frame_index=tuple(int(v) for v in fi.tolist()),
        kind=tuple(int(k) for k in kind.tolist()),
        colour=tuple(colour),
        label=tuple(label_of.get(int(i), -1) for i in img.tolist()),
        palette=tuple(palette),
        labels=tuple(labels[i] for i in label_ids),
        legend=tuple(legend),
        threshold=float(threshold),
        selected_time=float(selected_time)
        if selected_time is not None and np.isfinite(selected_time)
        else None,
        x_range=x_range,
        y_range=y_range,
        x_ticks=tuple((v, time_tick_label(v, x_step)) for v in times if v >= 0),
        y_ticks=tuple((v, f"{v:g}") for v in scores),
        height=height,
        brush=brush,
    )


def on_screen(
    best_image: np.ndarray, matched: np.ndarray, time_s: np.ndarray, top: int = 8
) -> list[tuple[int, float]]:
    """The ``top`` images by matched screen time, ``(image id, seconds)``, most first: a legend
    of 163 entries says nothing; this says which images dominate."""
    img = np.asarray(best_image, np.int64)
    hit = np.asarray(matched, bool) & (img >= 0)
    if not hit.any():
        return []
    t = np.asarray(time_s, np.float64)
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    ids, counts = np.unique(img[hit], return_counts=True)
    best = np.argsort(-counts, kind="stable")[:top]
    return [(int(ids[i]), float(counts[i] * step)) for i in best]
